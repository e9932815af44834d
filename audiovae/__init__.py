"""audiovae: variational autoencoders for voice conversion, speech denoising and music, in PyTorch.

    import audiovae
    vc = audiovae.load("voice-conversion")
    wave, sr = vc.convert("in.wav", speaker="B")
"""

from __future__ import annotations

__version__ = "0.1.0"
__all__ = ["load", "__version__"]


def __getattr__(name: str):  # noqa: ANN202 - lazy, so `import audiovae` (and the CLI's start-up) stays light
    if name == "load":
        from .api import load

        return load
    raise AttributeError(f"module 'audiovae' has no attribute {name!r}")
