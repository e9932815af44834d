"""audiovae: variational autoencoders for voice conversion, speech denoising and music, in PyTorch."""

from __future__ import annotations

__version__ = "0.1.0"
