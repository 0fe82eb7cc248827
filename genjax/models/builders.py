"""The encoder and decoder every VAE-family builder starts from: an MLP or a conv stack,
by ``model`` (``ARCHITECTURES``) and ``activation`` (``ACTIVATIONS``)."""

from __future__ import annotations

from typing import Callable, Sequence

import flax.linen as nn
import jax

from genjax.models.decoders import ConvDecoder, MLPDecoder
from genjax.models.encoders import ConvEncoder, MLPEncoder

ARCHITECTURES = ("mlp", "conv")
ACTIVATIONS: dict[str, Callable[[jax.Array], jax.Array]] = {
    "relu": nn.relu, "tanh": nn.tanh, "elu": nn.elu, "gelu": nn.gelu,
    "softplus": nn.softplus}

def build_encoder(model: str, latent_dim: int, hidden: Sequence[int], activation: str = "relu",
                  stochastic: bool = True, extra: int = 0,
                  extra_zero_init: bool = False) -> nn.Module:
  """An MLP or conv encoder; ``hidden`` are its dense widths, in order; ``extra`` > 0 adds
  a head of that many outputs beside (mean, log_var), with zero initial weights when
  ``extra_zero_init`` (see ``encoders``)."""
  _check(model, activation)
  act = ACTIVATIONS[activation]
  if model == "mlp":
    return MLPEncoder(latent_dim, tuple(hidden), act, stochastic, extra, extra_zero_init)
  return ConvEncoder(latent_dim, hidden=tuple(hidden), activation=act, stochastic=stochastic,
                     extra=extra, extra_zero_init=extra_zero_init)


def build_decoder(model: str, image_shape: Sequence[int], hidden: Sequence[int],
                  output_channels: int, activation: str = "relu",
                  condition_every_layer: bool = False) -> nn.Module:
  """An MLP or conv-transpose decoder mirroring ``build_encoder`` (``hidden`` reversed);
  ``condition_every_layer``: a condition enters every layer, not only the first
  (``genjax.models.decoders``)."""
  _check(model, activation)
  act = ACTIVATIONS[activation]
  height, width, _ = image_shape
  out_shape = (height, width, output_channels)
  if model == "mlp":
    return MLPDecoder(out_shape, tuple(hidden)[::-1], act, condition_every_layer)
  return ConvDecoder(out_shape, hidden=tuple(hidden)[::-1], activation=act,
                     condition_every_layer=condition_every_layer)


def _check(model: str, activation: str) -> None:
  if model not in ARCHITECTURES:
    raise ValueError(f"model={model!r}: expected one of {', '.join(ARCHITECTURES)}")
  if activation not in ACTIVATIONS:
    raise ValueError(f"activation={activation!r}: expected one of {', '.join(ACTIVATIONS)}")
