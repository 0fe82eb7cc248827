"""The likelihood p(x|z) of an image given a decoder's output: Bernoulli (logits), or
Gaussian with a fixed or a learned variance. Every log-likelihood is summed over H, W, C
and is in nats per example."""

from __future__ import annotations

import dataclasses
import math
from typing import Callable

import jax
import jax.numpy as jnp

from genjax import distributions as D

LIKELIHOODS = ("bernoulli", "gaussian_fixed", "gaussian_learned")


@dataclasses.dataclass(frozen=True)
class Likelihood:
  """p(x|z) given the decoder's output.

  ``params_per_channel``: decoder channels per image channel.
  ``log_prob(x, out) -> [batch]``: log p(x|z), summed over H, W, C.
  ``mean(out) -> [batch, H, W, C]``: E[x|z], for pictures.
  """
  name: str
  params_per_channel: int
  log_prob: Callable[[jax.Array, jax.Array], jax.Array]
  mean: Callable[[jax.Array], jax.Array]


def _split_mean_log_var(out: jax.Array) -> tuple[jax.Array, jax.Array]:
  channels = out.shape[-1] // 2
  return out[..., :channels], out[..., channels:]


def _pixels(image: jax.Array) -> jax.Array:
  """[..., H, W, C] -> [..., H * W * C] (free: the same row-major memory).

  The log-likelihoods work on this flat form: with images' last axis of 1 (grey levels)
  XLA's CPU backend vectorizes the elementwise terms and their sum over that axis of one,
  and the IWAE K=50 train step ran 1.4x slower than the same step on flat pixels
  (bench/RESULTS.md, "IWAE K=50").
  """
  return image.reshape(*image.shape[:-3], -1)


def make_likelihood(name: str, gaussian_std: float = 0.1) -> Likelihood:
  """Bernoulli (decoder gives logits), Gaussian with fixed std, or with learned variance.

  bernoulli:        log p(x|z) = sum x log sigmoid(l) + (1 - x) log sigmoid(-l)
  gaussian_fixed:   log p(x|z) = sum log N(x; mu, gaussian_std^2)
  gaussian_learned: log p(x|z) = sum log N(x; mu, exp(log_var)), decoder gives (mu, log_var)
  """
  if name == "bernoulli":
    return Likelihood(
        name, 1, lambda x, out: D.bernoulli_log_prob(_pixels(x), _pixels(out), event_ndims=1),
        jax.nn.sigmoid)
  if name == "gaussian_fixed":
    if gaussian_std <= 0:
      raise ValueError(f"gaussian_std={gaussian_std} must be > 0")
    log_var = 2.0 * math.log(gaussian_std)
    return Likelihood(
        name, 1, lambda x, out: D.gaussian_log_prob(
            _pixels(x), _pixels(out), jnp.full(_pixels(out).shape, log_var, out.dtype), 1),
        lambda out: out)
  if name == "gaussian_learned":
    return Likelihood(
        name, 2, lambda x, out: D.gaussian_log_prob(
            _pixels(x), *map(_pixels, _split_mean_log_var(out)), 1),
        lambda out: _split_mean_log_var(out)[0])
  raise ValueError(f"likelihood={name!r}: expected one of {', '.join(LIKELIHOODS)}")
