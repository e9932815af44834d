"""The training engine: one :class:`Trainer` for every model, on CPU, one GPU or many (``torchrun``).

A run is described by one YAML file (:class:`RunConfig`: ``model``, ``mel``, ``data``, ``train``), packaged ones found
by name so they survive ``pip install``, any value overridable as ``key=value``. The Trainer steps one AdamW optimiser
per parameter group of the model (each group's loss reaches only its own parameters, so adversarial variants need no
special path), keeps an EMA of the weights (what the exported checkpoint holds), validates on fixed crops, watches for
posterior collapse and non-finite steps, and checkpoints atomically so that ``resume`` continues bit for bit: the data
order is a pure function of ``(seed, epoch)`` and every RNG, optimiser and data position is saved.
"""

from __future__ import annotations

import contextlib
import csv
import io
import math
import os
import time
import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
import yaml
from torch import nn
from torch.utils.data import DataLoader
from tqdm.auto import tqdm

from .checkpoint import Checkpoint, CheckpointError, load_torch_state, save_checkpoint, save_torch_state
from .config import DataConfig, RunConfig, TrainConfig, load_run_config, packaged_configs, run_config_from_dict
from .data.cache import FeatureCache
from .data.datasets import MelSegments, SpeakerMap, select
from .data.layouts import discover
from .data.manifest import Entry
from .device import resolve_device
from .errors import AudiovaeError, ConfigError
from .features import MelConfig
from .fileio import atomic_path
from .losses import active_units
from .models import LatentModel, LossOutput, build_model
from .pitch import speaker_registers
from .plots import plot_logmels

__all__ = ["RunConfig", "DataConfig", "TrainConfig", "Trainer", "load_run_config", "packaged_configs", "train",
           "run_config_from_dict", "epoch_order", "lr_factor", "CollapseWarning"]

NORM_ITEMS = 512  # training crops used to estimate the per-band log-mel statistics on a fresh start
COLLAPSE_FRACTION = 0.25  # warn when fewer than this fraction of latent dimensions are active
MODEL_FILE, STATE_FILE, CONFIG_FILE, LOG_FILE = "model.safetensors", "state.pt", "config.yaml", "log.csv"


class CollapseWarning(UserWarning):
    """Few latent dimensions carry information (posterior collapse): the model ignores most of its latent code."""


# --- small pure helpers -------------------------------------------------------------------------------------------


