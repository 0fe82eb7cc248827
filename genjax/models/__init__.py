"""Flax linen modules: encoders, decoders and the models built from them."""

from __future__ import annotations

from typing import Callable, Sequence

import flax.linen as nn
import jax

from genjax.models.decoders import ConvDecoder, MLPDecoder
from genjax.models.encoders import ConvEncoder, MLPEncoder
from genjax.models.vae import VAE

ARCHITECTURES = ("mlp", "conv")
ACTIVATIONS: dict[str, Callable[[jax.Array], jax.Array]] = {
    "relu": nn.relu, "tanh": nn.tanh, "elu": nn.elu, "gelu": nn.gelu}


def build_vae(model: str, image_shape: Sequence[int], latent_dim: int,
              hidden: Sequence[int], output_channels: int,
              activation: str = "relu") -> VAE:
  """A VAE with MLP or conv encoder/decoder.

  ``hidden`` are the dense widths (the encoder's in order, the decoder's reversed);
  ``output_channels`` is the decoder's channels per pixel (see ``decoders``).
  """
  if model not in ARCHITECTURES:
    raise ValueError(f"model={model!r}: expected one of {', '.join(ARCHITECTURES)}")
  if activation not in ACTIVATIONS:
    raise ValueError(f"activation={activation!r}: expected one of {', '.join(ACTIVATIONS)}")
  act = ACTIVATIONS[activation]
  height, width, _ = image_shape
  out_shape = (height, width, output_channels)
  hidden = tuple(hidden)
  if model == "mlp":
    encoder = MLPEncoder(latent_dim, hidden, act)
    decoder = MLPDecoder(out_shape, hidden[::-1], act)
  else:
    encoder = ConvEncoder(latent_dim, hidden=hidden, activation=act)
    decoder = ConvDecoder(out_shape, hidden=hidden[::-1], activation=act)
  return VAE(encoder, decoder, latent_dim)


__all__ = ["ARCHITECTURES", "ACTIVATIONS", "ConvDecoder", "ConvEncoder", "MLPDecoder",
           "MLPEncoder", "VAE", "build_vae"]
