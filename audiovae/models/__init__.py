"""Models behind one interface (:class:`LatentModel`), composed of parts (encoder, bottleneck, decoder); a registry
maps a config's ``type`` to a model class.

``MODELS`` holds models only: what a checkpoint's ``model`` component is rebuilt from. What ``audiovae train`` can
build (these models, and trainables that are not models, such as a prior's or a vocoder's training) is
:data:`audiovae.training.registry.TRAINABLES`, one layer up: this package imports neither training nor vocoders.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import fields
from typing import Any

from ..errors import ConfigError
from .base import CollapseWarning, LatentModel, LossOutput, ModelConfig
from .bottlenecks import Bottleneck, DiagonalGaussian, GaussianBottleneck, Point, Posterior, Regularisation
from .dense import DenseAE, DenseAEConfig
from .parts import ConvDecoder, ConvEncoder
from .prior import LatentPrior, PriorConfig, build_prior
from .vae import CVAE, ConvAutoencoder, ConvConfig, ConvVAE, VAEConfig
from .variants import AAE, HVAE, VQVAE, WAE, AAEConfig, BetaVAE, BetaVAEConfig, HVAEConfig, VQVAEConfig, WAEConfig

__all__ = ["MODELS", "build_model", "model_options", "model_config", "CollapseWarning", "LatentModel", "LossOutput",
           "ModelConfig", "Posterior", "Regularisation", "Bottleneck", "DiagonalGaussian", "GaussianBottleneck",
           "ConvEncoder", "ConvDecoder", "ConvAutoencoder", "ConvConfig", "ConvVAE", "CVAE", "VAEConfig",
           "LatentPrior", "PriorConfig", "build_prior", "DenseAE", "DenseAEConfig", "Point", "BetaVAE",
           "BetaVAEConfig", "VQVAE", "VQVAEConfig", "HVAE", "HVAEConfig", "WAE", "WAEConfig", "AAE", "AAEConfig",
           "VARIANTS"]

# Every model a config's model.type (or a checkpoint's model component) can name
MODELS: dict[str, type[LatentModel]] = {
    cls.model_type: cls for cls in (ConvVAE, CVAE, DenseAE, BetaVAE, VQVAE, HVAE, WAE, AAE)}

VARIANTS: tuple[str, ...] = ("vae", "beta_vae", "vqvae", "hvae", "wae", "aae")
"""The VAE family compared by ``recipes/variants``: interchangeable log-mel autoencoders, one bottleneck each."""


def model_options(model_type: str, registry: Mapping[str, type] = MODELS) -> set[str]:
    """The option names the config of ``model_type`` declares (``registry``: where the type is looked up)."""
    if model_type not in registry:
        raise ConfigError(f"unknown model type {model_type!r}; choose one of: {', '.join(sorted(registry))}")
    return {f.name for f in fields(registry[model_type].config_class)}


def model_config(model_type: str, values: dict, registry: Mapping[str, type] = MODELS):  # noqa: ANN201 - the model's own config
    """The config dataclass of ``model_type`` from a dict; unknown keys are named in the error."""
    known = model_options(model_type, registry)
    cls = registry[model_type].config_class
    unknown = sorted(set(values) - known)
    if unknown:
        raise ConfigError(f"model type {model_type!r} has no option(s) {', '.join(unknown)}")
    return cls(**values)


def build_model(model_type: str, values: dict, registry: Mapping[str, type] = MODELS) -> Any:
    """Instantiate a registered model (a :class:`LatentModel` from :data:`MODELS`, the default) from its type and
    config values."""
    config = model_config(model_type, values, registry)
    return registry[model_type](config)