def epoch_order(seed: int, epoch: int, n: int, batch: int) -> torch.Tensor:
    """Global sample order of one epoch, cut to whole batches: a permutation seeded by ``(seed, epoch)`` only, so an
    interrupted run resumes on the same data (tiled when the data set is smaller than one batch)."""
    g = torch.Generator().manual_seed(int(np.random.SeedSequence([seed, epoch]).generate_state(1)[0]))
    order = torch.cat([torch.randperm(n, generator=g) for _ in range(max(1, -(-batch // n)))])
    return order[: len(order) // batch * batch]


def lr_factor(step: int, warmup: int, total: int, schedule: str) -> float:
    """Learning-rate multiplier: linear warmup, then constant or cosine down to 0 at ``total``."""
    if step < warmup:
        return (step + 1) / warmup
    if schedule == "constant":
        return 1.0
    progress = min(1.0, (step - warmup) / max(1, total - warmup))
    return 0.5 * (1.0 + math.cos(math.pi * progress))


def _rng_state(device: torch.device) -> dict[str, torch.Tensor]:
    state = {"torch": torch.get_rng_state()}
    if device.type == "cuda":
        state["cuda"] = torch.cuda.get_rng_state(device)
    return state


def _set_rng_state(state: dict[str, torch.Tensor], device: torch.device) -> None:
    torch.set_rng_state(state["torch"])
    if device.type == "cuda" and "cuda" in state:
        torch.cuda.set_rng_state(state["cuda"], device)


def _first_difference(a, b, prefix: str = "") -> str | None:  # noqa: ANN001
    """Dotted key of the first value that differs between two nested dicts, or None."""
    if isinstance(a, dict) and isinstance(b, dict):
        for k in sorted(set(a) | set(b)):
            d = _first_difference(a.get(k), b.get(k), f"{prefix}{k}.")
            if d:
                return d
        return None
    return None if a == b else f"{prefix.rstrip('.')} ({b!r} in the saved run, {a!r} now)"


def _write_csv(path: Path, rows: list[dict], fields_: list[str]) -> None:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=fields_, restval="", extrasaction="ignore")
    writer.writeheader()
    writer.writerows(rows)
    with atomic_path(path) as tmp:
        tmp.write_text(buf.getvalue(), encoding="utf-8")


def _read_csv(path: Path) -> tuple[list[dict], list[str]]:
    if not path.is_file():
        return [], []
    with open(path, newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        return list(reader), list(reader.fieldnames or [])


def _plot_reconstruction(path: Path, mel: torch.Tensor, estimate: torch.Tensor, config: MelConfig,
                         title: str) -> None:
    """Input above reconstruction, same colour scale (dB), written atomically."""
    plot_logmels(path, [(f"{title}: input", mel), (f"{title}: reconstruction", estimate)], config)


class _LossForward(nn.Module):
    """``forward`` = the model's ``loss``, so DDP's gradient hooks see the call (DDP only wraps ``forward``)."""

    def __init__(self, model: LatentModel) -> None:
        super().__init__()
        self.model = model

    def forward(self, batch: dict[str, torch.Tensor], step: int) -> LossOutput:
        return self.model.loss(batch, step)


def _init_distributed(device: torch.device) -> tuple[int, int, bool]:
    """(rank, world size, whether we created the process group) from torchrun's environment variables."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size(), False
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return 0, 1, False
    if not dist.is_available():
        raise AudiovaeError("WORLD_SIZE is set but this torch build has no torch.distributed")
    dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return dist.get_rank(), dist.get_world_size(), True


# --- the trainer --------------------------------------------------------------------------------------------------


class Trainer:
    """Trains one model from a :class:`RunConfig`. ``Trainer(config).fit()`` returns the checkpoint path.

    Under ``torchrun`` every process builds a Trainer; only rank 0 writes files, logs and shows progress.
    """

    def __init__(self, config: RunConfig, device: str | torch.device = "auto", resume: bool = False,
                 progress: bool = True) -> None:
        self.config, self.progress = config, progress
        tc = config.train
        self.device = resolve_device(str(device))
        local_rank = int(os.environ.get("LOCAL_RANK", "0"))
        if self.device.type == "cuda" and "LOCAL_RANK" in os.environ:
            self.device = torch.device("cuda", local_rank)
            torch.cuda.set_device(self.device)
        self.rank, self.world, self._owns_group = _init_distributed(self.device)
        self.is_main = self.rank == 0
        if tc.batch_size % self.world:
            raise ConfigError(f"train.batch_size={tc.batch_size} (the global batch) must be divisible by the "
                              f"{self.world} processes")
        self.out_dir = Path(tc.out_dir)
        if not resume and (self.out_dir / STATE_FILE).exists():
            raise ConfigError(f"{self.out_dir} already holds a run; resume it (--resume) or set train.out_dir")
        self.amp = self.device.type == "cuda" if tc.amp == "auto" else bool(tc.amp)
        if self.device.type == "cuda":
            torch.backends.cudnn.benchmark = True  # fixed segment length: the autotuned kernels are reused

        self._setup_data()
        torch.manual_seed(tc.seed)  # the same initial weights on every process
        self.model = build_model(config.model["type"], self._model_options()).to(self.device)
        self.groups = self.model.param_groups()
        self._check_groups()
        self.optimizers = {g: torch.optim.AdamW(p, lr=tc.lr, betas=tuple(tc.betas), weight_decay=tc.weight_decay)
                           for g, p in self.groups.items()}
        self.schedulers = {g: torch.optim.lr_scheduler.LambdaLR(opt, self._lr_lambda) for g, opt in
                           self.optimizers.items()}
        self.step = self.epoch = self.batch_in_epoch = self.bad_steps = 0
        self.order: torch.Tensor | None = None
        self._sums: dict[str, torch.Tensor] = {}
        self._count = self._skipped = 0
        self.last_valid: dict = {}
        self.history: list[dict] = []  # the rows this process logged (rank 0), as written to log.csv
        self._valid_batches: list[dict] | None = None
        self._csv_fields: list[str] | None = None
        self._tb = None

        saved = load_torch_state(self.out_dir / STATE_FILE) if resume else None
        if saved is not None:
            self._check_resumable(saved)
            try:
                self.model.load_state_dict(saved["model"])
            except (KeyError, RuntimeError) as e:
                raise CheckpointError(f"{self.out_dir / STATE_FILE}: weights do not match the model "
                                      f"({str(e).splitlines()[0][:160]})") from None
        elif self.is_main:
            self._fit_normalization()
        self.ema: LatentModel | None = None
        self.net: nn.Module = _LossForward(self.model)
        self._manual_sync = False
        if self.world > 1:
            self._wrap_ddp()  # also broadcasts rank 0's weights and normalisation to every process
        if tc.ema_decay > 0:
            self.ema = build_model(config.model["type"], self.model.config.to_dict()).to(self.device).eval()
            self.ema.load_state_dict(saved["ema"] if saved and saved.get("ema") else self.model.state_dict())
            self.ema.requires_grad_(False)
        torch.manual_seed(tc.seed + 1 + self.rank)  # sampling noise: one stream per process
        if saved is not None:
            self._load_state(saved)

    def _lr_lambda(self, step: int) -> float:
        tc = self.config.train
        return lr_factor(step, tc.warmup_steps, tc.steps, tc.lr_schedule)

    # --- setup ------------------------------------------------------------------------------------------------------
    def _setup_data(self) -> None:
        dc, mel = self.config.data, self.config.mel
        if not dc.train:
            raise ConfigError("data.train is not set: point it at a corpus folder, a manifest or a dataset folder "
                              "(e.g. data.train=corpora/speech)")
        entries = discover(dc.train, dc.layout)
        if dc.exclude_speakers:
            unknown = sorted(set(dc.exclude_speakers) - {e.speaker for e in entries})
            if unknown:
                raise ConfigError(f"data.exclude_speakers: {', '.join(unknown)} not in {dc.train}")
            entries = [e for e in entries if e.speaker not in dc.exclude_speakers]
        min_seconds = mel.min_samples / mel.sample_rate
        train, skipped = select(entries, "train", min_seconds)
        if dc.valid:
            valid, skipped_valid = select(discover(dc.valid, dc.layout), None, min_seconds)
        else:
            valid, skipped_valid = select(entries, "valid", min_seconds)
        if (skipped or skipped_valid) and self.is_main:
            warnings.warn(f"{len(skipped) + len(skipped_valid)} file(s) skipped, e.g. {(skipped + skipped_valid)[0]}",
                          stacklevel=3)
        if not train:
            raise ConfigError(f"{dc.train}: no usable files in the train split")
        if not valid:
            if self.is_main:
                warnings.warn(f"{dc.train}: no validation files; validating on training files instead", stacklevel=3)
            valid = train
        self.speakers: SpeakerMap | None = None
        self.data_info: dict = {}  # facts about the data that the checkpoint keeps (used at inference)
        if dc.conditioning == "speaker":
            self.speakers = SpeakerMap.from_entries(train)
            if not len(self.speakers):
                raise ConfigError(f"{dc.train}: data.conditioning=speaker but the files have no speaker labels")
            if self.is_main:  # each voice's pitch register, for `convert --pitch auto`
                registers = speaker_registers(train, mel)
                self.data_info["pitch"] = {name: r.to_list() for name, r in registers.items()}
            train = [e for e in train if e.speaker]
            valid = [e for e in valid if e.speaker in self.speakers.names] or train
        elif self.config.model["type"] == "cvae":
            raise ConfigError("model.type=cvae needs data.conditioning=speaker")
        cache = self._cache(train + valid) if dc.cache_dir else None
        if cache is not None:
            train = [e for e in train if e.path in cache and (not e.clean or e.clean in cache)]
            valid = [e for e in valid if e.path in cache and (not e.clean or e.clean in cache)] or train
            if not train:
                raise ConfigError(f"{dc.train}: no training file could be read")
        seed = self.config.train.seed
        self.train_set = MelSegments(train, mel, dc.segment_frames, cache=cache, speakers=self.speakers, seed=seed)
        if dc.valid_items and len(valid) > dc.valid_items:
            pick = np.random.default_rng((seed, 1)).choice(len(valid), dc.valid_items, replace=False)
            valid = [valid[i] for i in sorted(pick)]
        self.valid_set = MelSegments(valid, mel, dc.segment_frames, cache=cache, speakers=self.speakers,
                                     seed=seed + 1)  # epoch never advances: the same crops at every validation

    def _cache(self, entries: list[Entry]) -> FeatureCache:
        """Fill the feature cache on rank 0 while the others wait, then open it everywhere."""
        dc = self.config.data
        paths = sorted({p for e in entries for p in (e.path, e.clean) if p})
        if self.is_main:
            skipped = FeatureCache(dc.cache_dir, self.config.mel).update(paths, progress=self.progress)
            if skipped:
                warnings.warn(f"feature cache: {len(skipped)} file(s) unreadable, e.g. {skipped[0]}", stacklevel=3)
        if self.world > 1:
            dist.barrier()
        return FeatureCache(dc.cache_dir, self.config.mel)

    def _model_options(self) -> dict:
        options = {k: v for k, v in self.config.model.items() if k != "type"}
        if self.speakers is not None:
            options["n_speakers"] = len(self.speakers)
        return options

    def _resolved_yaml(self) -> str:
        """The run config as run: the model's options include what the data decided (``n_speakers``)."""
        config = RunConfig({"type": self.config.model["type"], **self._model_options()}, self.config.mel,
                           self.config.data, self.config.train, self.config.task)
        return config.to_yaml()

    def _check_groups(self) -> None:
        seen: set[int] = set()
        for name, params in self.groups.items():
            if not params:
                raise AudiovaeError(f"model parameter group {name!r} is empty")
            if any(id(p) in seen for p in params):
                raise AudiovaeError(f"model parameter group {name!r} shares parameters with another group")
            seen.update(id(p) for p in params)

    def _loader(self, dataset: MelSegments, batches: list[list[int]], seed: int) -> DataLoader:
        # The loader's own generator: creating an iterator must not draw from the global RNG (exact resume).
        return DataLoader(dataset, batch_sampler=batches, num_workers=self.config.data.num_workers,
                          pin_memory=self.device.type == "cuda", generator=torch.Generator().manual_seed(seed))

    @torch.no_grad()
    def _fit_normalization(self) -> None:
        """Per-band mean/std of log-mel over (a seeded sample of) the epoch-0 training crops, padding excluded."""
        n = len(self.train_set)
        idx = np.random.default_rng((self.config.train.seed, 2)).permutation(n)[:NORM_ITEMS].tolist()
        total = torch.zeros((), dtype=torch.float64)
        s1 = torch.zeros(self.config.mel.n_mels, dtype=torch.float64)
        s2 = torch.zeros_like(s1)
        batches = [idx[i: i + 64] for i in range(0, len(idx), 64)]
        for batch in self._loader(self.train_set, batches, 0):
            mel = batch["mel"].double()
            mask = (torch.arange(mel.shape[-1])[None, :] < batch["length"][:, None]).double()[:, None, :]
            s1 += (mel * mask).sum(dim=(0, 2))
            s2 += (mel.square() * mask).sum(dim=(0, 2))
            total += mask.sum()
        mean = s1 / total.clamp_min(1)
        std = (s2 / total.clamp_min(1) - mean.square()).clamp_min(0).sqrt()
        self.model.set_normalization(mean.float().to(self.device), std.float().to(self.device))

    def _wrap_ddp(self) -> None:
        """DDP for one optimiser group; with several groups (several backward passes per forward) the gradients are
        averaged by hand after the backward passes, under ``no_sync``."""
        from torch.nn.parallel import DistributedDataParallel as DDP

        self._manual_sync = len(self.groups) > 1
        unused = not self._manual_sync and self._has_unused_parameters()
        ids = [self.device.index] if self.device.type == "cuda" else None
        self.net = DDP(self.net, device_ids=ids, find_unused_parameters=unused)

    def _has_unused_parameters(self) -> bool:
        """Probe one batch: does every trainable parameter get a gradient? (DDP must be told if not.)"""
        first = [list(range(min(2, len(self.train_set))))]
        with torch.random.fork_rng(devices=[self.device] if self.device.type == "cuda" else []):
            batch = self._to_device(next(iter(self._loader(self.train_set, first, 0))))
            sum(self.model.loss(batch, 0).losses.values()).backward()
        unused = any(p.grad is None for p in self.model.parameters() if p.requires_grad)
        self.model.zero_grad(set_to_none=True)
        return unused

    def _check_resumable(self, saved: dict) -> None:
        before = yaml.safe_load(saved.get("config", "")) or {}
        now = yaml.safe_load(self._resolved_yaml())
        for section in ("model", "mel"):
            diff = _first_difference(now.get(section), before.get(section), f"{section}.")
            if diff:
                raise ConfigError(f"cannot resume {self.out_dir}: {diff}")

    def _load_state(self, saved: dict) -> None:
        try:
            for g, opt in self.optimizers.items():
                opt.load_state_dict(saved["optimizers"][g])
                self.schedulers[g].load_state_dict(saved["schedulers"][g])
        except (KeyError, ValueError) as e:
            raise CheckpointError(f"{self.out_dir / STATE_FILE}: optimiser state does not match the model ({e})"
                                  ) from None
        for g, sched in self.schedulers.items():  # the schedule follows the current config (train.steps may grow)
            sched._last_lr = [base * fn(sched.last_epoch) for base, fn in zip(sched.base_lrs, sched.lr_lambdas,
                                                                              strict=True)]
            for group, lr in zip(self.optimizers[g].param_groups, sched._last_lr, strict=True):
                group["lr"] = lr
        self.step, self.epoch, self.batch_in_epoch = saved["step"], saved["epoch"], saved["batch_in_epoch"]
        self.bad_steps = saved.get("bad_steps", 0)
        self.order = saved.get("order")
        self.last_valid = dict(saved.get("last_valid", {}))
        self._sums = {k: torch.tensor(v, device=self.device) for k, v in saved.get("log_sums", {}).items()}
        self._count, self._skipped = saved.get("log_count", 0), saved.get("log_skipped", 0)
        rngs = saved.get("rng", [])
        if len(rngs) == self.world:
            _set_rng_state(rngs[self.rank], self.device)
        elif self.is_main:
            warnings.warn(f"resuming on {self.world} process(es), saved on {len(rngs)}: the sampling noise differs "
                          "from an uninterrupted run", stacklevel=3)
        if self.is_main:  # forget what was logged after the checkpoint: those steps run again
            rows, names = _read_csv(self.out_dir / LOG_FILE)
            if rows:
                _write_csv(self.out_dir / LOG_FILE, [r for r in rows if int(r["step"]) <= self.step], names)

    # --- the loop ---------------------------------------------------------------------------------------------------
    def _to_device(self, batch: dict) -> dict[str, torch.Tensor]:
        keep = {k: v for k, v in batch.items() if k != "speaker" or self.speakers is not None}
        return {k: v.to(self.device, non_blocking=True) if isinstance(v, torch.Tensor) else v for k, v in keep.items()}

    def _epoch_batches(self) -> list[list[int]]:
        """This process's share of the remaining batches of the current epoch."""
        tc = self.config.train
        if self.order is None:
            self.order = epoch_order(tc.seed, self.epoch, len(self.train_set), tc.batch_size)
        per_rank = tc.batch_size // self.world
        rows = self.order.view(-1, tc.batch_size)[self.batch_in_epoch:]
        return rows[:, self.rank * per_rank: (self.rank + 1) * per_rank].tolist()

    def _all_finite(self, value: torch.Tensor) -> bool:
        """Agreed by every process, so that all of them skip a step together."""
        bad = (~torch.isfinite(value)).any().float().reshape(1)
        if self.world > 1:
            dist.all_reduce(bad, op=dist.ReduceOp.MAX)
        return not bool(bad.item())

    def _train_step(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor] | None:
        """Forward, one backward per group (into that group's parameters only), clip, step; ``None`` if skipped."""
        tc = self.config.train
        with self.net.no_sync() if self._manual_sync else contextlib.nullcontext():
            with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.amp):
                out: LossOutput = self.net(batch, self.step)
            losses = out.losses
            if not self._all_finite(torch.stack([v.detach().float() for v in losses.values()])):
                return None
            for opt in self.optimizers.values():
                opt.zero_grad(set_to_none=True)
            names = list(losses)
            for i, name in enumerate(names):
                losses[name].float().backward(inputs=self.groups[name], retain_graph=i < len(names) - 1)
        if self._manual_sync:  # every process reduces the same list: a missing gradient counts as zero
            params = [p for name in names for p in self.groups[name]]
            for p in params:
                if p.grad is None:
                    p.grad = torch.zeros_like(p)
            grads = [p.grad for p in params]
            flat = torch._utils._flatten_dense_tensors(grads)
            dist.all_reduce(flat)
            flat /= self.world
            for g, synced in zip(grads, torch._utils._unflatten_dense_tensors(flat, grads), strict=True):
                g.copy_(synced)
        norms = {name: torch.nn.utils.clip_grad_norm_(self.groups[name], tc.grad_clip or float("inf"))
                 for name in names}
        if not self._all_finite(torch.stack(list(norms.values()))):
            return None
        for name in names:
            self.optimizers[name].step()
        if self.ema is not None:
            self._update_ema()
        logs = {("loss" if name == "model" else f"loss_{name}"): v.detach().float() for name, v in losses.items()}
        logs.update({("grad_norm" if name == "model" else f"grad_norm_{name}"): v.detach().float()
                     for name, v in norms.items()})
        for k, v in out.logs.items():
            logs[k] = v.detach().float() if isinstance(v, torch.Tensor) else torch.tensor(float(v), device=self.device)
        return logs

    @torch.no_grad()
    def _update_ema(self) -> None:
        assert self.ema is not None
        decay = min(self.config.train.ema_decay, (1 + self.step) / (10 + self.step))  # short memory at the start
        ema_p = list(self.ema.parameters())
        torch._foreach_lerp_(ema_p, [p.detach() for p in self.model.parameters()], 1.0 - decay)
        for e, b in zip(self.ema.buffers(), self.model.buffers(), strict=True):
            e.copy_(b)

    def fit(self, until: int | None = None) -> Path:
        """Train to ``train.steps`` (or stop after step ``until``, checkpointing, as if interrupted there); return
        the path of ``model.safetensors``."""
        tc = self.config.train
        stop = min(tc.steps, until) if until is not None else tc.steps
        if self.is_main:
            self.out_dir.mkdir(parents=True, exist_ok=True)
            (self.out_dir / "plots").mkdir(exist_ok=True)
            with atomic_path(self.out_dir / CONFIG_FILE) as tmp:
                tmp.write_text(self._resolved_yaml(), encoding="utf-8")
            if self.step == 0:
                (self.out_dir / LOG_FILE).unlink(missing_ok=True)  # a fresh run starts a fresh log
            self._open_tensorboard()
        bar = tqdm(total=tc.steps, initial=self.step, desc="train", unit="step", dynamic_ncols=True,
                   disable=not (self.is_main and self.progress))
        self.model.train()
        audio_seconds, t0 = 0.0, time.perf_counter()
        hop_seconds = self.config.mel.hop_length / self.config.mel.sample_rate
        try:
            while self.step < stop:
                self.train_set.set_epoch(self.epoch)
                batches = self._epoch_batches()
                for batch in self._loader(self.train_set, batches, self.config.train.seed + self.epoch):
                    audio_seconds += float(batch["length"].sum()) * hop_seconds
                    logs = self._train_step(self._to_device(batch))
                    self._account(logs)
                    for sched in self.schedulers.values():
                        sched.step()
                    self.step += 1
                    self.batch_in_epoch += 1
                    bar.update(1)
                    logged, spent = self._periodic(stop, audio_seconds, time.perf_counter() - t0, bar)
                    if logged:  # throughput counts training only, not validation or checkpoints
                        audio_seconds, t0 = 0.0, time.perf_counter()
                    else:
                        t0 += spent
                    if self.step >= stop:
                        break
                else:
                    self.epoch, self.batch_in_epoch, self.order = self.epoch + 1, 0, None
        finally:
            bar.close()
            if self._tb is not None:
                self._tb.close()
        return self.out_dir / MODEL_FILE

    def _account(self, logs: dict[str, torch.Tensor] | None) -> None:
        """Accumulate this step's terms (no device sync); count and guard skipped steps."""
        if logs is None:
            self.bad_steps += 1
            self._skipped += 1
            if self.is_main:
                warnings.warn(f"step {self.step + 1}: non-finite loss or gradient, step skipped", stacklevel=3)
            if self.bad_steps >= self.config.train.max_bad_steps:
                raise AudiovaeError(f"training diverged: {self.bad_steps} non-finite steps in a row (up to step "
                                    f"{self.step + 1}); lower train.lr, set train.grad_clip, or resume from the last "
                                    "checkpoint")
            return
        self.bad_steps = 0
        self._count += 1
        for k, v in logs.items():
            self._sums[k] = self._sums[k] + v if k in self._sums else v.clone()

    def _periodic(self, stop: int, audio_seconds: float, elapsed: float, bar: tqdm) -> tuple[bool, float]:
        """Log / validate / checkpoint when due; returns (logged, seconds spent validating and checkpointing)."""
        tc, s = self.config.train, self.step
        log = s % tc.log_every == 0 or s == tc.steps  # not at `until`: an interruption must not change the logs
        valid = s % tc.valid_every == 0 or s == tc.steps
        ckpt = s % tc.checkpoint_every == 0 or s == stop
        if not (log or valid or ckpt):
            return False, 0.0
        start = time.perf_counter()
        row: dict = {}
        if log:
            row = self._log_row(audio_seconds, elapsed)
            bar.set_postfix(loss=f"{row.get('loss', float('nan')):.4g}",
                            audio=f"{row['audio_s_per_s']:.0f}s/s", refresh=False)
        if valid:
            metrics = self.validate() if self.is_main else {}
            self.last_valid = metrics
            row.update({"step": s, "epoch": self.epoch})
            row.update({k: v for k, v in metrics.items() if not isinstance(v, list)})
            if self.progress and "valid_loss" in metrics:
                units = f", {metrics['valid_active_units']} active units" if "valid_active_units" in metrics else ""
                bar.write(f"step {s}: valid loss {metrics['valid_loss']:.4g}{units}")
        if row and self.is_main:
            self._write_row(row)
        if ckpt:
            self.save()
        if self.world > 1 and (valid or ckpt):
            dist.barrier()
        return log, time.perf_counter() - start

    def _log_row(self, audio_seconds: float, elapsed: float) -> dict:
        """Means of the terms since the last log row, averaged over processes (one all-reduce, one device sync)."""
        keys = sorted(self._sums)
        extra = torch.tensor([float(self._count), float(self._skipped), audio_seconds], device=self.device)
        stats = torch.cat([torch.stack([self._sums[k] for k in keys]), extra]) if keys else extra
        if self.world > 1:
            dist.all_reduce(stats)
        values = stats.tolist()
        count, skipped, seconds = values[-3:]
        lr = self.schedulers[next(iter(self.schedulers))].get_last_lr()[0]
        row = {"step": self.step, "epoch": self.epoch, "lr": lr, "audio_s_per_s": seconds / max(elapsed, 1e-9),
               "skipped": round(skipped / self.world)}
        row.update({k: v / count for k, v in zip(keys, values, strict=False)} if count else {})
        self._sums, self._count, self._skipped = {}, 0, 0
        return row

    def _write_row(self, row: dict) -> None:
        """Append to log.csv; a new column (validation terms appear later) rewrites the file with a wider header."""
        path = self.out_dir / LOG_FILE
        if self._csv_fields is None:
            self._csv_fields = _read_csv(path)[1]
        new = [k for k in row if k not in self._csv_fields]
        if new:
            self._csv_fields = self._csv_fields + new
            _write_csv(path, _read_csv(path)[0] + [row], self._csv_fields)
        else:
            with open(path, "a", newline="", encoding="utf-8") as f:
                csv.DictWriter(f, fieldnames=self._csv_fields, restval="").writerow(row)
        self.history.append(row)
        if self._tb is not None:
            for k, v in row.items():
                if k not in ("step", "epoch") and isinstance(v, int | float):
                    self._tb.add_scalar(k, v, self.step)

    def _open_tensorboard(self) -> None:
        self._tb = None
        try:
            from torch.utils.tensorboard import SummaryWriter
        except Exception:  # noqa: BLE001 - optional (missing, or broken by its own dependencies): log.csv has it all
            return
        self._tb = SummaryWriter(str(self.out_dir / "tensorboard"), purge_step=self.step or None)

    # --- validation and checkpoints ---------------------------------------------------------------------------------
    def _valid_data(self) -> list[dict]:
        if self._valid_batches is None:
            n, b = len(self.valid_set), self.config.train.batch_size
            batches = [list(range(i, min(n, i + b))) for i in range(0, n, b)]
            self._valid_batches = list(self._loader(self.valid_set, batches, 0))
        return self._valid_batches

    @torch.no_grad()
    def validate(self) -> dict:
        """Mean of the model's logged terms on the fixed validation crops (the EMA model when there is one), active
        units and KL per latent dimension; writes ``plots/step_XXXXXX.png``. Rank 0 only."""
        model = self.ema if self.ema is not None else self.model
        was_training = model.training
        model.eval()
        sums: dict[str, float] = {}
        n = 0
        means, kl_dims = [], None
        first: tuple[torch.Tensor, torch.Tensor | None] | None = None
        devices = [self.device] if self.device.type == "cuda" else []
        with torch.random.fork_rng(devices=devices):  # the same noise every time; training's RNG untouched
            torch.manual_seed(self.config.train.seed + 12345)
            for cpu_batch in self._valid_data():
                batch = self._to_device(cpu_batch)
                size = batch["mel"].shape[0]
                with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.amp):
                    out = model.loss(batch, self.step)
                terms = {("loss" if g == "model" else f"loss_{g}"): v for g, v in out.losses.items()} | out.logs
                for k, v in terms.items():
                    sums[k] = sums.get(k, 0.0) + float(v) * size
                n += size
                if "z" in out.outputs:  # posterior means of the valid (unpadded) latent frames
                    z, hop = out.outputs["z"].float().cpu(), getattr(model, "hop_factor", 1)
                    means += [z[i, :, : -(-int(length) // hop)] for i, length in enumerate(cpu_batch["length"])]
                if "kl_dims" in out.outputs:
                    kd = out.outputs["kl_dims"].float().cpu() * size
                    kl_dims = kd if kl_dims is None else kl_dims + kd
                if first is None:
                    first = (batch["mel"][:1], batch["speaker"][:1] if "speaker" in batch else None)
        metrics: dict = {f"valid_{k}": v / n for k, v in sums.items()}
        latent_dim = getattr(model.config, "latent_dim", 0)
        if means:
            units = active_units(torch.cat(means, dim=-1)[None])
            metrics["valid_active_units"] = units
            if latent_dim and units < COLLAPSE_FRACTION * latent_dim:
                warnings.warn(f"step {self.step}: posterior collapse? only {units} of {latent_dim} latent dimensions "
                              "are active; consider free_bits, a slower kl_warmup or a smaller beta",
                              CollapseWarning, stacklevel=2)
        if kl_dims is not None:
            metrics["valid_kl_per_dim"] = [round(float(v), 4) for v in kl_dims / n]
        if first is not None:
            mel, speaker = first
            estimate = model.reconstruct(mel.float(), speaker)
            _plot_reconstruction(self.out_dir / "plots" / f"step_{self.step:06d}.png", mel[0], estimate[0],
                                 self.config.mel, f"step {self.step}")
        model.train(was_training)
        return metrics

    def _checkpoint(self) -> Checkpoint:
        model = self.ema if self.ema is not None else self.model
        task = self.config.task or ("convert" if self.speakers is not None else "reconstruct")
        info = {"step": self.step, "epoch": self.epoch, **self.data_info}
        info.update({k: (round(v, 6) if isinstance(v, float) else v) for k, v in self.last_valid.items()})
        return Checkpoint(model, self.config.mel, list(self.speakers.names) if self.speakers else [], task, info=info)

    def save(self) -> None:
        """``model.safetensors`` (the usable model) and ``state.pt`` (everything to resume), atomically, rank 0."""
        rngs = [_rng_state(self.device)]
        if self.world > 1:
            gathered: list = [None] * self.world
            dist.all_gather_object(gathered, {k: v.cpu() for k, v in rngs[0].items()})
            rngs = gathered
        if not self.is_main:
            return
        save_checkpoint(self.out_dir / MODEL_FILE, self._checkpoint())
        state = {
            "model": self.model.state_dict(), "ema": self.ema.state_dict() if self.ema is not None else None,
            "optimizers": {g: o.state_dict() for g, o in self.optimizers.items()},
            "schedulers": {g: s.state_dict() for g, s in self.schedulers.items()},
            "step": self.step, "epoch": self.epoch, "batch_in_epoch": self.batch_in_epoch, "order": self.order,
            "bad_steps": self.bad_steps, "rng": rngs, "world_size": self.world,
            "log_sums": {k: float(v) for k, v in self._sums.items()}, "log_count": self._count,
            "log_skipped": self._skipped,
            "last_valid": self.last_valid, "config": self._resolved_yaml(),
        }
        save_torch_state(self.out_dir / STATE_FILE, state)

    def close(self) -> None:
        """Leave the process group if this Trainer created it."""
        if self._owns_group and dist.is_initialized():
            dist.destroy_process_group()
            self._owns_group = False


def train(config: str | os.PathLike[str], overrides: Sequence[str] = (), device: str = "auto",
          resume: bool = False) -> Path:
    """Train from a config file or packaged name with ``key=value`` overrides; return the checkpoint path.

    Run under ``torchrun --nproc_per_node N`` for data-parallel training (gloo on CPU, NCCL on CUDA).
    """
    trainer = Trainer(load_run_config(config, overrides), device, resume=resume)
    try:
        return trainer.fit()
    finally:
        trainer.close()

