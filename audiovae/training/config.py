"""Run configuration: one YAML file (``model``, ``mel``, ``data``, ``train``) -> typed dataclasses.

Packaged configs are found by name (``speech_vae``) so they survive ``pip install``; any value can be overridden as
``key=value`` with a dotted key, parsed as YAML and coerced to the field's type. A config may start from another
(``base: anomaly_vae``) and state only what it changes. Every mistake is a one-line
:class:`~audiovae.errors.ConfigError` that names the key.

It is part of the training package because it checks ``model`` against what training can build
(:data:`.registry.TRAINABLES`); ``audiovae.config`` re-exports it.
"""

from __future__ import annotations

import contextlib
import math
import os
from collections.abc import Sequence
from dataclasses import MISSING, asdict, dataclass, field, fields
from importlib import resources
from pathlib import Path

import yaml

from ..errors import ConfigError
from ..features import MelConfig
from .registry import TRAINABLES, trainable_options

__all__ = ["RunConfig", "DataConfig", "TrainConfig", "load_run_config", "packaged_configs", "run_config_from_dict"]

DATASET_KINDS = ("segments", "pairs", "waveform")
OPTIM_KEYS = {"lr": 1e-3, "weight_decay": 0.0, "betas": (0.9, 0.99), "grad_clip": 1.0}  # examples of each type


@dataclass
class DataConfig:
    """Where the audio comes from and how it is cut.

    Attributes:
        train: a corpus folder, a ``manifest.jsonl`` or a dataset folder of a known layout; its ``train`` split trains.
        layout: ``auto`` or one of :data:`audiovae.data.layouts.LAYOUTS` (used for ``valid`` too).
        valid: a separate validation source (every file of it); default: the ``valid`` split of ``train``.
        segment_frames: log-mel frames per training crop.
        cache_dir: a :class:`FeatureCache` root (features computed once, up front; used by ``segments``); ``None``
            computes on the fly.
        num_workers: DataLoader worker processes (0: load in the training process).
        conditioning: ``speaker`` (batches carry speaker ids; the model's ``n_speakers`` is set from the data) or
            ``none``.
        valid_items: validation crops at most (a seeded choice; 0 = every file).
        exclude_speakers: speakers left out of training and validation (to test one-shot conversion to a voice
            the model never heard).
        dataset: what one item is (:data:`audiovae.training.data.DATASETS`): ``segments`` (log-mel crops, with the
            clean crop as target where the entries are noisy/clean pairs), ``pairs`` (clean speech mixed with noise
            on the fly, at an SNR drawn from ``snr_range``) or ``waveform`` (waveform crops with their log-mel, for
            vocoders).
        noise: for ``pairs``: a folder, manifest or corpus of noise recordings (every file); none: coloured noise.
        snr_range: for ``pairs``: SNRs in dB drawn uniformly.
        max_snr: for ``segments`` over a noisy corpus (entries with an ``snr``): train only on its mixtures at or
            below this SNR in dB (noise-free ones kept; the validation split is not filtered), to spend the steps
            where noise is loud; ``None``: every mixture. With ``pairs``, narrow ``snr_range`` instead.
    """

    train: str = ""
    layout: str = "auto"
    valid: str | None = None
    segment_frames: int = 128
    cache_dir: str | None = None
    num_workers: int = 0
    conditioning: str = "none"
    valid_items: int = 256
    exclude_speakers: tuple[str, ...] = ()
    dataset: str = "segments"
    noise: str | None = None
    snr_range: tuple[float, float] = (-5.0, 20.0)
    max_snr: float | None = None

    def __post_init__(self) -> None:
        self.exclude_speakers = tuple(self.exclude_speakers)
        self.snr_range = tuple(self.snr_range)
        if self.dataset not in DATASET_KINDS:
            raise ConfigError(f"data.dataset={self.dataset!r} must be one of {', '.join(DATASET_KINDS)}")
        if self.max_snr is not None:  # _coerce passes a None default's values through as YAML read them
            value = None
            with contextlib.suppress(TypeError, ValueError):
                value = None if isinstance(self.max_snr, bool) else float(self.max_snr)
            if value is None or not math.isfinite(value):
                raise ConfigError(f"data.max_snr={self.max_snr!r} must be a finite number of dB (or null)")
            self.max_snr = value
            if self.dataset == "pairs":
                raise ConfigError("data.max_snr filters a noisy corpus's mixtures; with data.dataset=pairs narrow "
                                  "data.snr_range instead (e.g. data.snr_range=[-5, 10])")
        if len(self.snr_range) != 2 or self.snr_range[0] > self.snr_range[1]:
            raise ConfigError(f"data.snr_range={list(self.snr_range)} must be [low, high] in dB")
        if self.conditioning not in ("speaker", "none"):
            raise ConfigError(f"data.conditioning={self.conditioning!r} must be 'speaker' or 'none'")
        for name in ("segment_frames",):
            if getattr(self, name) <= 0:
                raise ConfigError(f"data.{name}={getattr(self, name)} must be > 0")
        for name in ("num_workers", "valid_items"):
            if getattr(self, name) < 0:
                raise ConfigError(f"data.{name}={getattr(self, name)} must be >= 0")


