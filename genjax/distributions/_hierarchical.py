"""Hierarchies of diagonal Gaussian stochastic layers: ``HierarchicalPosterior`` (bottom-up,
q(z_1|x) prod q(z_l|z_{l-1})) and ``HierarchicalPrior`` (top-down, p(z_L) prod
p(z_l|z_{l+1})), each layer a ``GaussianMLP`` (Burda et al. 2016, Sec. 5)."""

from __future__ import annotations

import itertools
from typing import Any, ClassVar

import flax.struct
import jax
import jax.numpy as jnp

from genjax.distributions._functions import (fold_in_keys, reparameterize,
                                             standard_normal_log_prob)
from genjax.distributions._gaussian import DiagonalGaussian
from genjax.distributions._networks import GaussianMLP


def _split_layers(z: jax.Array, dims: tuple[int, ...]) -> list[jax.Array]:
  """[..., sum(dims)] -> [z_1: [..., d_1], ..., z_L: [..., d_L]]."""
  if z.shape[-1] != sum(dims):
    raise ValueError(f"z has {z.shape[-1]} entries on its last axis: expected "
                     f"sum{tuple(dims)} = {sum(dims)} (z_1, ..., z_L concatenated)")
  return jnp.split(z, list(itertools.accumulate(dims))[:-1], axis=-1)


def _layer_noise(rng: jax.Array, layer: int, like: DiagonalGaussian,
                 num_samples: int | None) -> jax.Array:
  """N(0, I) noise for stochastic layer ``layer`` (> 0) shaped like ``like``'s mean, drawn
  from ``fold_in_keys(rng, layer)`` (one key, or one per example along the batch axis)."""
  batch = like.mean.shape[0] if num_samples is None else like.mean.shape[1]
  zeros = jnp.zeros((batch, like.mean.shape[-1]), like.mean.dtype)
  return reparameterize(fold_in_keys(rng, layer), zeros, zeros, num_samples)


def _not_factorized(dist: Any) -> ValueError:
  return ValueError(
      f"{type(dist).__name__}: the marginal of each latent dimension has no closed form in "
      "a hierarchy of stochastic layers (upper layers are mixtures); per-dimension "
      "statistics (free bits, KL per dimension) need a factorized posterior and prior")


@flax.struct.dataclass
class HierarchicalPosterior:
  """q(z_1..z_L|x) = q(z_1|x) prod_{l>1} q(z_l|z_{l-1}): a bottom-up chain of diagonal
  Gaussian stochastic layers (Burda et al. 2016, Sec. 5; L = 2 is their two-layer model).

  ``first``: q(z_1|x), batch [batch], event [d_1]; ``upper``: q(z_l|z_{l-1}) for l = 2..L
  (``GaussianMLP``). z is the concatenation [z_1, ..., z_L]: event [sum d_l]. Reparameterized
  draws (layer l's noise from ``fold_in_keys(rng, l - 1)``, so per-example keys stay
  per-example); ``log_prob`` at any z (STL and DReG evaluate it at stopped parameters).
  """
  first: DiagonalGaussian
  upper: tuple[GaussianMLP, ...]
  factorized: ClassVar[bool] = False

  @property
  def dims(self) -> tuple[int, ...]:
    return (self.first.mean.shape[-1],
            *(net.layers[-1]["b"].shape[-1] // 2 for net in self.upper))

  @property
  def mean(self) -> jax.Array:
    """The mean pass [mu_1(x), mu_2(mu_1), ...]: a point summary (E_q[z_l|x] for l > 1 has
    no closed form); the first layer's entries are E_q[z_1|x] exactly."""
    means = [self.first.mean]
    for net in self.upper:
      means.append(net(means[-1]).mean)
    return jnp.concatenate(means, -1)

  def sample_and_log_prob(self, rng: jax.Array,
                          num_samples: int | None = None) -> tuple[jax.Array, jax.Array]:
    """(z, log q(z|x)): z [batch, sum d] (or [num_samples, batch, sum d]), log q [batch]
    (or [num_samples, batch])."""
    z = self.first.sample(rng, num_samples)
    layers, log_q = [z], self.first.log_prob(z)
    for l, net in enumerate(self.upper, start=1):
      q = net(layers[-1])
      z = q.mean + jnp.exp(0.5 * q.log_var) * _layer_noise(rng, l, q, num_samples)
      layers.append(z)
      log_q = log_q + q.log_prob(z)
    return jnp.concatenate(layers, -1), log_q

  def sample(self, rng: jax.Array, num_samples: int | None = None) -> jax.Array:
    return self.sample_and_log_prob(rng, num_samples)[0]

  def log_prob(self, z: jax.Array) -> jax.Array:
    """log q(z_1|x) + sum_l log q(z_l|z_{l-1}): z [..., batch, sum d] -> [..., batch]."""
    layers = _split_layers(z, self.dims)
    total = self.first.log_prob(layers[0])
    for net, below, z_l in zip(self.upper, layers[:-1], layers[1:]):
      total = total + net(below).log_prob(z_l)
    return total

  def log_prob_per_dim(self, z: jax.Array) -> jax.Array:
    raise _not_factorized(self)


@flax.struct.dataclass
class HierarchicalPrior:
  """p(z_1..z_L) = p(z_L) prod_{l<L} p(z_l|z_{l+1}), p(z_L) = N(0, I): a top-down chain of
  diagonal Gaussian layers. ``lower``: p(z_l|z_{l+1}) for l = 1..L-1 (``GaussianMLP``,
  in that order); ``top_dim`` = d_L. z = [z_1, ..., z_L] as in ``HierarchicalPosterior``."""
  lower: tuple[GaussianMLP, ...]
  top_dim: int = flax.struct.field(pytree_node=False)
  factorized: ClassVar[bool] = False

  @property
  def dims(self) -> tuple[int, ...]:
    return (*(net.layers[-1]["b"].shape[-1] // 2 for net in self.lower), self.top_dim)

  def log_prob(self, z: jax.Array) -> jax.Array:
    """log N(z_L; 0, I) + sum_l log p(z_l|z_{l+1}): z [..., sum d] -> [...]."""
    layers = _split_layers(z, self.dims)
    total = standard_normal_log_prob(layers[-1])
    for net, z_l, above in zip(self.lower, layers[:-1], layers[1:]):
      total = total + net(above).log_prob(z_l)
    return total

  def sample(self, rng: jax.Array, num: int) -> jax.Array:
    """[num, sum d] ancestral draws: z_L ~ N(0, I) (``jax.random.normal(rng, ...)``), then
    z_l ~ p(z_l|z_{l+1}) with noise from ``fold_in(rng, L - l)``."""
    z = jax.random.normal(rng, (num, self.top_dim))
    layers = [z]
    for depth, net in enumerate(reversed(self.lower), start=1):
      p = net(layers[0])
      eps = jax.random.normal(jax.random.fold_in(rng, depth), p.mean.shape, p.mean.dtype)
      layers.insert(0, p.mean + jnp.exp(0.5 * p.log_var) * eps)
    return jnp.concatenate(layers, -1)

  def log_prob_per_dim(self, z: jax.Array) -> jax.Array:
    raise _not_factorized(self)
