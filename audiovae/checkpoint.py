"""Checkpoints: one ``.safetensors`` file holding the weights and, in its metadata, a JSON config from which the
model, its front end and its vocoder are rebuilt. Loading never unpickles: a pickled ``.pt`` is accepted only if
``torch.load(weights_only=True)`` accepts it (no code can run), else refused with a clear message.

Two layouts, both read by :func:`load_checkpoint`:

* format 1 (releases before the engine was reshaped; read, never written): the model alone, weights un-prefixed,
  metadata ``{"model": {type, config}, "mel", "vocoder", ...}``. Models rename format-1 weight keys on load.
* format 2 (written): named components in one file, weights prefixed by component (``model.*``, ``vocoder.*``) and
  metadata ``{"components": {name: {"type", "config"}}, "mel", ...}``: a model alone, a VAE together with its trained
  vocoder or its learned prior (``prior.*``), an anomaly detector with its normal clips' line spectra
  (``lines.*``, :class:`~audiovae.machine_lines.MachineLines`), or a vocoder alone (:func:`save_vocoder` /
  :func:`load_vocoder`).
  Every component shares the file's ``mel``. An older release refuses a format-2 file as "written by a newer
  audiovae" instead of misreading it.

Instead of carrying a vocoder, a checkpoint may point to one: ``vocoder: {"path": "voc.safetensors"}``, resolved
relative to the checkpoint; both files' :meth:`MelConfig.fingerprint` must agree.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import nn

from . import __version__
from .errors import AudiovaeError, ConfigError
from .features import MelConfig
from .fileio import atomic_path, write_errors
from .machine_lines import MachineLines
from .models import LatentModel, LatentPrior, build_model, build_prior
from .vocoders import DEFAULT_SYNTHESIS, VOCODERS, Vocoder, build_vocoder

FORMAT_VERSION = 2  # the newest layout this release reads and writes
META_KEY = "audiovae"
DEFAULT_VOCODER = {"name": "griffin-lim"}


class CheckpointError(AudiovaeError):
    """A checkpoint is missing, truncated, of another format, or would need code execution to load."""


class NoModelError(CheckpointError):
    """The file is a valid checkpoint without a model (a vocoder file): :func:`load_vocoder` reads it."""


@dataclass(frozen=True)
class ComponentKind:
    """How a checkpoint names (``type``, ``config``) and rebuilds one kind of component from the file's mel, and the
    class every component of that kind must be."""

    describe: Callable[[nn.Module], tuple[str, dict]]
    build: Callable[[str, dict, MelConfig], nn.Module]
    cls: type[nn.Module]


COMPONENT_KINDS: dict[str, ComponentKind] = {
    "model": ComponentKind(lambda m: (m.model_type, m.config.to_dict()), lambda t, c, mel: build_model(t, c),
                           LatentModel),
    "vocoder": ComponentKind(lambda v: (v.vocoder_type, v.settings()), lambda t, c, mel: build_vocoder(t, mel, **c),
                             Vocoder),
    "prior": ComponentKind(lambda p: (p.prior_type, p.config.to_dict()), lambda t, c, mel: build_prior(t, c),
                           LatentPrior),
    "lines": ComponentKind(lambda m: (m.lines_type, m.settings()), lambda t, c, mel: MachineLines.build(t, c),
                           MachineLines),
}


@dataclass
class Checkpoint:
    """Everything needed to use a trained model: the model, its front end, speakers, vocoder and task.

    ``vocoder`` is the default vocoder's settings (``{"name": ..., **kwargs}``) or a pointer ``{"path": ...}`` to a
    vocoder file; ``components`` holds modules saved beside the model: a trained ``"vocoder"``, a ``"prior"`` over
    latent sequences. Loading a
    checkpoint that points to a vocoder file puts the loaded vocoder there too (and saving keeps the pointer).
    """

    model: LatentModel
    mel: MelConfig
    speakers: list[str] = field(default_factory=list)
    task: str = "reconstruct"
    vocoder: dict = field(default_factory=lambda: dict(DEFAULT_VOCODER))
    info: dict = field(default_factory=dict)  # training step, metrics, data: for `audiovae info CKPT`
    components: dict[str, nn.Module] = field(default_factory=dict)

    def __post_init__(self) -> None:
        carried = self.components.get("vocoder")
        if isinstance(carried, Vocoder) and "path" not in self.vocoder:
            self.vocoder = {"name": carried.vocoder_type}  # its settings travel with it, in the components

    @property
    def trained_vocoder(self) -> Vocoder | None:
        """The vocoder this checkpoint carries or points to, if any (else the default is built by name)."""
        carried = self.components.get("vocoder")
        return carried if isinstance(carried, Vocoder) else None

    @property
    def prior(self) -> LatentPrior | None:
        """The learned prior over latent sequences this checkpoint carries (music models), if any."""
        prior = self.components.get("prior")
        return prior if isinstance(prior, LatentPrior) else None

    def summary(self) -> dict[str, str]:
        """What a person wants to know first, one line each (``audiovae info`` and the web page's Models tab): task,
        model, latent rate, front end, vocoder, and the prior, machine lines and speakers when there are any."""
        model, voc, prior = self.model, self.trained_vocoder, self.prior
        pointer = self.vocoder.get("path")
        where = f"from {pointer}" if pointer else "in this file"
        rows = {"task": self.task, "model": f"{model.model_type}, {_millions(model)} M parameters",
                "latents": f"{model.config.latent_dim} x {self.mel.frame_rate / model.hop_factor:.1f} frames/s",
                "front end": front_end(self.mel),
                "vocoder": f"none of its own (by default {DEFAULT_SYNTHESIS})" if voc is None
                else f"{voc.vocoder_type}, {_millions(voc)} M parameters, {where}"}
        if prior is not None:
            c = prior.config
            rows["prior"] = (f"{prior.prior_type}, {_millions(prior)} M parameters ({c.layers} x {c.hidden}, "
                             f"{c.mixtures} Gaussians per frame)")
        lines = self.components.get("lines")
        if isinstance(lines, MachineLines):
            c = lines.config
            rows["machine lines"] = (f"line spectra of {lines.spectra.shape[0]} normal clips, {c.f_lo:g} Hz-"
                                     f"{c.f_hi:g} Hz" + (f"; envelope spectra of {len(c.bands)} bands, {c.env_lo:g}-"
                                                         f"{c.env_hi:g} Hz" if c.envelope else "")
                                     + (f"; bursts in {c.burst_bands} bands, {c.burst_lo:g}-{c.burst_hi:g} Hz"
                                        if c.bursts else ""))
        if self.speakers:
            rows["speakers"] = ", ".join(self.speakers)
        return rows

    def embedded(self) -> dict[str, nn.Module]:
        """The components saved inside this file (a pointed-to vocoder stays in its own file)."""
        return {name: module for name, module in self.components.items()
                if not (name == "vocoder" and "path" in self.vocoder)}

    def metadata(self) -> dict:
        """The JSON stored beside the weights (format 2: every module, the model included, is a component)."""
        extra = self.embedded()
        _check_components(extra, self.mel)
        return {"format": FORMAT_VERSION, "package_version": __version__, "task": self.task,
                "components": _describe({"model": self.model} | extra), "mel": self.mel.to_dict(),
                "speakers": list(self.speakers), "vocoder": self.vocoder, "info": self.info}


def _millions(module: nn.Module) -> str:
    return f"{sum(p.numel() for p in module.parameters()) / 1e6:.2f}"


def front_end(mel: MelConfig) -> str:
    """A front end in one line: rate, mel bands, hop."""
    return f"{mel.sample_rate} Hz, {mel.n_mels} mels, hop {mel.hop_length}"


def _describe(modules: dict[str, nn.Module]) -> dict:
    out = {}
    for name, module in modules.items():
        kind, config = COMPONENT_KINDS[name].describe(module)
        out[name] = {"type": kind, "config": config}
    return out


def _check_components(components: dict[str, nn.Module], mel: MelConfig) -> None:
    """Refuse, before writing, what could not be loaded back."""
    for name, module in components.items():
        if name == "model" or name not in COMPONENT_KINDS:
            known = ", ".join(k for k in COMPONENT_KINDS if k != "model")
            raise CheckpointError(f"checkpoint component {name!r}: not a kind a checkpoint can carry ({known})")
        cls = COMPONENT_KINDS[name].cls
        if not isinstance(module, cls):
            raise CheckpointError(f"checkpoint component {name!r}: {type(module).__name__} is not a {cls.__name__}")
    voc = components.get("vocoder")
    if voc is None:
        return
    if VOCODERS.get(voc.vocoder_type) is not type(voc):
        raise CheckpointError(f"vocoder type {voc.vocoder_type!r} is not registered (register_vocoder), so a saved "
                              "file could not be loaded")
    if voc.config.fingerprint() != mel.fingerprint():
        raise CheckpointError("the vocoder was made for other features than the model "
                              f"({mel_difference(voc.config, mel)})")


def mel_difference(a: MelConfig, b: MelConfig) -> str:
    da, db = a.to_dict(), b.to_dict()
    fields = [f"{k} {da[k]} vs {db[k]}" for k in da if da[k] != db.get(k)]
    return f"mel fingerprint {a.fingerprint()} vs {b.fingerprint()}: " + ", ".join(fields)


def _write(path: str | os.PathLike[str], modules: dict[str, nn.Module], meta: dict, dtype: torch.dtype | None
           ) -> Path:
    """Every module's weights under its component name (``model.*``, ``vocoder.*``), atomically."""
    state = {}
    for name, module in modules.items():
        for key, t in module.state_dict().items():
            t = t.detach().cpu().contiguous()
            state[f"{name}.{key}"] = t.to(dtype) if dtype is not None and t.is_floating_point() else t
    with atomic_path(path) as tmp, write_errors(path, SafetensorError):
        save_file(state, str(tmp), metadata={META_KEY: json.dumps(meta)})
    return Path(path)


def save_checkpoint(path: str | os.PathLike[str], ckpt: Checkpoint, dtype: torch.dtype | None = None) -> Path:
    """Write atomically; ``dtype=torch.float16`` halves the size for export (floating tensors of every component)."""
    meta = ckpt.metadata()
    return _write(path, {"model": ckpt.model} | ckpt.embedded(), meta, dtype)


def save_vocoder(path: str | os.PathLike[str], vocoder: Vocoder, dtype: torch.dtype | None = None,
                 info: dict | None = None) -> Path:
    """Write a vocoder alone (format 2, one ``vocoder`` component): the file a model checkpoint may point to."""
    _check_components({"vocoder": vocoder}, vocoder.config)
    meta = {"format": FORMAT_VERSION, "package_version": __version__, "mel": vocoder.config.to_dict(),
            "components": _describe({"vocoder": vocoder}), "info": dict(info or {})}
    return _write(path, {"vocoder": vocoder}, meta, dtype)


def _read(path: Path) -> tuple[dict[str, torch.Tensor], dict]:
    if not path.is_file():
        raise CheckpointError(f"{path}: no such checkpoint" if not path.exists() else f"{path}: is not a file")
    with open(path, "rb") as f:
        head = f.read(9)
    # safetensors: an 8-byte little-endian header size, then the JSON header. Sniff that first: a header size whose
    # low byte is 0x80 would otherwise look like a pickle's first byte
    safetensors = head[8:9] == b"{" and 8 + int.from_bytes(head[:8], "little") <= path.stat().st_size
    if not safetensors and (head[:2] == b"PK" or head[:1] == b"\x80"):  # zip (torch.save) or raw pickle
        try:
            obj = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as e:  # noqa: BLE001 - any failure here means "not loadable without running code"
            found = re.search(r"(?:unsupported|Unsupported global:) GLOBAL (\S+)", str(e))
            reason = f"it would call {found.group(1)}" if found else "it holds objects that only code can rebuild"
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


def _open(path: Path) -> tuple[dict[str, torch.Tensor], dict]:
    state, meta = _read(path)
    if meta.get("format", 0) > FORMAT_VERSION:
        raise CheckpointError(f"{path}: written by a newer audiovae (format {meta['format']}); upgrade to load it")
    return state, meta


def _components(path: Path, state: dict[str, torch.Tensor], meta: dict) -> tuple[dict, dict[str, dict]]:
    """Each component's spec and weights (keys without the ``name.`` prefix)."""
    if meta.get("format", 0) < 2:
        return {"model": meta["model"]}, {"model": state}
    specs = meta["components"]
    parts: dict[str, dict] = {name: {} for name in specs}
    for key, t in state.items():
        name, _, rest = key.partition(".")
        if name not in parts or not rest:
            raise CheckpointError(f"{path}: weight {key!r} belongs to none of its components ({', '.join(specs)})")
        parts[name][rest] = t
    return specs, parts


def component_weights(path: str | os.PathLike[str], name: str) -> tuple[dict[str, torch.Tensor], MelConfig]:
    """One component's saved weights (float32) and the file's front end, without building a module: what a run's
    ``train.init`` starts from."""
    p = Path(path)
    state, meta = _open(p)
    _, parts = _components(p, state, meta)
    if name not in parts:
        raise CheckpointError(f"{p}: holds no {name} (it has {', '.join(parts)})")
    weights = {k: v.float() if v.is_floating_point() else v for k, v in parts[name].items()}
    return weights, MelConfig.from_dict(meta["mel"])


def _build(path: Path, state: dict[str, torch.Tensor], meta: dict, mel: MelConfig) -> dict[str, nn.Module]:
    """Every component stored in the file, float32 and in eval mode, on the CPU."""
    specs, parts = _components(path, state, meta)
    modules = {}
    for name, spec in specs.items():
        if name not in COMPONENT_KINDS:
            raise CheckpointError(f"{path}: has a component {name!r} this audiovae does not know; upgrade to load it")
        try:
            module = COMPONENT_KINDS[name].build(spec["type"], spec["config"], mel)
        except ConfigError as e:
            if name == "model":
                raise
            raise CheckpointError(f"{path}: {e}") from None
        module.load_state_dict({k: v.float() if v.is_floating_point() else v for k, v in parts[name].items()})
        modules[name] = module.eval()
    return modules


def _pointed(path: Path, pointer: dict, mel: MelConfig, seen: frozenset[Path]) -> Vocoder:
    """The vocoder file ``pointer`` names (relative to ``path``), checked to share ``mel``."""
    target = path.parent / str(pointer["path"])
    if target.resolve() in seen:
        raise CheckpointError(f"{path}: its vocoder pointer {target} leads back to itself")
    if not target.is_file():
        raise CheckpointError(f"{path}: points to vocoder {target}, which does not exist")
    vocoder = _load_vocoder(target, seen | {target.resolve()})
    if vocoder.config.fingerprint() != mel.fingerprint():
        raise CheckpointError(f"{path}: its vocoder {target} was made for other features "
                              f"({mel_difference(mel, vocoder.config)})")
    return vocoder


def read_metadata(path: str | os.PathLike[str]) -> dict:
    """A checkpoint's or vocoder file's metadata (front end, components, ``info``: training step, validation,
    evaluation) without building any module."""
    return _open(Path(path))[1]


def load_checkpoint(path: str | os.PathLike[str], device: torch.device | str = "cpu") -> Checkpoint:
    """Rebuild model (float32, eval mode, on ``device``), front end, settings and any carried or pointed-to vocoder
    from a checkpoint file (format 1 or 2)."""
    p = Path(path)
    state, meta = _open(p)
    try:
        mel = MelConfig.from_dict(meta["mel"])
        if "model" not in meta.get("components", {"model": None}):
            raise NoModelError(f"{p}: holds no model, only {', '.join(meta['components'])} (a vocoder file: "
                                  "load it with load_vocoder, or point a model checkpoint to it)")
        modules = _build(p, state, meta, mel)
    except (KeyError, RuntimeError, TypeError) as e:
        raise CheckpointError(f"{p}: checkpoint does not match its own config ({str(e).splitlines()[0][:160]})"
                              ) from None
    vocoder = meta.get("vocoder", dict(DEFAULT_VOCODER))
    if "path" in vocoder:
        if "vocoder" in modules:
            raise CheckpointError(f"{p}: both carries a vocoder and points to one ({vocoder['path']})")
        modules["vocoder"] = _pointed(p, vocoder, mel, frozenset({p.resolve()}))
    model = modules.pop("model")
    return Checkpoint(model.to(device), mel, list(meta.get("speakers", [])), meta.get("task", "reconstruct"),
                      vocoder, meta.get("info", {}), {name: m.to(device) for name, m in modules.items()})


def load_vocoder(path: str | os.PathLike[str], device: torch.device | str = "cpu") -> Vocoder:
    """The trained vocoder a file carries (a vocoder file, or a model checkpoint with one), float32, eval mode."""
    p = Path(path)
    return _load_vocoder(p, frozenset({p.resolve()})).to(device)


def _load_vocoder(p: Path, seen: frozenset[Path]) -> Vocoder:
    state, meta = _open(p)
    try:
        mel = MelConfig.from_dict(meta["mel"])
        if "vocoder" in meta.get("components", {}):
            return _build(p, {k: v for k, v in state.items() if k.startswith("vocoder.")},
                          meta | {"components": {"vocoder": meta["components"]["vocoder"]}}, mel)["vocoder"]
    except (KeyError, RuntimeError, TypeError) as e:
        raise CheckpointError(f"{p}: vocoder does not match its own config ({str(e).splitlines()[0][:160]})"
                              ) from None
    pointer = meta.get("vocoder", DEFAULT_VOCODER)
    if "path" in pointer:
        return _pointed(p, pointer, mel, seen)
    raise CheckpointError(f"{p}: carries no trained vocoder (it uses {pointer.get('name', DEFAULT_VOCODER['name'])}, "
                          "which is built from its settings)")


def save_torch_state(path: str | os.PathLike[str], state: dict) -> Path:
    """Training state (optimisers, schedulers, RNGs, data position) for ``--resume``: tensors and plain Python only,
    so it loads with ``weights_only=True``."""
    with atomic_path(path) as tmp, write_errors(path, RuntimeError):  # torch's zip writer on a full disk
        torch.save(state, tmp)
    return Path(path)


def load_torch_state(path: str | os.PathLike[str]) -> dict:
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise CheckpointError(f"{path}: no training state to resume from") from None
    except Exception as e:  # noqa: BLE001
        raise CheckpointError(f"{path}: unreadable training state ({str(e).splitlines()[0][:160]})") from None