@dataclass
class TrainConfig:
    """Optimisation, schedules, logging and checkpointing.

    Attributes:
        steps: optimiser steps in all (skipped non-finite steps count).
        batch_size: the *global* batch: split evenly across ``torchrun`` processes, so a config trains the same
            model on any number of devices.
        lr, weight_decay, betas: AdamW, one optimiser per parameter group of the model.
        warmup_steps: linear learning-rate warmup from 0.
        lr_schedule: ``cosine`` (to 0 at ``steps``) or ``constant`` after the warmup.
        grad_clip: maximum gradient norm per parameter group (0 disables clipping).
        amp: ``auto`` (bf16 autocast on CUDA and on CPUs with native bf16 — AVX512-BF16 or AMX —, fp32 elsewhere),
            ``true`` or ``false``. Validation always runs in fp32.
        ema_decay: exponential moving average of the weights; the exported checkpoint holds it (0 disables).
        log_every, valid_every, checkpoint_every: in steps; the last step always validates and checkpoints.
        seed: model initialisation, data order and crops, sampling noise.
        max_bad_steps: a non-finite loss or gradient skips the step; this many in a row abort the run.
        out_dir: where ``model.safetensors``, ``state.pt``, ``config.yaml``, ``log.csv`` and ``plots/`` go.
        optim: per parameter group, settings that differ from the ones above: ``lr``, ``weight_decay``, ``betas``,
            ``grad_clip`` (e.g. ``train.optim.disc.lr=2e-4`` for an adversary's group).
        init: warm start (fine-tuning): a model checkpoint or vocoder file whose weights the parts the run saves
            start from (its model, or its vocoder); the rest (discriminators) and the optimisers start fresh, and the
            data statistics come with the weights. A resumed run ignores it: its state has the weights.
        compile: run each trained part of the model (its direct children that hold trained parameters: encoder,
            decoder, ...) through ``torch.compile`` (TorchInductor; the first steps compile; on a CPU it needs a C++
            compiler); the loss around them stays eager. Parameter names and checkpoints are the same.
    """

    steps: int = 3000
    batch_size: int = 16
    lr: float = 1e-3
    weight_decay: float = 1e-4
    betas: tuple[float, float] = (0.9, 0.99)
    warmup_steps: int = 200
    lr_schedule: str = "cosine"
    grad_clip: float = 1.0
    amp: str | bool = "auto"
    ema_decay: float = 0.999
    log_every: int = 50
    valid_every: int = 500
    checkpoint_every: int = 500
    seed: int = 0
    max_bad_steps: int = 5
    out_dir: str = "runs/run"
    optim: dict = field(default_factory=dict)
    init: str | None = None
    compile: bool = False

    def __post_init__(self) -> None:
        self.optim = _optim_settings(self.optim)
        if not isinstance(self.compile, bool):
            raise ConfigError(f"train.compile={self.compile!r} must be true or false")
        for name in ("steps", "batch_size", "log_every", "valid_every", "checkpoint_every", "max_bad_steps"):
            if getattr(self, name) <= 0:
                raise ConfigError(f"train.{name}={getattr(self, name)} must be > 0")
        _check_optim("train", {key: getattr(self, key) for key in OPTIM_KEYS})
        if self.warmup_steps < 0:
            raise ConfigError(f"train.warmup_steps={self.warmup_steps} must be >= 0")
        if self.lr_schedule not in ("cosine", "constant"):
            raise ConfigError(f"train.lr_schedule={self.lr_schedule!r} must be 'cosine' or 'constant'")
        if self.amp not in ("auto", True, False):
            raise ConfigError(f"train.amp={self.amp!r} must be auto, true or false")
        if not 0 <= self.ema_decay < 1:
            raise ConfigError(f"train.ema_decay={self.ema_decay} must be in [0, 1) (0 disables the EMA)")

    def optim_for(self, group: str) -> dict:
        """Optimiser settings of one parameter group: ``train.optim.<group>.*`` over the ``train.*`` defaults."""
        base = {key: getattr(self, key) for key in OPTIM_KEYS}
        return {**base, "betas": tuple(self.betas), **self.optim.get(group, {})}


