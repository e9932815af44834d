"""The training loop: one :class:`Trainer` for everything trainable, on CPU, one GPU or many (``torchrun``).

A run is described by one YAML file (:class:`~.config.RunConfig`: ``model``, ``mel``, ``data``, ``train``).
The Trainer knows only the :class:`~audiovae.trainable.Trainable` protocol: it steps one AdamW optimiser per parameter
group the model names (each group's loss reaches only its own parameters, each group may have its own settings under
``train.optim.<group>``, so adversarial variants need no special path), keeps an EMA of the weights (what the
exported checkpoint holds), runs the loss under bf16 autocast where that is enabled, skips non-finite steps and
aborts after too many, validates on fixed crops (the model adds its own metrics), and checkpoints atomically so that
``resume`` continues bit for bit (:mod:`.state`). Data comes from :mod:`.data`, logs go through :mod:`.logging`.
"""

from __future__ import annotations

import contextlib
import copy
import os
import time
import warnings
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
from torch import nn
from torch.utils.data import DataLoader, Dataset

from ..checkpoint import (
    Checkpoint,
    CheckpointError,
    component_weights,
    mel_difference,
    save_checkpoint,
    save_torch_state,
    save_vocoder,
)
from ..device import cpu_has_bf16, resolve_device
from ..errors import AudiovaeError, ConfigError
from ..fileio import remove_temporaries, write_atomic
from ..plots import plot_logmels
from ..trainable import LossOutput, Trainable
from .config import RunConfig, load_run_config
from .data import build_data
from .logging import Progress, RunLog
from .registry import build_trainable, trainable_options
from .state import check_resumable, epoch_order, load_state, lr_factor, rng_state, set_rng_state

__all__ = ["Trainer", "train", "amp_enabled"]

NORM_ITEMS = 512  # training crops a model may learn data statistics from on a fresh start (Trainable.prepare)
MODEL_FILE, STATE_FILE, CONFIG_FILE, LOG_FILE = "model.safetensors", "state.pt", "config.yaml", "log.csv"


def amp_enabled(setting: str | bool, device: torch.device) -> bool:
    """``train.amp``: ``auto`` is bf16 autocast on CUDA and on CPUs with native bf16, fp32 elsewhere; ``true`` /
    ``false`` force it. ``bench/amp.py`` (loss) and ``bench/train.py`` (speed) measure bf16 against fp32; the README
    has the numbers."""
    if setting == "auto":
        return device.type == "cuda" or (device.type == "cpu" and cpu_has_bf16())
    return bool(setting)


def backward_groups(losses: dict[str, torch.Tensor], groups: dict[str, list[nn.Parameter]]) -> list[str]:
    """One backward pass per loss, into its own group's parameters only (an adversary's loss never moves the model,
    nor the model's the adversary); the graph is kept until the last. Returns the group names in order."""
    names = list(losses)
    for i, name in enumerate(names):
        losses[name].float().backward(inputs=groups[name], retain_graph=i < len(names) - 1)
    return names


class _LossForward(nn.Module):
    """``forward`` = the model's ``loss``, so DDP's gradient hooks see the call (DDP only wraps ``forward``)."""

    def __init__(self, model: nn.Module) -> None:
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


