"""Decoders: z -> per-pixel parameters of p(x|z), shape [batch, H, W, C_out].

``output_shape`` is (H, W, C_out); C_out is the image's channels times the number
of parameters the likelihood needs per pixel (1 for Bernoulli logits or a
fixed-variance Gaussian mean, 2 for a Gaussian with learned variance). A condition
``c: [batch, C]`` is concatenated to z before the first layer, giving p(x|z, c); with
``condition_every_layer`` it is also concatenated to the input of every later dense layer
(and, broadcast over H and W, to every conv-transpose's input), so that each layer sees c
directly rather than only what the layers below pass up of it.
"""

from __future__ import annotations

from typing import Callable, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from genjax.models.encoders import concat_condition
from genjax.models.layers import ConvTranspose


class MLPDecoder(nn.Module):
  """Dense layers, then a dense layer reshaped to ``output_shape``.

  z: [batch, latent_dim] -> [batch, H, W, C_out].
  """
  output_shape: Sequence[int]
  hidden: Sequence[int] = (400,)
  activation: Callable[[jax.Array], jax.Array] = nn.relu
  condition_every_layer: bool = False

  @nn.compact
  def __call__(self, z: jax.Array, condition: jax.Array | None = None) -> jax.Array:
    again = condition if self.condition_every_layer else None
    h = concat_condition(z, condition)
    for width in self.hidden:
      h = concat_condition(self.activation(nn.Dense(width)(h)), again)
    out = nn.Dense(int(np.prod(self.output_shape)))(h)
    return out.reshape(z.shape[0], *self.output_shape)


class ConvDecoder(nn.Module):
  """Dense layers to a (H/2^k, W/2^k, features[0]) map, then stride-2 conv-transposes.

  Each 3x3 stride-2 ``layers.ConvTranspose`` (``nn.ConvTranspose``'s parameters and
  function) doubles H and W; the last one outputs C_out channels.
  z: [batch, latent_dim] -> [batch, H, W, C_out]. H and W must divide by 2^len(features).
  """
  output_shape: Sequence[int]
  features: Sequence[int] = (64, 32)
  hidden: Sequence[int] = (256,)
  activation: Callable[[jax.Array], jax.Array] = nn.relu
  condition_every_layer: bool = False

  @nn.compact
  def __call__(self, z: jax.Array, condition: jax.Array | None = None) -> jax.Array:
    height, width, channels = self.output_shape
    again = condition if self.condition_every_layer else None
    scale = 2 ** len(self.features)
    if height % scale or width % scale:
      raise ValueError(f"ConvDecoder: output_shape {tuple(self.output_shape)} must have H and W "
                       f"divisible by {scale} (2 ** len(features)).")
    h = concat_condition(z, condition)
    for w in self.hidden:
      h = concat_condition(self.activation(nn.Dense(w)(h)), again)
    h = self.activation(nn.Dense(height // scale * width // scale * self.features[0])(h))
    h = h.reshape(z.shape[0], height // scale, width // scale, self.features[0])
    for f in self.features[1:]:
      h = self.activation(ConvTranspose(f, 3, stride=2)(_concat_map(h, again)))
    return ConvTranspose(channels, 3, stride=2)(_concat_map(h, again))


def _concat_map(h: jax.Array, condition: jax.Array | None) -> jax.Array:
  """[batch, H, W, F] feature maps with a [batch, C] condition appended as C constant
  channels: [batch, H, W, F + C] (unchanged when None)."""
  if condition is None:
    return h
  c = jnp.broadcast_to(condition.astype(h.dtype)[:, None, None, :],
                       (*h.shape[:3], condition.shape[-1]))
  return jnp.concatenate([h, c], -1)