def _optim_settings(optim) -> dict[str, dict]:  # noqa: ANN001 - straight from YAML
    """``train.optim``: ``{group: {key: value}}`` with known keys, values coerced and range-checked."""
    if not isinstance(optim, dict):
        raise ConfigError(f"train.optim must be a mapping of parameter group -> settings, not {optim!r}")
    out: dict[str, dict] = {}
    for group, settings in optim.items():
        if not isinstance(settings, dict):
            raise ConfigError(f"train.optim.{group} must be a mapping like {{lr: 2e-4}}, not {settings!r}")
        out[group] = {}
        for key, value in settings.items():
            name = f"train.optim.{group}.{key}"
            if key not in OPTIM_KEYS:
                raise ConfigError(f"unknown config key {name} (known: {', '.join(OPTIM_KEYS)})")
            out[group][key] = _coerce(name, value, OPTIM_KEYS[key])
        _check_optim(f"train.optim.{group}", out[group])
    return out


def _check_optim(prefix: str, settings: dict) -> None:
    """Range checks of optimiser settings, for ``train.*`` and each ``train.optim.<group>.*`` alike."""
    for key, value in settings.items():
        if key == "betas" and (len(value) != 2 or not all(0 <= b < 1 for b in value)):
            raise ConfigError(f"{prefix}.betas={list(value)} must be two numbers in [0, 1)")
        if key != "betas" and (value < 0 or (key == "lr" and value == 0)):
            raise ConfigError(f"{prefix}.{key}={value} must be {'> 0' if key == 'lr' else '>= 0'}")

@dataclass
class RunConfig:
    """A whole training run. ``model`` is ``{type: ..., **options of that model's config}``; ``task`` is stored in
    the checkpoint (default: ``convert`` for speaker-conditioned models, else ``reconstruct``)."""

    model: dict
    mel: MelConfig = field(default_factory=MelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    task: str | None = None

    def to_dict(self) -> dict:
        """Plain YAML-safe values (tuples as lists), in the file's layout."""
        def plain(x):  # noqa: ANN001, ANN202
            if isinstance(x, dict):
                return {k: plain(v) for k, v in x.items()}
            if isinstance(x, list | tuple):
                return [plain(v) for v in x]
            return x

        out = {"model": plain(self.model), "mel": plain(self.mel.to_dict()), "data": plain(asdict(self.data)),
               "train": plain(asdict(self.train))}
        if self.task is not None:
            out["task"] = self.task
        return out

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.to_dict(), sort_keys=False)


