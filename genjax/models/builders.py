"""The encoder and decoder every VAE-family builder starts from: an MLP or a conv stack,
by ``model`` (an ``Architecture`` entry of ``ARCHITECTURES``) and ``activation``
(``ACTIVATIONS``). Each architecture says what it needs of the images (``downsampling``:
its image sides must be multiples of it); validation asks it."""

from __future__ import annotations

import dataclasses
from typing import Callable, Sequence

import flax.linen as nn
import jax

from genjax import registries
from genjax.models.decoders import ConvDecoder, MLPDecoder
from genjax.models.encoders import ConvEncoder, MLPEncoder



@dataclasses.dataclass(frozen=True)
class Architecture:
  """An encoder/decoder pair by name (``config.model``).

  Attributes:
    name: its name.
    encoder: ``(latent_dim, hidden, activation_fn, stochastic, extra, extra_zero_init)
      -> nn.Module``.
    decoder: ``(out_shape, hidden (decoder order), activation_fn, condition_every_layer)
      -> nn.Module``.
    downsampling: image sides must be multiples of this (the conv stack halves twice).
    why: what the downsampling is, for error messages.
  """
  name: str
  encoder: Callable[..., nn.Module]
  decoder: Callable[..., nn.Module]
  downsampling: int = 1
  why: str = ""


ARCHITECTURES: dict[str, Architecture] = {}


def register_architecture(architecture: Architecture) -> Architecture:
  return registries.add(ARCHITECTURES, architecture, "architecture")


register_architecture(Architecture(
    "mlp", lambda d, hidden, act, stochastic, extra, zero: MLPEncoder(
        d, hidden, act, stochastic, extra, zero),
    lambda shape, hidden, act, every: MLPDecoder(shape, hidden, act, every)))
register_architecture(Architecture(
    "conv", lambda d, hidden, act, stochastic, extra, zero: ConvEncoder(
        d, hidden=hidden, activation=act, stochastic=stochastic, extra=extra,
        extra_zero_init=zero),
    lambda shape, hidden, act, every: ConvDecoder(shape, hidden=hidden, activation=act,
                                                  condition_every_layer=every),
    downsampling=4, why="two stride-2 layers"))

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
  return ARCHITECTURES[model].encoder(latent_dim, tuple(hidden), ACTIVATIONS[activation],
                                      stochastic, extra, extra_zero_init)


def build_decoder(model: str, image_shape: Sequence[int], hidden: Sequence[int],
                  output_channels: int, activation: str = "relu",
                  condition_every_layer: bool = False) -> nn.Module:
  """An MLP or conv-transpose decoder mirroring ``build_encoder`` (``hidden`` reversed);
  ``condition_every_layer``: a condition enters every layer, not only the first
  (``genjax.models.decoders``)."""
  _check(model, activation)
  height, width, _ = image_shape
  return ARCHITECTURES[model].decoder((height, width, output_channels), tuple(hidden)[::-1],
                                      ACTIVATIONS[activation], condition_every_layer)


def _check(model: str, activation: str) -> None:
  if model not in ARCHITECTURES:
    raise ValueError(f"model={model!r}: expected one of {', '.join(ARCHITECTURES)}")
  if activation not in ACTIVATIONS:
    raise ValueError(f"activation={activation!r}: expected one of {', '.join(ACTIVATIONS)}")
