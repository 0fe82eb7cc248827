"""The likelihood side of evaluation: importance-sampled log-likelihood with its standard
error, posterior statistics (active units, KL per dimension), and the signal-to-noise
ratio of gradient estimators."""

from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from genjax import distributions as D
from genjax.likelihoods import Likelihood
from genjax.losses import elbo as elbo_losses
from genjax.models import protocol
from genjax.types import Batch, LossFn

KL_SAMPLES = 64   # Monte Carlo samples per example for a per-dimension KL with no closed form


def importance_sampled_log_likelihood(
    model: nn.Module, likelihood: Likelihood, params: Any, x: jax.Array, rng: jax.Array,
    num_samples: int = 5000, chunk_size: int = 500, condition: jax.Array | None = None
    ) -> tuple[jax.Array, jax.Array]:
  """log p(x) ~= log 1/K sum_k p(x, z_k) / q(z_k|x), z_k ~ q(z|x)  (Burda et al. 2016, Sec. 5).

  x: [batch, H, W, C]; for a conditional model ``condition: [batch, C]`` gives
  log p(x|c) ~= log 1/K sum_k p(x, z_k|c) / q(z_k|x, c). The K samples are drawn ``chunk_size`` at a time (``lax.map``), so
  memory grows with ``chunk_size * batch``, not with K; K must divide by ``chunk_size``.
  Returns ``(log_px_hat, std_err)``, each [batch]. The standard error is the delta-method
  error of the log of a K-sample mean: with normalized weights w~_k = w_k / sum_j w_j,
  se = sqrt((K sum_k w~_k^2 - 1) / K) (the sample coefficient of variation of w over
  sqrt(K)). The estimate is biased low by about se^2 / 2 (Jensen), negligible when se is small.
  """
  chunk_size = min(chunk_size, num_samples)
  if num_samples % chunk_size:
    raise ValueError(f"num_samples={num_samples} must divide by chunk_size={chunk_size}")
  keys = jax.random.split(rng, num_samples // chunk_size)

  def one_chunk(key):
    return elbo_losses.sample_terms(model, likelihood, params, x, key, chunk_size,
                                    condition=condition)["log_w"]

  log_w = jax.lax.map(one_chunk, keys).reshape(num_samples, x.shape[0])   # [K, batch]
  log_px = elbo_losses.log_mean_exp(log_w)
  normalized = jax.nn.softmax(log_w, axis=0)
  std_err = jnp.sqrt(jnp.maximum(num_samples * jnp.sum(normalized ** 2, 0) - 1.0, 0.0)
                     / num_samples)
  return log_px, std_err


def make_log_likelihood_fn(model: nn.Module, likelihood: Likelihood, num_samples: int = 5000,
                           chunk_size: int = 500):
  """Per-example metrics for ``training.loop.make_eval_fn``: ``log_px`` and ``log_px_var`` (se^2).
  A conditional model gets ``batch["condition"]``."""

  def metrics(params: Any, batch: Batch, rng: jax.Array) -> dict[str, jax.Array]:
    log_px, se = importance_sampled_log_likelihood(model, likelihood, params, batch["image"],
                                                   rng, num_samples, chunk_size,
                                                   batch.get("condition"))
    return {"log_px": log_px, "log_px_var": se ** 2}

  return metrics


def posterior_statistics(model: nn.Module, params: Any, x: jax.Array,
                         batch_size: int = 1000, condition: jax.Array | None = None,
                         rng: jax.Array | None = None, num_kl_samples: int = KL_SAMPLES
                         ) -> dict[str, np.ndarray]:
  """Posterior means and per-dimension KL over a data set x: [N, H, W, C] (and, for a
  conditional model, its conditions [N, C]).

  Returns ``kl_per_dim: [latent]``, the mean over x of KL(q(z_d|x) || p(z_d)) between
  each dimension's marginals: in closed form where the (posterior, prior) pair has one
  (``distributions.kl_divergence``; for N(0, I) these sum to the KL), else a Monte Carlo
  estimate with ``num_kl_samples`` (default ``KL_SAMPLES`` = 64) samples z ~ q(z|x) per
  example, drawn from ``rng`` (default PRNGKey(0), so the statistic is deterministic),
  folded in by batch start index. Also ``mean_cov: [latent]`` (Cov_x(E_q[z_d|x]), from
  ``posterior.mean``) and ``active_units`` (how many dimensions have Cov_x(E_q[z_d|x]) >
  0.01; Burda et al. 2016, Sec. 5.2).
  """
  rng = jax.random.PRNGKey(0) if rng is None else rng

  @jax.jit
  def statistics(p, xb, cb, key):
    q, prior = protocol.posterior(model, p, xb, cb), protocol.prior(model, p)
    if D.has_closed_form_kl(q, prior):
      return q.mean, D.kl_divergence(q, prior, per_dim=True)
    kl = jax.lax.map(lambda k: D.kl_divergence(q, prior, q.sample(k), per_dim=True),
                     jax.random.split(key, num_kl_samples))        # [samples, batch, latent]
    return q.mean, jnp.mean(kl, 0)

  means, kls = [], []
  for start in range(0, len(x), batch_size):
    cb = None if condition is None else condition[start:start + batch_size]
    mean, kl = statistics(params, x[start:start + batch_size], cb,
                          jax.random.fold_in(rng, start))
    means.append(np.asarray(mean))
    kls.append(np.asarray(kl))
  means = np.concatenate(means)
  return {"kl_per_dim": np.concatenate(kls).mean(0), "mean_cov": means.var(0),
          "active_units": active_units(means)}


def active_units(posterior_means: np.ndarray, threshold: float = 0.01) -> int:
  """Number of latent dimensions d with Cov_x(E_q[z_d|x]) > threshold.

  posterior_means: [N, latent], the encoder means over a data set.
  """
  return int(np.sum(np.var(np.asarray(posterior_means, np.float64), axis=0) > threshold))


def gradient_snr(loss_fn: LossFn, params: Any, batch: Batch, rng: jax.Array,
                 num_draws: int, encoder_mask: Any) -> dict[str, float]:
  """Signal-to-noise ratio and variance of a gradient estimator on a fixed batch.

  Draws the loss's gradient ``num_draws`` times with independent keys. Per parameter,
  SNR = |mean of draws| / std of draws (Rainforth et al. 2018, Eq. 6). Reports, for the
  encoder (the leaves where ``encoder_mask`` is True: a bool pytree shaped like
  ``params``, e.g. ``models.protocol.encoder_mask(model, params)``) and the decoder
  (every other leaf, the prior's parameters included): the mean SNR over parameters and
  the mean per-parameter variance.
  """
  treedef = jax.tree.structure(params)
  mask = treedef.flatten_up_to(encoder_mask)
  if all(mask) or not any(mask):
    raise ValueError("gradient_snr: encoder_mask must mark some parameters as the encoder "
                     "and leave some for the decoder")
  keys = jax.random.split(rng, num_draws)
  grad = jax.grad(lambda p, k: loss_fn(p, batch, k)[0])
  grads = jax.tree.leaves(jax.lax.map(lambda k: grad(params, k), keys))
  stats = {}
  for part in ("encoder", "decoder"):
    flat = jnp.concatenate([g.reshape(num_draws, -1) for g, m in zip(grads, mask)
                            if bool(m) == (part == "encoder")], axis=1)
    mean, std = jnp.mean(flat, 0), jnp.std(flat, 0)
    snr = jnp.abs(mean) / jnp.maximum(std, 1e-30)
    stats[f"{part}_grad_snr"] = float(jnp.mean(snr))
    stats[f"{part}_grad_var"] = float(jnp.mean(std ** 2))
  return stats
