"""Encoders: images (and an optional condition) -> a code.

A Gaussian encoder (``stochastic=True``, the VAE's) returns ``(mean, log_var)`` of
q(z|x), and with ``extra=E > 0`` a third head ``[batch, E]`` beside them (what a richer
posterior needs from x: a Cholesky factor's off-diagonal, flow parameters, an IAF
context; ``models.flows``); a deterministic one (the autoencoder's) returns the code z itself. A condition
``c: [batch, C]`` (a one-hot label or an attribute vector) is concatenated to the
flattened features before the dense layers, giving q(z|x, c).
"""

from __future__ import annotations

from typing import Callable, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from genjax.models.layers import Conv

Code = jax.Array | tuple[jax.Array, ...]


def concat_condition(h: jax.Array, condition: jax.Array | None) -> jax.Array:
  """[batch, F] features with a [batch, C] condition appended (unchanged when None)."""
  return h if condition is None else jnp.concatenate([h, condition.astype(h.dtype)], -1)


def _heads(h: jax.Array, latent_dim: int, stochastic: bool, extra: int = 0,
           extra_zero_init: bool = False) -> Code:
  """(mean, log_var) heads (and an ``extra`` head when extra > 0: zero weights with
  ``extra_zero_init``, so e.g. a Cholesky factor's off-diagonal starts at 0), or one
  deterministic ``code`` head."""
  if not stochastic:
    return nn.Dense(latent_dim, name="code")(h)
  gaussian = nn.Dense(latent_dim, name="mean")(h), nn.Dense(latent_dim, name="log_var")(h)
  if not extra:
    return gaussian
  init = nn.initializers.zeros if extra_zero_init else nn.initializers.lecun_normal()
  return (*gaussian, nn.Dense(extra, kernel_init=init, name="extra")(h))


class MLPEncoder(nn.Module):
  """Flatten, ``len(hidden)`` dense layers, then the head(s).

  x: [batch, H, W, C] -> mean, log_var: [batch, latent_dim] (or z: [batch, latent_dim]).
  """
  latent_dim: int
  hidden: Sequence[int] = (400,)
  activation: Callable[[jax.Array], jax.Array] = nn.relu
  stochastic: bool = True
  extra: int = 0
  extra_zero_init: bool = False

  @nn.compact
  def __call__(self, x: jax.Array, condition: jax.Array | None = None) -> Code:
    h = concat_condition(x.reshape(x.shape[0], -1), condition)
    for width in self.hidden:
      h = self.activation(nn.Dense(width)(h))
    return _heads(h, self.latent_dim, self.stochastic, self.extra, self.extra_zero_init)


class ConvEncoder(nn.Module):
  """Strided 3x3 convolutions (each halves H and W, rounding up), then dense layers to
  the head(s). The convolutions are ``layers.Conv`` (``nn.Conv``'s parameters and function).

  x: [batch, H, W, C] -> mean, log_var: [batch, latent_dim] (or z: [batch, latent_dim]).
  """
  latent_dim: int
  features: Sequence[int] = (32, 64)
  hidden: Sequence[int] = (256,)
  activation: Callable[[jax.Array], jax.Array] = nn.relu
  stochastic: bool = True
  extra: int = 0
  extra_zero_init: bool = False

  @nn.compact
  def __call__(self, x: jax.Array, condition: jax.Array | None = None) -> Code:
    h = x
    for f in self.features:
      h = self.activation(Conv(f, 3, stride=2)(h))
    h = concat_condition(h.reshape(h.shape[0], -1), condition)
    for width in self.hidden:
      h = self.activation(nn.Dense(width)(h))
    return _heads(h, self.latent_dim, self.stochastic, self.extra, self.extra_zero_init)