def packaged_configs() -> list[str]:
    """Names of the configs shipped inside the package (``audiovae/configs/*.yaml``)."""
    root = resources.files("audiovae").joinpath("configs")
    return sorted(p.name.removesuffix(".yaml") for p in root.iterdir() if p.name.endswith(".yaml"))


def _read_config_text(source: str | os.PathLike[str]) -> str:
    path = Path(source)
    if path.is_file():
        return path.read_text(encoding="utf-8")
    name = str(source).removesuffix(".yaml")
    if name in packaged_configs():
        return resources.files("audiovae").joinpath("configs", f"{name}.yaml").read_text(encoding="utf-8")
    raise ConfigError(f"{source}: no such config file or packaged config (packaged: {', '.join(packaged_configs())})")


def _apply_override(raw: dict, item: str) -> None:
    """``a.b.c=value`` into the nested dict; the value is parsed as YAML (``[32, 32]``, ``true``, ``null``)."""
    key, sep, text = item.partition("=")
    key = key.strip()
    if not sep or not key or any(not part for part in key.split(".")):
        raise ConfigError(f"override {item!r}: expected key=value with a dotted key, e.g. train.steps=200")
    try:
        value = yaml.safe_load(text) if text.strip() else None
    except yaml.YAMLError:
        value = text  # an unparsable value is a plain string
    *parents, leaf = key.split(".")
    node = raw
    for i, part in enumerate(parents):
        child = node.setdefault(part, {})
        if not isinstance(child, dict):
            raise ConfigError(f"override {item!r}: {'.'.join(parents[:i + 1])} is not a section")
        node = child
    node[leaf] = value


def _coerce(key: str, value, default):  # noqa: ANN001, ANN202 - values of any YAML type
    """``value`` in the type of the field's ``default`` (YAML reads ``1e-3`` as a string, ``[2, 2]`` as a list)."""
    if value is None or default is None:
        return value
    if isinstance(default, bool):
        if isinstance(value, bool):
            return value
    elif isinstance(default, int):
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
    elif isinstance(default, float):
        if isinstance(value, int | float) and not isinstance(value, bool):
            return float(value)
        if isinstance(value, str):
            with contextlib.suppress(ValueError):
                return float(value)
    elif isinstance(default, tuple):
        if isinstance(value, list | tuple):
            elem = default[0] if default else None
            return tuple(_coerce(f"{key}[{i}]", v, elem) for i, v in enumerate(value))
    elif isinstance(default, str):
        if isinstance(value, str | bool):
            return value
    else:
        return value
    raise ConfigError(f"{key}={value!r}: expected {type(default).__name__} (like {default!r})")


def _section(cls: type, name: str, values, skip: Sequence[str] = ()) -> dict:  # noqa: ANN001
    """Coerced keyword arguments of dataclass ``cls`` from a config section; unknown keys name themselves."""
    if values is None:
        values = {}
    if not isinstance(values, dict):
        raise ConfigError(f"config section {name!r} must be a mapping of key: value, not {type(values).__name__}")
    known = {f.name: f for f in fields(cls)}
    out = {}
    for key, value in values.items():
        if key in skip:
            continue
        if key not in known:
            options = ", ".join(k for k in known if k not in skip)
            raise ConfigError(f"unknown config key {name}.{key} (known: {options})")
        f = known[key]
        default = f.default if f.default is not MISSING else f.default_factory()  # type: ignore[misc]
        out[key] = _coerce(f"{name}.{key}", value, default)
    return out


