"""Checkpoints: one ``.safetensors`` file holding the weights and, in its metadata, a JSON config from which the
model, its front end and its vocoder settings are rebuilt. Loading never unpickles: a pickled ``.pt`` is accepted
only if ``torch.load(weights_only=True)`` accepts it (no code can run), else refused with a clear message.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from . import __version__
from .errors import AudiovaeError
from .features import MelConfig
from .fileio import atomic_path
from .models import LatentModel, build_model

FORMAT_VERSION = 1
META_KEY = "audiovae"


class CheckpointError(AudiovaeError):
    """A checkpoint is missing, truncated, of another format, or would need code execution to load."""


@dataclass
class Checkpoint:
    """Everything needed to use a trained model: the model, its front end, speakers, vocoder and task."""

    model: LatentModel
    mel: MelConfig
    speakers: list[str] = field(default_factory=list)
    task: str = "reconstruct"
    vocoder: dict = field(default_factory=lambda: {"name": "griffin-lim"})
    info: dict = field(default_factory=dict)  # training step, metrics, data: for `audiovae info CKPT`

    def metadata(self) -> dict:
        return {"format": FORMAT_VERSION, "package_version": __version__, "task": self.task,
                "model": {"type": self.model.model_type, "config": self.model.config.to_dict()},
                "mel": self.mel.to_dict(), "speakers": list(self.speakers), "vocoder": self.vocoder, "info": self.info}


def save_checkpoint(path: str | os.PathLike[str], ckpt: Checkpoint, dtype: torch.dtype | None = None) -> Path:
    """Write atomically; ``dtype=torch.float16`` halves the size for export (floating tensors only)."""
    state = {}
    for name, t in ckpt.model.state_dict().items():
        t = t.detach().cpu().contiguous()
        state[name] = t.to(dtype) if dtype is not None and t.is_floating_point() else t
    with atomic_path(path) as tmp:
        save_file(state, str(tmp), metadata={META_KEY: json.dumps(ckpt.metadata())})
    return Path(path)


def _read(path: Path) -> tuple[dict[str, torch.Tensor], dict]:
    if not path.is_file():
        raise CheckpointError(f"{path}: no such checkpoint" if not path.exists() else f"{path}: is not a file")
    with open(path, "rb") as f:
        head = f.read(8)
    if head[:2] == b"PK" or head[:1] == b"\x80":  # zip (torch.save) or raw pickle
        try:
            obj = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as e:  # noqa: BLE001 - any failure here means "not loadable without running code"
            found = re.search(r"Unsupported global: GLOBAL (\S+)", str(e))
            reason = f"it would call {found.group(1)}" if found else str(e).splitlines()[0][:120]
            raise CheckpointError(f"{path}: refusing to load a pickle that needs code execution ({reason}); "
                                  "audiovae checkpoints are .safetensors files") from None
        if not (isinstance(obj, dict) and isinstance(obj.get("state_dict"), dict) and META_KEY in obj):
            raise CheckpointError(f"{path}: a torch file, but not an audiovae checkpoint")
        return obj["state_dict"], json.loads(obj[META_KEY]) if isinstance(obj[META_KEY], str) else obj[META_KEY]
    try:
        from safetensors import safe_open

        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
        state = load_file(str(path))
    except (SafetensorError, OSError, ValueError) as e:
        raise CheckpointError(f"{path}: not a readable checkpoint ({str(e).splitlines()[0][:120]}); "
                              "truncated or not a .safetensors file") from None
    if META_KEY not in meta:
        raise CheckpointError(f"{path}: a safetensors file without audiovae metadata (not an audiovae checkpoint)")
    return state, json.loads(meta[META_KEY])


def load_checkpoint(path: str | os.PathLike[str], device: torch.device | str = "cpu") -> Checkpoint:
    """Rebuild model (float32, eval mode, on ``device``), front end and settings from a checkpoint file."""
    p = Path(path)
    state, meta = _read(p)
    if meta.get("format", 0) > FORMAT_VERSION:
        raise CheckpointError(f"{p}: written by a newer audiovae (format {meta['format']}); upgrade to load it")
    try:
        model = build_model(meta["model"]["type"], meta["model"]["config"])
        model.load_state_dict({k: v.float() if v.is_floating_point() else v for k, v in state.items()})
        mel = MelConfig.from_dict(meta["mel"])
    except (KeyError, RuntimeError, TypeError) as e:
        raise CheckpointError(f"{p}: checkpoint does not match its own config ({str(e).splitlines()[0][:160]})"
                              ) from None
    return Checkpoint(model.to(device).eval(), mel, list(meta.get("speakers", [])), meta.get("task", "reconstruct"),
                      meta.get("vocoder", {"name": "griffin-lim"}), meta.get("info", {}))


def save_torch_state(path: str | os.PathLike[str], state: dict) -> Path:
    """Training state (optimisers, schedulers, RNGs, data position) for ``--resume``: tensors and plain Python only,
    so it loads with ``weights_only=True``."""
    with atomic_path(path) as tmp:
        torch.save(state, tmp)
    return Path(path)


def load_torch_state(path: str | os.PathLike[str]) -> dict:
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise CheckpointError(f"{path}: no training state to resume from") from None
    except Exception as e:  # noqa: BLE001
        raise CheckpointError(f"{path}: unreadable training state ({str(e).splitlines()[0][:160]})") from None
