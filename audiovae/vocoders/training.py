"""What ``audiovae train vocoder`` builds: the :class:`~.neural.NeuralVocoder` and, for adversarial training, its
discriminators, as one :class:`~audiovae.trainable.Trainable` for the shared engine.

The objective follows HiFi-GAN and Vocos: an L1 distance between the log-mels of the generated and the real crop
(weight 45), a multi-resolution STFT distance, and, when ``adversarial`` is on, least-squares GAN losses from the
multi-period and multi-resolution discriminators plus feature matching. The discriminators are a second parameter
group (``disc``), so the engine steps them with their own optimiser and no special path; ``adversarial_start`` lets
the generator learn the reconstruction terms alone first. With ``adversarial: false`` the same generator trains on
the reconstruction terms only (the loss-only variant). The checkpoint holds the generator alone: a vocoder file.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from typing import ClassVar

import torch
from torch import nn

from ..errors import ConfigError
from ..features import MelConfig, MelSpectrogram, stft
from ..losses import multi_resolution_stft
from ..trainable import LossOutput, TrainableMixin
from .discriminators import Discriminators, discriminator_loss, feature_loss, generator_loss
from .neural import NeuralVocoder

__all__ = ["VocoderTraining", "VocoderTrainingConfig"]


@dataclass
class VocoderTrainingConfig:
    """``model`` section of a vocoder run (``type: vocoder``).

    Attributes:
        n_mels: input bands (the run's ``mel.n_mels``).
        dim, intermediate, layers, kernel, residual, inverse_iter, phase_prior, unroll: the generator
            (:class:`~.neural.NeuralVocoder`).
        adversarial: train with discriminators (GAN + feature matching); false: reconstruction losses only.
        adversarial_start: steps before the discriminators join.
        mel_weight, stft_weight, adversarial_weight, feature_weight: loss weights (HiFi-GAN's 45 / - / 1 / 2).
        periods: periods of the multi-period discriminator.
        resolutions: ``[n_fft, hop]`` of each multi-resolution discriminator.
        period_channels, resolution_channels: discriminator widths.
        mel: the run's front end (filled in from the run's ``mel`` section; not set by hand).
    """

    n_mels: int = 80
    dim: int = 256
    intermediate: int = 768
    layers: int = 8
    kernel: int = 7
    residual: bool = True
    inverse_iter: int = 32
    phase_prior: str = "none"
    unroll: int = 0
    adversarial: bool = True
    adversarial_start: int = 0
    mel_weight: float = 45.0
    stft_weight: float = 1.0
    adversarial_weight: float = 1.0
    feature_weight: float = 2.0
    periods: tuple[int, ...] = (2, 3, 5, 7, 11)
    resolutions: tuple[tuple[int, int], ...] = ((512, 128), (1024, 256), (2048, 512))
    period_channels: tuple[int, ...] = (16, 64, 128, 128)
    resolution_channels: int = 16
    mel: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.periods = tuple(int(p) for p in self.periods)
        self.resolutions = tuple((int(n), int(h)) for n, h in self.resolutions)
        self.period_channels = tuple(int(c) for c in self.period_channels)
        for name in ("mel_weight", "stft_weight", "adversarial_weight", "feature_weight", "adversarial_start"):
            if getattr(self, name) < 0:
                raise ConfigError(f"model.{name}={getattr(self, name)} must be >= 0")
        if self.adversarial and not (self.periods or self.resolutions):
            raise ConfigError("model.adversarial is on but there are no periods and no resolutions to judge with")

    def to_dict(self) -> dict:
        d = asdict(self)
        d.update(periods=list(self.periods), resolutions=[list(r) for r in self.resolutions],
                 period_channels=list(self.period_channels))
        return d


class VocoderTraining(TrainableMixin, nn.Module):
    """The generator (group ``model``) and, when adversarial, the discriminators (group ``disc``)."""

    model_type: ClassVar[str] = "vocoder"
    config_class: ClassVar[type] = VocoderTrainingConfig
    default_task: ClassVar[str] = "vocoder"

    def __init__(self, config: VocoderTrainingConfig) -> None:
        super().__init__()
        if not config.mel:
            raise ConfigError("a vocoder needs its front end: model.mel (the Trainer fills it from the run's mel)")
        self.config = config
        mel = MelConfig.from_dict(config.mel)
        if mel.n_mels != config.n_mels:
            raise ConfigError(f"model.n_mels={config.n_mels}, but mel.n_mels={mel.n_mels}")
        self.vocoder = NeuralVocoder(mel, config.dim, config.intermediate, config.layers, config.kernel,
                                     config.residual, config.inverse_iter, phase_prior=config.phase_prior,
                                     unroll=config.unroll)
        self.analysis = MelSpectrogram(mel)
        self.disc = (Discriminators(config.periods, config.resolutions, config.period_channels,
                                    config.resolution_channels) if config.adversarial else None)

    def check_features(self, mel: MelConfig) -> None:
        if mel.fingerprint() != self.vocoder.config.fingerprint():
            raise ConfigError("model.mel differs from the run's mel section; leave model.mel unset")

    def param_groups(self) -> dict[str, list[nn.Parameter]]:
        groups = {"model": list(self.vocoder.parameters())}
        if self.disc is not None:
            groups["disc"] = list(self.disc.parameters())
        return groups

    @torch.no_grad()
    def prepare(self, batches: Iterable[dict[str, torch.Tensor]]) -> None:
        """Per-band mean and spread of the training log-mels (valid frames only)."""
        frames = []
        for batch in batches:
            mel, lengths = batch["mel"].float(), batch["length"]
            frames += [mel[i, :, : int(lengths[i])] for i in range(mel.shape[0])]
        flat = torch.cat(frames, dim=-1).double()
        self.vocoder.set_normalization(flat.mean(-1).float(), flat.std(-1).float())

    def logmel(self, wave: torch.Tensor) -> torch.Tensor:
        """The front end's log-mel of generated audio, with a gradient everywhere: the analysis module's exact
        ``hypot`` has a 0/0 gradient at a bin that is exactly zero (seen in training: a skipped step now and then),
        a magnitude of ``sqrt(re^2 + im^2 + 1e-12)`` has none."""
        with torch.autocast(device_type=wave.device.type, enabled=False):
            spec = stft(wave.float(), self.vocoder.config, self.analysis.window)
            mag = (spec.real.square() + spec.imag.square() + 1e-12).sqrt()
            return (self.analysis.mel_fb @ mag).clamp_min(self.vocoder.config.log_floor).log()

    def loss(self, batch: dict[str, torch.Tensor], step: int) -> LossOutput:
        c = self.config
        mel, real = batch["mel"], batch["wave"].float()
        fake = self.vocoder.generate(mel.float(), real.shape[-1])
        fake_mel = self.logmel(fake)[..., : mel.shape[-1]]
        mel_l1 = (fake_mel - mel.float()).abs().mean()
        stft = multi_resolution_stft(fake, real)
        total = c.mel_weight * mel_l1 + c.stft_weight * stft
        logs: dict[str, float | torch.Tensor] = {"mel_l1": mel_l1.detach(), "mrstft": stft.detach()}
        losses = {}
        if self.disc is not None and step >= c.adversarial_start:
            judged = self.disc(torch.cat([real, fake]))  # one pass: each group's backward reaches only its own
            n = real.shape[0]
            real_logits = [logits[:n] for logits, _ in judged]
            fake_logits = [logits[n:] for logits, _ in judged]
            adv = generator_loss(fake_logits)
            fm = feature_loss([[f[:n] for f in maps] for _, maps in judged], [[f[n:] for f in maps]
                                                                              for _, maps in judged])
            total = total + c.adversarial_weight * adv + c.feature_weight * fm
            losses["disc"] = discriminator_loss(real_logits, fake_logits)
            logs.update(adversarial=adv.detach(), feature_matching=fm.detach())
        losses = {"model": total, **losses}
        return LossOutput(losses, logs, {"mel": fake_mel.detach()})

    def preview(self, batch: dict[str, torch.Tensor]) -> list[tuple[str, torch.Tensor]]:
        with torch.no_grad():
            fake = self.vocoder.generate(batch["mel"][:1].float(), batch["wave"].shape[-1])
            return [("input log-mel", batch["mel"][0].float().cpu()),
                    ("log-mel of the vocoder's audio", self.logmel(fake)[0, :, : batch["mel"].shape[-1]].cpu())]

    def export(self) -> dict[str, nn.Module]:
        return {"vocoder": self.vocoder}
