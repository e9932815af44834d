"""Models behind one interface (:class:`LatentModel`), composed of parts (encoder, bottleneck, decoder); a registry
maps a config's ``type`` to a class."""

from __future__ import annotations

from dataclasses import fields

from ..errors import ConfigError
from ..vocoders.training import VocoderTraining
from .base import CollapseWarning, LatentModel, LossOutput, ModelConfig
from .bottlenecks import Bottleneck, DiagonalGaussian, GaussianBottleneck, Point, Posterior, Regularisation
from .dense import DenseAE, DenseAEConfig
from .parts import ConvDecoder, ConvEncoder
from .prior import LatentPrior, PriorConfig, PriorTraining, build_prior
from .vae import CVAE, ConvAutoencoder, ConvConfig, ConvVAE, VAEConfig
from .variants import AAE, HVAE, VQVAE, WAE, AAEConfig, BetaVAE, BetaVAEConfig, HVAEConfig, VQVAEConfig, WAEConfig

__all__ = ["MODELS", "build_model", "CollapseWarning", "LatentModel", "LossOutput", "ModelConfig", "Posterior",
           "Regularisation", "Bottleneck", "DiagonalGaussian", "GaussianBottleneck", "ConvEncoder", "ConvDecoder",
           "ConvAutoencoder", "ConvConfig", "ConvVAE", "CVAE", "VAEConfig", "LatentPrior", "PriorConfig",
           "PriorTraining", "build_prior", "DenseAE", "DenseAEConfig", "Point", "BetaVAE", "BetaVAEConfig", "VQVAE",
           "VQVAEConfig", "HVAE", "HVAEConfig", "WAE", "WAEConfig", "AAE", "AAEConfig", "VARIANTS"]

# Everything `audiovae train` can build from a config's model.type: models, and trainables such as a prior or a vocoder
MODELS: dict[str, type[LatentModel] | type[PriorTraining] | type[VocoderTraining]] = {
    cls.model_type: cls for cls in (ConvVAE, CVAE, DenseAE, PriorTraining, VocoderTraining, BetaVAE, VQVAE, HVAE, WAE,
                                    AAE)}

VARIANTS: tuple[str, ...] = ("vae", "beta_vae", "vqvae", "hvae", "wae", "aae")
"""The VAE family compared by ``recipes/variants``: interchangeable log-mel autoencoders, one bottleneck each."""


def model_options(model_type: str) -> set[str]:
    """The option names the config of ``model_type`` declares."""
    if model_type not in MODELS:
        raise ConfigError(f"unknown model type {model_type!r}; choose one of: {', '.join(sorted(MODELS))}")
    return {f.name for f in fields(MODELS[model_type].config_class)}


def model_config(model_type: str, values: dict):  # noqa: ANN201 - the model's own config dataclass
    """The config dataclass of ``model_type`` from a dict; unknown keys are named in the error."""
    known = model_options(model_type)
    cls = MODELS[model_type].config_class
    unknown = sorted(set(values) - known)
    if unknown:
        raise ConfigError(f"model type {model_type!r} has no option(s) {', '.join(unknown)}")
    return cls(**values)


def build_model(model_type: str, values: dict) -> LatentModel:
    """Instantiate a registered model from its type and config values."""
    config = model_config(model_type, values)
    return MODELS[model_type](config)