class Trainer:
    """Trains one model from a :class:`RunConfig`. ``Trainer(config).fit()`` returns the checkpoint path.

    Under ``torchrun`` every process builds a Trainer; only rank 0 writes files, logs and shows progress.
    """

    def __init__(self, config: RunConfig, device: str | torch.device = "auto", resume: bool = False,
                 progress: bool = True) -> None:
        self.config, self.progress = config, progress
        tc = config.train
        self.device = resolve_device(str(device))
        if self.device.type == "cuda" and "LOCAL_RANK" in os.environ:
            self.device = torch.device("cuda", int(os.environ["LOCAL_RANK"]))
            torch.cuda.set_device(self.device)
        self.rank, self.world, self._owns_group = _init_distributed(self.device)
        self.is_main = self.rank == 0
        if tc.batch_size % self.world:
            raise ConfigError(f"train.batch_size={tc.batch_size} (the global batch) must be divisible by the "
                              f"{self.world} processes")
        self.out_dir = Path(tc.out_dir)
        if not resume and (self.out_dir / STATE_FILE).exists():
            raise ConfigError(f"{self.out_dir} already holds a run; resume it (--resume) or set train.out_dir")
        self.amp = amp_enabled(tc.amp, self.device)
        if self.device.type == "cuda":
            torch.backends.cudnn.benchmark = True  # fixed segment length: the autotuned kernels are reused

        self.data = build_data(config, self.is_main, self.world, progress)
        self.train_set, self.valid_set, self.speakers = self.data.train, self.data.valid, self.data.speakers
        torch.manual_seed(tc.seed)  # the same initial weights on every process
        self.model: Trainable = build_trainable(config.model["type"], self._model_options()).to(self.device)
        self.model.check_features(config.mel)  # a frozen part (a prior's VAE) must see its own front end
        self.groups = self.model.param_groups()
        self.settings = self._group_settings()
        self.optimizers = {g: torch.optim.AdamW(p, lr=self.settings[g]["lr"], betas=self.settings[g]["betas"],
                                                weight_decay=self.settings[g]["weight_decay"])
                           for g, p in self.groups.items()}
        self.step = self.epoch = self.batch_in_epoch = self.bad_steps = 0
        self.order: torch.Tensor | None = None
        self._sums: dict[str, torch.Tensor] = {}
        self._count = self._skipped = 0
        self.last_valid: dict = {}
        self.log = RunLog(self.out_dir / LOG_FILE)
        self._valid_batches: list[dict] | None = None

        saved = load_state(self.out_dir / STATE_FILE) if resume else None
        if saved is not None and self.is_main:  # a run killed while saving leaves its temporary file behind
            remove_temporaries(self.out_dir)
        if saved is not None:
            check_resumable(saved, self._resolved_yaml(), self.out_dir)
            try:
                self.model.load_state_dict(saved["model"])
            except (KeyError, RuntimeError) as e:
                raise CheckpointError(f"{self.out_dir / STATE_FILE}: weights do not match the model "
                                      f"({str(e).splitlines()[0][:160]})") from None
        elif tc.init:
            self._warm_start(tc.init)
        elif self.is_main:
            self.model.prepare(self._sample_batches())
        self.ema: nn.Module | None = None
        self.net: nn.Module = _LossForward(self.model)
        self._manual_sync = False
        if self.world > 1:
            self._wrap_ddp()  # also broadcasts rank 0's weights and data statistics to every process
        if tc.compile:
            self._compile_parts()
        if tc.ema_decay > 0:
            self.ema = copy.deepcopy(self.model).eval()
            if saved is not None and saved.get("ema"):
                self.ema.load_state_dict(saved["ema"])
            self.ema.requires_grad_(False)
        torch.manual_seed(tc.seed + 1 + self.rank)  # sampling noise: one stream per process
        if saved is not None:
            self._load_state(saved)

    @property
    def history(self) -> list[dict]:
        """The rows this process logged (rank 0), as written to log.csv."""
        return self.log.history

    # --- setup ------------------------------------------------------------------------------------------------------
    def _model_options(self) -> dict:
        options = {k: v for k, v in self.config.model.items() if k != "type"}
        options.update(self.data.model_options)
        if "mel" in trainable_options(self.config.model["type"]):  # a model that asks for it (a vocoder synthesises
            options["mel"] = self.config.mel.to_dict()          # the run's own STFT) is given the run's front end
        return options

    def _resolved_yaml(self) -> str:
        """The run config as run: the model's options include what the data decided (``n_speakers``)."""
        config = RunConfig({"type": self.config.model["type"], **self._model_options()}, self.config.mel,
                           self.config.data, self.config.train, self.config.task)
        return config.to_yaml()

    def _group_settings(self) -> dict[str, dict]:
        """Optimiser settings per parameter group: ``train.*`` overridden by ``train.optim.<group>.*``."""
        tc = self.config.train
        unknown = sorted(set(tc.optim) - set(self.groups))
        if unknown:
            raise ConfigError(f"train.optim.{unknown[0]}: the model has no parameter group {unknown[0]!r} "
                              f"(groups: {', '.join(self.groups)})")
        seen: set[int] = set()
        for name, params in self.groups.items():
            if not params:
                raise AudiovaeError(f"model parameter group {name!r} is empty")
            if any(id(p) in seen for p in params):
                raise AudiovaeError(f"model parameter group {name!r} shares parameters with another group")
            seen.update(id(p) for p in params)
        return {g: tc.optim_for(g) for g in self.groups}

    def _loader(self, dataset: Dataset, batches: list[list[int]], seed: int) -> DataLoader:
        # The loader's own generator: creating an iterator must not draw from the global RNG (exact resume).
        return DataLoader(dataset, batch_sampler=batches, num_workers=self.config.data.num_workers,
                          pin_memory=self.device.type == "cuda", generator=torch.Generator().manual_seed(seed))

    def _sample_batches(self) -> Iterator[dict[str, torch.Tensor]]:
        """A seeded sample of epoch-0 training crops, for :meth:`Trainable.prepare`."""
        n = len(self.train_set)
        idx = np.random.default_rng((self.config.train.seed, 2)).permutation(n)[:NORM_ITEMS].tolist()
        batches = [idx[i: i + 64] for i in range(0, len(idx), 64)]
        return iter(self._loader(self.train_set, batches, 0))

    def _compile_parts(self) -> None:
        """``train.compile``: each trained part (the model's direct children that hold parameters) runs through
        ``torch.compile``; the loss around them, which branches on the step (annealing, warm-ups), stays eager, and
        ``Module.compile`` compiles in place, so parameter names and checkpoints are unchanged."""
        for part in self.model.children():
            if any(p.requires_grad for p in part.parameters()):
                part.compile()

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

    def _warm_start(self, path: str) -> None:
        """``train.init``: copy a saved model's weights into the parts this run saves (what ``export()`` returns)."""
        for name, module in self.model.export().items():
            weights, mel = component_weights(path, name)
            if mel.fingerprint() != self.config.mel.fingerprint():
                raise ConfigError(f"train.init={path}: made for other features than the run "
                                  f"({mel_difference(mel, self.config.mel)})")
            # parts that start as the identity (a denoiser's gain refiner) may be new to the run: they start fresh
            fresh = tuple(f"{part}." for part in getattr(module, "identity_parts", ()))
            if fresh:
                weights = {**{k: v for k, v in module.state_dict().items() if k.startswith(fresh)}, **weights}
            try:
                module.load_state_dict(weights)
            except RuntimeError as e:
                raise CheckpointError(f"train.init={path}: its {name} does not fit the run's model "
                                      f"({str(e).splitlines()[0][:160]})") from None

    def _load_state(self, saved: dict) -> None:
        try:
            for g, opt in self.optimizers.items():
                opt.load_state_dict(saved["optimizers"][g])
        except (KeyError, ValueError) as e:
            raise CheckpointError(f"{self.out_dir / STATE_FILE}: optimiser state does not match the model ({e})"
                                  ) from None
        for g, opt in self.optimizers.items():  # settings follow the current config (lr, train.steps may change)
            for group in opt.param_groups:
                group.update(betas=self.settings[g]["betas"], weight_decay=self.settings[g]["weight_decay"])
        self.step, self.epoch, self.batch_in_epoch = saved["step"], saved["epoch"], saved["batch_in_epoch"]
        self.bad_steps = saved.get("bad_steps", 0)
        self.order = saved.get("order")
        self.last_valid = dict(saved.get("last_valid", {}))
        self._sums = {k: torch.tensor(v, device=self.device) for k, v in saved.get("log_sums", {}).items()}
        self._count, self._skipped = saved.get("log_count", 0), saved.get("log_skipped", 0)
        rngs = saved.get("rng", [])
        if len(rngs) == self.world:
            set_rng_state(rngs[self.rank], self.device)
        elif self.is_main:
            warnings.warn(f"resuming on {self.world} process(es), saved on {len(rngs)}: the sampling noise differs "
                          "from an uninterrupted run", stacklevel=3)
        if self.is_main:  # forget what was logged after the checkpoint: those steps run again
            self.log.truncate(self.step)

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

    def _set_lr(self) -> None:
        """Each group's learning rate at the current step: its base rate times the schedule (a pure function)."""
        tc = self.config.train
        factor = lr_factor(self.step, tc.warmup_steps, tc.steps, tc.lr_schedule)
        for g, opt in self.optimizers.items():
            for group in opt.param_groups:
                group["lr"] = self.settings[g]["lr"] * factor

    def _train_step(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor] | None:
        """Forward, one backward per group (into that group's parameters only), clip, step; ``None`` if skipped."""
        self._set_lr()
        with self.net.no_sync() if self._manual_sync else contextlib.nullcontext():
            with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.amp):
                out: LossOutput = self.net(batch, self.step)
            losses = out.losses
            if not self._all_finite(torch.stack([v.detach().float() for v in losses.values()])):
                return None
            for opt in self.optimizers.values():
                opt.zero_grad(set_to_none=True)
            names = backward_groups(losses, self.groups)
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
        norms = {name: torch.nn.utils.clip_grad_norm_(self.groups[name],
                                                      self.settings[name]["grad_clip"] or float("inf"))
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
            write_atomic(self.out_dir / CONFIG_FILE, self._resolved_yaml())
            self.log.start(self.step)
        progress = Progress(tc.steps, self.step, self.is_main and self.progress)
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
                    self.step += 1
                    self.batch_in_epoch += 1
                    progress.update()
                    logged, spent = self._periodic(stop, audio_seconds, time.perf_counter() - t0, progress)
                    if logged:  # throughput counts training only, not validation or checkpoints
                        audio_seconds, t0 = 0.0, time.perf_counter()
                    else:
                        t0 += spent
                    if self.step >= stop:
                        break
                else:
                    self.epoch, self.batch_in_epoch, self.order = self.epoch + 1, 0, None
        finally:
            progress.close()
            self.log.close()
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

    def _periodic(self, stop: int, audio_seconds: float, elapsed: float, progress: Progress) -> tuple[bool, float]:
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
            progress.row(row)
        if valid:
            metrics = self.validate() if self.is_main else {}
            self.last_valid = metrics
            row.update({"step": s, "epoch": self.epoch})
            row.update({k: v for k, v in metrics.items() if not isinstance(v, list)})
            if "valid_loss" in metrics:
                units = f", {metrics['valid_active_units']} active units" if "valid_active_units" in metrics else ""
                progress.note(f"step {s}: valid loss {metrics['valid_loss']:.4g}{units}")
        if row and self.is_main:
            self.log.write(row)
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
        tc = self.config.train  # the rate of the next step, as the log has always shown
        lr = next(iter(self.settings.values()))["lr"] * lr_factor(self.step, tc.warmup_steps, tc.steps, tc.lr_schedule)
        row = {"step": self.step, "epoch": self.epoch, "lr": lr, "audio_s_per_s": seconds / max(elapsed, 1e-9),
               "skipped": round(skipped / self.world)}
        row.update({k: v / count for k, v in zip(keys, values, strict=False)} if count else {})
        self._sums, self._count, self._skipped = {}, 0, 0
        return row

    # --- validation and checkpoints ---------------------------------------------------------------------------------
    def _valid_data(self) -> list[dict]:
        if self._valid_batches is None:
            n, b = len(self.valid_set), self.config.train.batch_size
            batches = [list(range(i, min(n, i + b))) for i in range(0, n, b)]
            self._valid_batches = list(self._loader(self.valid_set, batches, 0))
        return self._valid_batches

    @torch.no_grad()
    def validate(self) -> dict:
        """Mean of the model's loss terms on the fixed validation crops, in fp32 (the EMA model when there is one),
        plus the model's own :meth:`~audiovae.trainable.Trainable.validation_metrics`; writes
        ``plots/step_XXXXXX.png`` from its :meth:`~audiovae.trainable.Trainable.preview`. Rank 0 only."""
        model = self.ema if self.ema is not None else self.model
        was_training = model.training
        model.eval()
        sums: dict[str, float] = {}
        n = 0
        results, first = [], None
        devices = [self.device] if self.device.type == "cuda" else []
        with torch.random.fork_rng(devices=devices):  # the same noise every time; training's RNG untouched
            torch.manual_seed(self.config.train.seed + 12345)
            for cpu_batch in self._valid_data():
                batch = self._to_device(cpu_batch)
                first = batch if first is None else first
                size = batch["mel"].shape[0]
                out = model.loss(batch, self.step)  # fp32 always: comparable across train.amp settings
                terms = {("loss" if g == "model" else f"loss_{g}"): v for g, v in out.losses.items()} | out.logs
                for k, v in terms.items():
                    sums[k] = sums.get(k, 0.0) + float(v) * size
                n += size
                results.append((cpu_batch, out))
            metrics: dict = {f"valid_{k}": v / n for k, v in sums.items()}
            metrics.update(model.validation_metrics(results, self.step))
            panels = model.preview(first) if first is not None else []
        if panels:
            plot_logmels(self.out_dir / "plots" / f"step_{self.step:06d}.png",
                         [(f"step {self.step}: {title}", mel) for title, mel in panels], self.config.mel)
        model.train(was_training)
        return metrics

    def _checkpoint(self, components: dict[str, nn.Module]) -> Checkpoint:
        """``components`` (what the saved model's ``export()`` returned: ``model`` and anything beside it, e.g. a
        ``vocoder``) as a checkpoint."""
        components = dict(components)
        task = self.config.task or (self.ema if self.ema is not None else self.model).default_task
        return Checkpoint(components.pop("model"), self.config.mel,
                          list(self.speakers.names) if self.speakers else [], task, info=self._info(),
                          components=components)

    def _info(self) -> dict:
        """What a saved model records of its run: step, epoch, facts from the data, the last validation."""
        info = {"step": self.step, "epoch": self.epoch, **self.data.info}
        info.update({k: (round(v, 6) if isinstance(v, float) else v) for k, v in self.last_valid.items()})
        return info

    def _save_model(self) -> None:
        """``model.safetensors``: a model checkpoint, or a vocoder file when the trainable exports a vocoder alone."""
        model = self.ema if self.ema is not None else self.model
        components = model.export()
        if "model" in components:
            save_checkpoint(self.out_dir / MODEL_FILE, self._checkpoint(components))
        else:
            save_vocoder(self.out_dir / MODEL_FILE, components["vocoder"], info=self._info())

    def save(self) -> None:
        """``model.safetensors`` (the usable model) and ``state.pt`` (everything to resume), atomically, rank 0."""
        rngs = [rng_state(self.device)]
        if self.world > 1:
            gathered: list = [None] * self.world
            dist.all_gather_object(gathered, {k: v.cpu() for k, v in rngs[0].items()})
            rngs = gathered
        if not self.is_main:
            return
        self._save_model()
        state = {
            "model": self.model.state_dict(), "ema": self.ema.state_dict() if self.ema is not None else None,
            "optimizers": {g: o.state_dict() for g, o in self.optimizers.items()},
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
