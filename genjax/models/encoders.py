"""Encoders: images -> parameters (mean, log_var) of a diagonal Gaussian over z."""

from __future__ import annotations

from typing import Callable, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp


class MLPEncoder(nn.Module):
  """Flatten, ``len(hidden)`` dense layers, then a dense head to (mean, log_var).

  x: [batch, H, W, C] -> mean, log_var: [batch, latent_dim].
  """
  latent_dim: int
  hidden: Sequence[int] = (400,)
  activation: Callable[[jax.Array], jax.Array] = nn.relu

  @nn.compact
  def __call__(self, x: jax.Array) -> tuple[jax.Array, jax.Array]:
    h = x.reshape(x.shape[0], -1)
    for width in self.hidden:
      h = self.activation(nn.Dense(width)(h))
    mean = nn.Dense(self.latent_dim, name="mean")(h)
    log_var = nn.Dense(self.latent_dim, name="log_var")(h)
    return mean, log_var


class ConvEncoder(nn.Module):
  """Strided 3x3 convolutions (each halves H and W), then dense layers to (mean, log_var).

  x: [batch, H, W, C] -> mean, log_var: [batch, latent_dim].
  """
  latent_dim: int
  features: Sequence[int] = (32, 64)
  hidden: Sequence[int] = (256,)
  activation: Callable[[jax.Array], jax.Array] = nn.relu

  @nn.compact
  def __call__(self, x: jax.Array) -> tuple[jax.Array, jax.Array]:
    h = x
    for f in self.features:
      h = self.activation(nn.Conv(f, kernel_size=(3, 3), strides=(2, 2), padding="SAME")(h))
    h = h.reshape(h.shape[0], -1)
    for width in self.hidden:
      h = self.activation(nn.Dense(width)(h))
    mean = nn.Dense(self.latent_dim, name="mean")(h)
    log_var = nn.Dense(self.latent_dim, name="log_var")(h)
    return mean, log_var