def run_config_from_dict(raw: dict) -> RunConfig:
    """Validate and type a parsed config (file plus overrides)."""
    if not isinstance(raw, dict):
        raise ConfigError("a run config must be a YAML mapping with model, mel, data and train sections")
    unknown = sorted(set(raw) - {"model", "mel", "data", "train", "task"})
    if unknown:
        raise ConfigError(f"unknown config key {unknown[0]} (sections: model, mel, data, train, task)")
    model_raw = raw.get("model") or {}
    if not isinstance(model_raw, dict) or "type" not in model_raw:
        raise ConfigError(f"config: model.type is required (one of {', '.join(sorted(TRAINABLES))})")
    model_type = model_raw["type"]
    if model_type not in TRAINABLES:
        raise ConfigError(f"model.type={model_type!r}: choose one of {', '.join(sorted(TRAINABLES))}")
    mel = MelConfig(**_section(MelConfig, "mel", raw.get("mel")))
    options = _section(TRAINABLES[model_type].config_class, "model", model_raw, skip=("type",))
    if "n_mels" in options and options["n_mels"] != mel.n_mels:
        raise ConfigError(f"model.n_mels={options['n_mels']} differs from mel.n_mels={mel.n_mels} (leave it out)")
    options["n_mels"] = mel.n_mels
    model_cfg = TRAINABLES[model_type].config_class(**options)  # validates the options now, not after loading data
    task = raw.get("task")
    if task is not None and not isinstance(task, str):
        raise ConfigError(f"task={task!r} must be a string")
    return RunConfig(model={"type": model_type, **model_cfg.to_dict()}, mel=mel,
                     data=DataConfig(**_section(DataConfig, "data", raw.get("data"))),
                     train=TrainConfig(**_section(TrainConfig, "train", raw.get("train"))), task=task)


def load_run_config(source: str | os.PathLike[str], overrides: Sequence[str] = ()) -> RunConfig:
    """A run config from a YAML file or a packaged name (``speech_vae``), with ``key=value`` overrides applied.

    Example: ``load_run_config("speech_vae", ["train.steps=200", "model.latent_dim=16"])``.
    """
    raw = _load_raw(source)
    for item in overrides:
        _apply_override(raw, item)
    return run_config_from_dict(raw)


def _load_raw(source: str | os.PathLike[str], chain: tuple[str, ...] = ()) -> dict:
    """The YAML mapping of ``source`` with its ``base:`` (a packaged config, or a file relative to this one) merged
    underneath, so a variant config states only what it changes."""
    text = _read_config_text(source)
    try:
        raw = yaml.safe_load(text) or {}
    except yaml.YAMLError as e:
        raise ConfigError(f"{source}: not valid YAML ({str(e).splitlines()[0]})") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"{source}: a run config must be a YAML mapping")
    base = raw.pop("base", None)
    if base is None:
        return raw
    if not isinstance(base, str) or not base:
        raise ConfigError(f"{source}: base must name a config (a packaged name or a YAML file), not {base!r}")
    if Path(source).is_file() and not Path(base).is_absolute() and (Path(source).parent / base).is_file():
        base = str(Path(source).parent / base)
    if base in chain or len(chain) > 8:
        raise ConfigError(f"{source}: config bases form a loop ({' -> '.join([*chain, base])})")
    return _merged(_for_type(_load_raw(base, (*chain, str(source))), raw), raw)


def _for_type(base: dict, over: dict) -> dict:
    """``base`` with the model options that ``over``'s model type lacks taken out, when ``over`` changes the type
    (a ``wae`` config based on ``speech_vae`` keeps its architecture, not its KL settings)."""
    new = over.get("model", {}).get("type") if isinstance(over.get("model"), dict) else None
    model = base.get("model")
    if not new or not isinstance(model, dict) or model.get("type") in (None, new):
        return base
    known = trainable_options(new) | {"type"}
    return {**base, "model": {k: v for k, v in model.items() if k in known}}


def _merged(base: dict, over: dict) -> dict:
    """``over`` on top of ``base``: sections merge key by key, any other value replaces."""
    out = dict(base)
    for key, value in over.items():
        out[key] = _merged(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
    return out


