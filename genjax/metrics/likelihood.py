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
  return _estimate(log_weights(model, likelihood, params, x, rng, num_samples, chunk_size,
                               condition))


def log_weights(model: nn.Module, likelihood: Likelihood, params: Any, x: jax.Array,
                rng: jax.Array, num_samples: int, chunk_size: int = 500,
                condition: jax.Array | None = None) -> jax.Array:
  """log w_k = log p(x, z_k) - log q(z_k|x), z_k ~ q(z|x): [K, batch], drawn ``chunk_size``
  at a time (``importance_sampled_log_likelihood``'s draws). Their mean over k is the ELBO
  (K-sample Monte Carlo), their log-mean-exp the log-likelihood estimate."""
  chunk_size = min(chunk_size, num_samples)
  if num_samples % chunk_size:
    raise ValueError(f"num_samples={num_samples} must divide by chunk_size={chunk_size}")
  keys = jax.random.split(rng, num_samples // chunk_size)

  def one_chunk(key):
    return elbo_losses.sample_terms(model, likelihood, params, x, key, chunk_size,
                                    condition=condition)["log_w"]

  return jax.lax.map(one_chunk, keys).reshape(num_samples, x.shape[0])   # [K, batch]


def _estimate(log_w: jax.Array) -> tuple[jax.Array, jax.Array]:
  """(log-mean-exp of log_w over axis 0, its delta-method standard error)."""
  num_samples = log_w.shape[0]
  log_px = elbo_losses.log_mean_exp(log_w)
  normalized = jax.nn.softmax(log_w, axis=0)
  std_err = jnp.sqrt(jnp.maximum(num_samples * jnp.sum(normalized ** 2, 0) - 1.0, 0.0)
                     / num_samples)
  return log_px, std_err


def make_log_likelihood_fn(model: nn.Module, likelihood: Likelihood, num_samples: int = 5000,
                           chunk_size: int = 500):
  """Per-example metrics for ``training.loop.make_eval_fn``: ``log_px`` and ``log_px_var`` (se^2)
  of ``importance_sampled_log_likelihood``, and ``elbo``, the mean of the same log-weights
  (the ELBO at those draws: log_px - elbo estimates the gap log p(x) - ELBO on the same
  examples). A conditional model gets ``batch["condition"]``."""

  def metrics(params: Any, batch: Batch, rng: jax.Array) -> dict[str, jax.Array]:
    log_w = log_weights(model, likelihood, params, batch["image"], rng, num_samples,
                        chunk_size, batch.get("condition"))
    log_px, se = _estimate(log_w)
    return {"log_px": log_px, "log_px_var": se ** 2, "elbo": jnp.mean(log_w, 0)}

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
  folded in by batch start index; NaN where the marginals have no density (a hierarchy of
  stochastic layers, a flow: their per-dimension marginals are mixtures). Also
  ``mean_cov: [latent]`` (Cov_x(E_q[z_d|x]), from
  ``posterior.mean``) and ``active_units`` (how many dimensions have Cov_x(E_q[z_d|x]) >
  0.01; Burda et al. 2016, Sec. 5.2), and for a hierarchy of stochastic layers
  ``active_units_per_layer`` (the posterior's mean pass, see ``HierarchicalPosterior.mean``).
  """
  rng = jax.random.PRNGKey(0) if rng is None else rng

  @jax.jit
  def statistics(p, xb, cb, key):
    q, prior = protocol.posterior(model, p, xb, cb), protocol.prior(model, p)
    if D.has_closed_form_kl(q, prior):
      return q.mean, D.kl_divergence(q, prior, per_dim=True)
    if isinstance(q, (D.HierarchicalPosterior, *D.FLOWS)) or isinstance(prior,
                                                                     D.HierarchicalPrior):
      # Per-dimension marginals of a hierarchy (or a flow) have no density here: NaN.
      return q.mean, jnp.full(q.mean.shape, jnp.nan, q.mean.dtype)
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
  out = {"kl_per_dim": np.concatenate(kls).mean(0), "mean_cov": means.var(0),
         "active_units": active_units(means)}
  dims = getattr(model, "latent_dims", None)   # a hierarchy (models.HierarchicalVAE)
  if dims:   # per stochastic layer (Burda et al. 2016, Table 2)
    bounds = np.cumsum((0, *dims))
    out["active_units_per_layer"] = [active_units(means[:, a:b])
                                     for a, b in zip(bounds[:-1], bounds[1:])]
  return out


def active_units(posterior_means: np.ndarray, threshold: float = 0.01) -> int:
  """Number of latent dimensions d with Cov_x(E_q[z_d|x]) > threshold.

  posterior_means: [N, latent], the encoder means over a data set.
  """
  return int(np.sum(np.var(np.asarray(posterior_means, np.float64), axis=0) > threshold))


def snr_summary(draws: jax.Array) -> dict[str, float | None]:
  """Signal-to-noise ratio of a gradient estimator, summarised over parameters.

  draws: [num_draws, num_params], N independent draws g_1..g_N of one estimator's
  gradient (same parameters, same batch, fresh noise). With m_i and s_i the mean and
  standard deviation of parameter i over the draws (1/N normalisation), the per-parameter
  signal-to-noise ratio is SNR_i = |m_i| / s_i (Rainforth et al. 2018, "Tighter
  variational bounds are not necessarily better", Eq. 6; Tucker et al. 2019, DReG).

  Returns (each a float, or None where undefined or not finite):
    snr_median: the median of SNR_i over parameters. A parameter whose gradient is
      identically zero in every draw (m_i = s_i = 0: a dead unit, a parameter the loss
      does not use) has no SNR and is excluded; a constant non-zero one (s_i = 0) counts
      as SNR = inf, which the median tolerates (None if it is more than half of them).
    snr_projection: the SNR of the whole vector along its mean direction,
      |E[g . u]| / std[g . u],   u = E[g] / ||E[g]||.
      u is estimated leave-one-out: draw d is projected on u_{-d}, the normalised sum of
      the other N - 1 draws. With u from all N draws, a draw's own noise would turn u
      towards itself: the mean projection would be ||g_bar|| >= about sqrt(tr Cov[g] / N)
      however small ||E[g]|| is. Left out, a direction the N draws cannot resolve is close
      to random, so the projection SNR comes out small rather than inflated.
    grad_snr: the legacy summary, the mean of |m_i| / max(s_i, 1e-30) over all
      parameters (identically zero ones count 0). The few parameters whose gradient
      barely varies (s_i near 0) dominate it: it gave IWAE's decoder on MNIST 1e4-1e6.
      Kept so that earlier results stay comparable.
    grad_var: the mean over parameters of s_i^2.
  Both SNRs are unchanged by scaling the gradients by any non-zero constant and by
  permuting parameters; snr_projection is unchanged by any rotation of parameter space.
  """
  draws = jnp.asarray(draws)
  if draws.ndim != 2 or draws.shape[0] < 2:
    raise ValueError(f"snr_summary: draws must be [num_draws >= 2, num_params], got "
                     f"{draws.shape}")
  mean, std = jnp.mean(draws, 0), jnp.std(draws, 0)
  legacy = jnp.mean(jnp.abs(mean) / jnp.maximum(std, 1e-30))
  total = jnp.sum(draws, 0)
  # g_d . u_{-d}, u_{-d} = (total - g_d) / ||total - g_d||: one draw at a time (memory).
  projections = jax.lax.map(
      lambda g: jnp.dot(g, total - g) / jnp.linalg.norm(total - g), draws)
  m, s = np.asarray(mean, np.float64), np.asarray(std, np.float64)
  live = (m != 0) | (s != 0)
  p = np.asarray(projections, np.float64)
  with np.errstate(divide="ignore", invalid="ignore"):
    snr = np.abs(m[live]) / s[live]
    median = np.median(snr) if snr.size else np.nan
    projection = np.abs(p.mean()) / p.std()
  return {"snr_median": _finite_or_none(median), "snr_projection": _finite_or_none(projection),
          "grad_snr": _finite_or_none(legacy), "grad_var": _finite_or_none(jnp.mean(std ** 2))}


def _finite_or_none(value: Any) -> float | None:
  value = float(value)
  return value if np.isfinite(value) else None


def gradient_snr(loss_fn: LossFn, params: Any, batch: Batch, rng: jax.Array,
                 num_draws: int, encoder_mask: Any) -> dict[str, float | None]:
  """Signal-to-noise ratio and variance of a gradient estimator on a fixed batch.

  Draws the loss's gradient ``num_draws`` times with independent keys (same parameters,
  same batch) and summarises the draws with ``snr_summary`` separately for the encoder
  (the inference network phi: the leaves where ``encoder_mask`` is True, a bool pytree
  shaped like ``params``, e.g. ``models.protocol.encoder_mask(model, params)``) and the
  decoder (the generative model theta: every other leaf, the prior's parameters
  included). Returns ``{part}_snr_median``, ``{part}_snr_projection``, ``{part}_grad_snr``
  (the legacy mean over parameters) and ``{part}_grad_var`` for part in encoder, decoder
  (None where undefined; see ``snr_summary``).
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
    stats.update({f"{part}_{k}": v for k, v in snr_summary(flat).items()})
  return stats
