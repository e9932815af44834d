"""Convolutional VAE over log-mel frames, and its speaker-conditioned form (CVAE) for voice conversion.

Both are compositions of parts: a :class:`~.parts.ConvEncoder` (residual stages that downsample time by
``prod(factors)``), a bottleneck (here :class:`~.bottlenecks.GaussianBottleneck`: per-latent-frame mean and
log-variance, KL with beta schedule and free bits) and a :class:`~.parts.ConvDecoder` (the mirror image).
:class:`ConvAutoencoder` holds the composition and the objective (reconstruction + the posterior's regulariser), so a
variant (VQ, MMD, plain) is a different bottleneck, not a subclass that inherits the VAE's KL. The CVAE adds a speaker
embedding table that conditions every decoder block by FiLM (and optionally the encoder), instance normalisation in
the encoder to strip per-utterance timbre, and an optional adversarial speaker classifier on z (gradient reversal)
that pushes speaker identity out of the latents, and optionally a speaker encoder (reference recording -> embedding,
regressed onto the table and used in place of it for part of each batch) for one-shot conversion to voices outside
the table. ``batch["clean"]``, when present, is the decoder's target: the same
model is then a denoising VAE (noisy in, clean out).

Checkpoints written before the split (format 1: ``enc_in``, ``enc``, ``enc_out``, ``dec_in``, ``dec``, ``dec_out``)
load unchanged: :class:`ConvVAE` renames their keys while loading (:data:`FORMAT_1_KEYS`).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import ConfigError
from ..losses import KLSchedule, deepen_pauses, envelope_correlation, masked_magnitude, reconstruction
from ..trainable import ValidationResult
from .base import LatentModel, LossOutput, ModelConfig
from .bottlenecks import Bottleneck, GaussianBottleneck, Posterior
from .layers import GradientReversal, SpeakerEncoder, conv1d
from .parts import ConvDecoder, ConvEncoder, GainRefiner


@dataclass
class ConvConfig(ModelConfig):
    """Architecture and objective of a :class:`ConvAutoencoder`, whatever its bottleneck.

    Attributes:
        channels: width of each encoder stage (the decoder mirrors them).
        factors: time downsampling of each stage, 1 or even; latent rate = frame rate / prod(factors).
        blocks: residual blocks per stage.
        recon: ``l1``, ``l2`` or ``nll`` (Gaussian with a learnt per-band scale).
        n_speakers: speakers in the embedding table (CVAE; 0 for a plain VAE).
        speaker_dim: speaker embedding size.
        encoder_speaker: also condition the encoder on the speaker.
        instance_norm: instance normalisation in the encoder blocks.
        adversary_weight: weight of the gradient-reversed speaker classifier on z (0 disables).
        speaker_encoder: train a speaker encoder with the CVAE (one-shot conversion to voices not in the table).
        speaker_encoder_mix: share of each training batch decoded with the encoder's embedding instead of the
            table's, so the decoder learns to follow embeddings off the table's points.
        speaker_encoder_weight: weight of the encoder's regression onto the (stop-gradient) table embedding.
        mask_loss: weight of the signal-approximation loss (:func:`~audiovae.losses.masked_magnitude`) beside the
            log-mel one, for models trained on noisy/clean pairs whose estimate becomes a gain (0 disables).
        envelope_loss: weight of the envelope-correlation loss (:func:`~audiovae.losses.envelope_correlation`,
            STOI's measure on mel bands) for such models (0 disables).
        pause_cut_db: such models' target has the clean recording's pauses (frames more than ``pause_below_db``
            under the crop's loudest, over a 6 dB ramp) lowered by this many dB (:func:`~audiovae.losses.
            deepen_pauses`; 0 disables: measured, it did not help the bundled denoiser).
        pause_below_db: how far under an item's loudest clean frame a frame counts as a pause.
        output: ``logmel``: the decoder's output is the estimate; ``log_gain``: it is a gain in ``(0, 1]`` per band
            and frame, ``log sigmoid(out + GAIN_BIAS)``, added to the input's log-mel (:meth:`ConvAutoencoder.
            estimate`). A denoiser's estimate then keeps the input's detail (harmonics the latent's rate cannot
            carry), and a gain of one, leaving the input alone, is one the network can reach and starts near.
        refine_channels: with ``output="log_gain"``, the width of a :class:`~audiovae.models.parts.GainRefiner`
            that corrects the decoded gain frame by frame from the input (0: none; the gain is the decoder's alone).
        refine_blocks: its residual blocks (dilations 1, 3, 9, ...).
        refine_floor: frames each way over which the refiner also sees the input's noise floor
            (:func:`~audiovae.models.parts.noise_floor`, minimum statistics; 0: not).
        encoder_floor: the same for the encoder's first layer.
    """

    channels: tuple[int, ...] = (256, 256)
    factors: tuple[int, ...] = (2, 2)
    blocks: int = 2
    recon: str = "l1"
    n_speakers: int = 0
    speaker_dim: int = 64
    encoder_speaker: bool = False
    instance_norm: bool = False
    adversary_weight: float = 0.0
    speaker_encoder: bool = False
    speaker_encoder_mix: float = 0.5
    speaker_encoder_weight: float = 1.0
    mask_loss: float = 0.0
    envelope_loss: float = 0.0
    pause_cut_db: float = 0.0
    pause_below_db: float = 30.0
    output: str = "logmel"
    refine_channels: int = 0
    refine_blocks: int = 2
    refine_floor: int = 0
    encoder_floor: int = 0

    def __post_init__(self) -> None:
        super().__post_init__()
        name = type(self).__name__
        if self.output not in OUTPUTS:
            raise ConfigError(f"{name}.output={self.output!r} must be one of {', '.join(OUTPUTS)}")
        self.channels, self.factors = tuple(self.channels), tuple(self.factors)
        if len(self.channels) != len(self.factors):
            raise ConfigError(f"{name}: channels {self.channels} and factors {self.factors} differ in length")
        if any(f != 1 and f % 2 for f in self.factors):
            raise ConfigError(f"{name}.factors={self.factors}: each must be 1 or even")
        if self.recon not in ("l1", "l2", "nll"):
            raise ConfigError(f"{name}.recon={self.recon!r} must be 'l1', 'l2' or 'nll'")
        if self.pause_cut_db < 0 or self.pause_below_db <= 0:
            raise ConfigError(f"{name}.pause_cut_db={self.pause_cut_db} must be >= 0 and pause_below_db="
                              f"{self.pause_below_db} > 0")
        if self.refine_channels < 0 or self.refine_blocks < 0 or self.refine_floor < 0:
            raise ConfigError(f"{name}.refine_channels={self.refine_channels}, refine_blocks={self.refine_blocks} "
                              f"and refine_floor={self.refine_floor} must be >= 0")
        if self.encoder_floor < 0:
            raise ConfigError(f"{name}.encoder_floor={self.encoder_floor} must be >= 0")
        if self.refine_floor and not self.refine_channels:
            raise ConfigError(f"{name}.refine_floor={self.refine_floor}: the noise floor goes to the gain refiner; "
                              "it needs refine_channels > 0")
        if self.refine_channels and self.output != "log_gain":
            raise ConfigError(f"{name}.refine_channels={self.refine_channels}: a refiner corrects a gain; it needs "
                              "output: log_gain")
        if not 0.0 <= self.speaker_encoder_mix <= 1.0:
            raise ConfigError(f"{name}.speaker_encoder_mix={self.speaker_encoder_mix} must be in [0, 1]")


OUTPUTS = ("logmel", "log_gain")
GAIN_BIAS = 3.0  # an untrained log_gain model's gain: sigmoid(3) = 0.95, nearly the input


@dataclass
class VAEConfig(ConvConfig):
    """Architecture and objective of :class:`ConvVAE` / :class:`CVAE`: a :class:`ConvConfig` and the KL's settings.

    Attributes:
        beta, kl_mode, kl_warmup, kl_total, kl_cycles: the KL weight and its annealing (:class:`KLSchedule`).
        free_bits: nats per latent dimension that cost nothing (0 disables).
    """

    beta: float = 1.0
    kl_mode: str = "linear"
    kl_warmup: int = 2000
    kl_total: int = 20000
    kl_cycles: int = 4
    free_bits: float = 0.1

    def __post_init__(self) -> None:
        super().__post_init__()
        self.kl_schedule()  # validates beta and mode

    def kl_schedule(self) -> KLSchedule:
        return KLSchedule(self.beta, self.kl_mode, self.kl_warmup, self.kl_total, self.kl_cycles)


class ConvAutoencoder(LatentModel):
    """Encoder -> bottleneck -> decoder over log-mel frames, trained on reconstruction plus the posterior's
    regulariser (whatever the bottleneck: KL, VQ, MMD or none).

    Subclasses choose the bottleneck in :meth:`make_bottleneck`; one can also be passed in (``bottleneck=``), which
    is how a new kind is tried before it gets a model type of its own.
    """

    config_class = ConvConfig
    # start as the identity: a warm start (train.init) may come from a model without them
    identity_parts = ("refiner", "encoder.floor")

    def __init__(self, config: ConvConfig, bottleneck: Bottleneck | None = None) -> None:
        super().__init__(config)
        c = config
        cond = c.speaker_dim if c.n_speakers else 0
        # registration order (encoder, bottleneck, decoder) keeps the parameter order of format-1 models
        self.encoder = ConvEncoder(c.n_mels, c.channels, c.factors, c.blocks, c.instance_norm,
                                   cond if c.encoder_speaker else 0, c.encoder_floor)
        self.bottleneck = bottleneck if bottleneck is not None else self.make_bottleneck(self.encoder.out_channels)
        if self.bottleneck.latent_dim != c.latent_dim:
            raise ConfigError(f"bottleneck of latent_dim {self.bottleneck.latent_dim} in a model configured for "
                              f"latent_dim={c.latent_dim}")
        self.decoder = ConvDecoder(c.latent_dim, c.n_mels, c.channels, c.factors, c.blocks, cond)
        self.logscale = nn.Parameter(torch.zeros(c.n_mels, 1)) if c.recon == "nll" else None
        self.refiner = (GainRefiner(c.n_mels, c.refine_channels, c.refine_blocks, c.refine_floor)
                        if c.refine_channels else None)

    def make_bottleneck(self, in_channels: int) -> Bottleneck:
        """The bottleneck over ``in_channels`` encoder features (each model type its own)."""
        raise ConfigError(f"{type(self).__name__} needs a bottleneck (pass bottleneck=...)")

    @property
    def hop_factor(self) -> int:
        return self.encoder.hop_factor

    def param_groups(self) -> dict[str, list[nn.Parameter]]:
        """``"model"``, and the bottleneck's own groups (an adversarial autoencoder's ``"disc"``)."""
        groups = {name: list(params) for name, params in self.bottleneck.param_groups().items()}
        taken = {id(p) for params in groups.values() for p in params}
        return {"model": [p for p in self.parameters() if p.requires_grad and id(p) not in taken], **groups}

    def condition(self, speaker: torch.Tensor | None) -> torch.Tensor | None:
        """Conditioning vector for the blocks (none for the plain VAE)."""
        return None

    def encode(self, mel: torch.Tensor, speaker: torch.Tensor | None = None) -> Posterior:
        cond = self.condition(speaker) if self.config.encoder_speaker else None
        return self.bottleneck(self.encoder(self.normalize(mel), cond))

    def decode(self, z: torch.Tensor, speaker: torch.Tensor | None = None, film_offset: torch.Tensor | None = None
               ) -> torch.Tensor:
        """``film_offset``: an adapted voice's offsets to the decoder's FiLM modulation (see :class:`ConvDecoder`).
        With ``output="log_gain"`` this is the log-gain (nats, not yet limited), not a log-mel: see :meth:`estimate`."""
        out = self.decoder(z, self.condition(speaker), film_offset)
        return out if self.config.output == "log_gain" else self.denormalize(out)

    def estimate(self, decoded: torch.Tensor, mel: torch.Tensor) -> torch.Tensor:
        """The log-mel estimate from the decoder's output for input ``mel`` (same frames): the decoded log-mel
        itself, or with ``output="log_gain"`` the input under the gain ``sigmoid(decoded + GAIN_BIAS)`` (the decoded
        log-gain first corrected by the refiner, when the model has one)."""
        if self.config.output != "log_gain":
            return decoded
        if self.refiner is not None:
            decoded = self.refiner(decoded, self.normalize(mel).to(decoded.dtype))
        return mel + torch.nn.functional.logsigmoid(decoded.float() + GAIN_BIAS).to(mel.dtype)

    def reconstruct(self, mel: torch.Tensor, speaker: torch.Tensor | None = None) -> torch.Tensor:
        """Encode, take the posterior mode, decode, form the estimate; cropped to the input's length."""
        decoded = self.decode(self.encode(mel, speaker).mode(), speaker)[..., : mel.shape[-1]]
        return self.estimate(decoded, mel)

    def sample(self, n: int, frames: int, speaker: torch.Tensor | None = None, temperature: float = 1.0,
               generator: torch.Generator | None = None) -> torch.Tensor:
        latent_frames = -(-frames // self.hop_factor)
        z = self.bottleneck.prior(n, latent_frames, temperature, generator, self.mel_mean.device)
        return self.decode(z, speaker)[..., :frames]

    def _masks(self, batch: dict[str, torch.Tensor], frames: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Valid-frame masks ``[B, 1, T]`` for spectrogram and latent frames (padding excluded)."""
        mel = batch["mel"]
        lengths = batch.get("length")
        if lengths is None:
            lengths = torch.full((mel.shape[0],), mel.shape[-1], device=mel.device)
        t = torch.arange(frames, device=mel.device)
        mask = (t[None, :] < lengths.to(mel.device)[:, None]).unsqueeze(1).float()
        r = self.hop_factor
        latent = (torch.arange(-(-frames // r), device=mel.device)[None, :] * r
                  < lengths.to(mel.device)[:, None]).unsqueeze(1).float()
        return mask, latent

    def loss(self, batch: dict[str, torch.Tensor], step: int) -> LossOutput:
        frames = batch["mel"].shape[-1]
        mask, latent_mask = self._masks(batch, frames)
        # Frames beyond `length` are padding: hold them at the band means (0 once normalised), so that whatever a
        # data set pads with cannot reach the valid frames through the convolutions' receptive field.
        valid, fill = mask.bool(), self.mel_mean[:, None].to(batch["mel"].dtype)
        mel = torch.where(valid, batch["mel"], fill)
        target = torch.where(valid, batch["clean"], fill) if "clean" in batch else mel
        if "clean" in batch and self.config.pause_cut_db > 0:
            target = deepen_pauses(target, mel, self.config.pause_below_db, self.config.pause_cut_db, mask)
        batch = {**batch, "mel": mel}
        speaker, extra = self.training_condition(batch, mask)
        posterior = self.encode(mel, speaker)
        z = posterior.sample()
        estimate = self.estimate(self.decode(z, speaker)[..., :frames], mel)
        recon = reconstruction(self.normalize(target), self.normalize(estimate), self.config.recon, self.logscale,
                               mask)
        reg = posterior.regulariser(latent_mask, step)
        # per spectrogram frame: reconstruction summed over bands, the regulariser spread over hop_factor frames
        total = recon * self.config.n_mels + reg.loss / self.hop_factor
        with torch.no_grad():  # detached tensors: the Trainer converts them only on logging steps (no GPU sync)
            logs = {"recon": recon.detach(), **reg.logs, "mel_l1": reconstruction(target, estimate, "l1", mask=mask)}
        if "clean" in batch and self.config.mask_loss > 0:
            extra["mask"] = self.config.mask_loss * self.config.n_mels * masked_magnitude(mel, target, estimate, mask)
        if "clean" in batch and self.config.envelope_loss > 0:
            extra["envelope"] = self.config.envelope_loss * self.config.n_mels * envelope_correlation(
                mel, target, estimate, mask)
        extra.update(self.extra_losses(z, batch))
        for name, value in extra.items():
            total = total + value
            logs[name] = value.detach()
        return LossOutput({"model": total, **reg.group_losses}, logs,
                          {"estimate": estimate.detach(), "z": posterior.mode().detach(), **reg.outputs})

    def training_condition(self, batch: dict[str, torch.Tensor], mask: torch.Tensor
                           ) -> tuple[torch.Tensor | None, dict[str, torch.Tensor]]:
        """What conditions encoder and decoder in training, and the losses that come with it (hook for the CVAE)."""
        return batch.get("speaker"), {}

    def extra_losses(self, z: torch.Tensor, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Hook for conditioned variants (the CVAE's speaker adversary); none here."""
        return {}


FORMAT_1_KEYS = {"enc_in.": "encoder.inp.", "enc.": "encoder.stages.", "enc_out.": "bottleneck.head.",
                 "dec_in.": "decoder.inp.", "dec.": "decoder.stages.", "dec_out.": "decoder.out."}
"""State-dict key prefixes of models saved before the parts split -> today's."""


def rename_keys(state_dict: dict[str, torch.Tensor], prefix: str, renames: dict[str, str]) -> None:
    """Rename, in place, the keys of ``state_dict`` under ``prefix`` that start with an old name in ``renames``."""
    for key in [k for k in state_dict if k.startswith(prefix)]:
        rest = key[len(prefix):]
        old = next((o for o in renames if rest.startswith(o)), None)
        if old is not None:
            state_dict[prefix + renames[old] + rest[len(old):]] = state_dict.pop(key)


class ConvVAE(ConvAutoencoder):
    """The plain convolutional VAE (no speaker conditioning): a :class:`ConvAutoencoder` with a Gaussian bottleneck."""

    model_type = "vae"
    config_class = VAEConfig
    anomaly_scores = ("nelbo", "recon")  # the ELBO's own terms: measured better for detection (recipes/anomaly)

    def make_bottleneck(self, in_channels: int) -> Bottleneck:
        c = self.config
        return GaussianBottleneck(in_channels, c.latent_dim, c.kl_schedule(), c.free_bits)

    def _load_from_state_dict(self, state_dict: dict[str, torch.Tensor], prefix: str, *args, **kwargs) -> None:  # noqa: ANN002, ANN003
        rename_keys(state_dict, prefix, FORMAT_1_KEYS)  # format-1 checkpoints: keys from before the parts split
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)


class CVAE(ConvVAE):
    """Speaker-conditioned VAE: decode the content of z in any speaker's voice.

    ``speaker`` arguments are ids into the table (``[B]`` integers) or embeddings (``[B, speaker_dim]`` floats, from
    :meth:`embed_speaker` on a reference recording when the model has a speaker encoder).
    """

    model_type = "cvae"
    default_task = "convert"

    def __init__(self, config: VAEConfig) -> None:
        if config.n_speakers < 1:
            raise ConfigError("CVAE needs n_speakers >= 1: train it with data.conditioning=speaker (the speakers come "
                              "from the data)")
        super().__init__(config)
        self.speakers = nn.Embedding(config.n_speakers, config.speaker_dim)
        nn.init.normal_(self.speakers.weight, std=0.3)
        self.adversary = nn.Sequential(conv1d(config.latent_dim, 128, 3), nn.SiLU(), conv1d(128, config.n_speakers, 1)
                                       ) if config.adversary_weight > 0 else None
        self.speaker_encoder = SpeakerEncoder(config.n_mels, config.speaker_dim) if config.speaker_encoder else None

    def condition(self, speaker: torch.Tensor | None) -> torch.Tensor:
        if speaker is None:
            raise ConfigError("CVAE: a speaker id is needed to encode/decode (see `audiovae speakers`)")
        if speaker.is_floating_point():
            if speaker.ndim != 2 or speaker.shape[1] != self.config.speaker_dim:
                raise ConfigError(f"speaker embedding of shape {tuple(speaker.shape)}; this model takes "
                                  f"[batch, {self.config.speaker_dim}]")
            return speaker
        return self.speakers(speaker)

    def embed_speaker(self, mel: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """Log-mel ``[B, n_mels, T]`` of reference speech -> speaker embeddings ``[B, speaker_dim]``."""
        if self.speaker_encoder is None:
            raise ConfigError("this model has no speaker encoder (train it with model.speaker_encoder=true for "
                              "one-shot conversion); use a speaker of its table instead")
        return self.speaker_encoder(self.normalize(mel), mask)

    def training_condition(self, batch: dict[str, torch.Tensor], mask: torch.Tensor
                           ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        ids = batch["speaker"]
        if self.speaker_encoder is None:
            return ids, {}
        table = self.speakers(ids)
        embedded = self.embed_speaker(batch["mel"], mask)
        match = ((embedded - table.detach()) ** 2).sum(dim=-1).mean()
        losses = {"speaker_encoder": self.config.speaker_encoder_weight * match}
        if not self.training:  # validation measures the table path, the same for every run
            return table, losses
        use = torch.rand(ids.shape[0], 1, device=ids.device) < self.config.speaker_encoder_mix
        return torch.where(use, embedded, table), losses

    def extra_losses(self, z: torch.Tensor, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        if self.adversary is None:
            return {}
        logits = self.adversary(GradientReversal.apply(z, 1.0)).mean(dim=-1)
        ce = F.cross_entropy(logits, batch["speaker"])
        return {"speaker_adversary": self.config.adversary_weight * ce}

    @torch.no_grad()
    def validation_metrics(self, results: list[ValidationResult], step: int) -> dict:
        """The VAE's metrics, plus how much speaker identity z still carries: the accuracy of the adversary's speaker
        guess from the posterior means (chance is 1 / n_speakers; lower is better for conversion)."""
        metrics = super().validation_metrics(results, step)
        if self.adversary is None:
            return metrics
        hits = total = 0
        for batch, out in results:
            z = out.outputs["z"].to(self.speakers.weight.device, self.speakers.weight.dtype)
            guess = self.adversary(z).mean(dim=-1).argmax(dim=-1).cpu()
            hits += int((guess == batch["speaker"]).sum())
            total += len(guess)
        metrics["valid_adversary_accuracy"] = hits / max(total, 1)
        return metrics
