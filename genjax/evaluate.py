"""Evaluation beyond the ELBO: importance-sampled log-likelihood, active units, KL per
dimension, the signal-to-noise ratio of gradient estimators, outlier-detection scores
(AUROC, average precision) and distances to the data (is a decoded point on the manifold?)."""

from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
from sklearn import metrics as sk_metrics

from genjax import distributions as D
from genjax import objectives
from genjax.objectives import ENCODER, Batch, Likelihood, LossFn


def importance_sampled_log_likelihood(
    model: nn.Module, likelihood: Likelihood, params: Any, x: jax.Array, rng: jax.Array,
    num_samples: int = 5000, chunk_size: int = 500) -> tuple[jax.Array, jax.Array]:
  """log p(x) ~= log 1/K sum_k p(x, z_k) / q(z_k|x), z_k ~ q(z|x)  (Burda et al. 2016, Sec. 5).

  x: [batch, H, W, C]. The K samples are drawn ``chunk_size`` at a time (``lax.map``), so
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
    return objectives.sample_terms(model, likelihood, params, x, key, chunk_size)["log_w"]

  log_w = jax.lax.map(one_chunk, keys).reshape(num_samples, x.shape[0])   # [K, batch]
  log_px = objectives.log_mean_exp(log_w)
  normalized = jax.nn.softmax(log_w, axis=0)
  std_err = jnp.sqrt(jnp.maximum(num_samples * jnp.sum(normalized ** 2, 0) - 1.0, 0.0)
                     / num_samples)
  return log_px, std_err


def make_log_likelihood_fn(model: nn.Module, likelihood: Likelihood, num_samples: int = 5000,
                           chunk_size: int = 500):
  """Per-example metrics for ``train.make_eval_fn``: ``log_px`` and ``log_px_var`` (se^2)."""

  def metrics(params: Any, batch: Batch, rng: jax.Array) -> dict[str, jax.Array]:
    log_px, se = importance_sampled_log_likelihood(model, likelihood, params, batch["image"],
                                                   rng, num_samples, chunk_size)
    return {"log_px": log_px, "log_px_var": se ** 2}

  return metrics


def posterior_statistics(model: nn.Module, params: Any, x: jax.Array,
                         batch_size: int = 1000) -> dict[str, np.ndarray]:
  """Encoder means and per-dimension KL over a data set x: [N, H, W, C].

  Returns ``kl_per_dim: [latent]`` (mean over x of KL(q(z_d|x) || N(0, 1))), ``mean_cov:
  [latent]`` (Cov_x(E_q[z_d|x])) and ``active_units`` (how many dimensions have
  Cov_x(E_q[z_d|x]) > 0.01; Burda et al. 2016, Sec. 5.2).
  """
  encode = jax.jit(lambda p, xb: model.apply({"params": p}, xb, method=model.encode))
  means, kls = [], []
  for start in range(0, len(x), batch_size):
    mean, log_var = encode(params, x[start:start + batch_size])
    means.append(np.asarray(mean))
    kls.append(np.asarray(D.kl_diag_gaussian_standard_normal(mean, log_var, event_ndims=0)))
  means = np.concatenate(means)
  return {"kl_per_dim": np.concatenate(kls).mean(0), "mean_cov": means.var(0),
          "active_units": active_units(means)}


def active_units(posterior_means: np.ndarray, threshold: float = 0.01) -> int:
  """Number of latent dimensions d with Cov_x(E_q[z_d|x]) > threshold.

  posterior_means: [N, latent], the encoder means over a data set.
  """
  return int(np.sum(np.var(np.asarray(posterior_means, np.float64), axis=0) > threshold))


def gradient_snr(loss_fn: LossFn, params: Any, batch: Batch, rng: jax.Array,
                 num_draws: int = 100) -> dict[str, float]:
  """Signal-to-noise ratio and variance of a gradient estimator on a fixed batch.

  Draws the loss's gradient ``num_draws`` times with independent keys. Per parameter,
  SNR = |mean of draws| / std of draws (Rainforth et al. 2018, Eq. 6). Reports, for the
  encoder (``params["encoder"]``) and the decoder (everything else): the mean SNR over
  parameters and the mean per-parameter variance.
  """
  keys = jax.random.split(rng, num_draws)
  grad = jax.grad(lambda p, k: loss_fn(p, batch, k)[0])
  grads = jax.lax.map(lambda k: grad(params, k), keys)
  stats = {}
  for part in ("encoder", "decoder"):
    tree = {k: v for k, v in grads.items() if (k == ENCODER) == (part == "encoder")}
    flat = jnp.concatenate([g.reshape(num_draws, -1) for g in jax.tree.leaves(tree)], axis=1)
    mean, std = jnp.mean(flat, 0), jnp.std(flat, 0)
    snr = jnp.abs(mean) / jnp.maximum(std, 1e-30)
    stats[f"{part}_grad_snr"] = float(jnp.mean(snr))
    stats[f"{part}_grad_var"] = float(jnp.mean(std ** 2))
  return stats


def detection_scores(normal: np.ndarray, anomalous: np.ndarray) -> dict[str, float]:
  """How well a score (higher = more anomalous) separates anomalies from normal data.

  normal: [n] scores of normal examples, anomalous: [m] scores of anomalies (the
  positive class). Returns ``auroc`` (area under the ROC curve: the probability that a
  random anomaly scores above a random normal example, ties counting half) and ``ap``
  (average precision, the area under the precision-recall curve), from scikit-learn.
  """
  scores = np.concatenate([np.asarray(normal, np.float64), np.asarray(anomalous, np.float64)])
  is_anomaly = np.concatenate([np.zeros(len(normal)), np.ones(len(anomalous))])
  return {"auroc": float(sk_metrics.roc_auc_score(is_anomaly, scores)),
          "ap": float(sk_metrics.average_precision_score(is_anomaly, scores))}


def nearest_neighbour_distance(queries: np.ndarray, references: np.ndarray,
                               chunk: int = 256) -> np.ndarray:
  """Squared L2 distance from each query image to its nearest reference image.

  queries: [n, H, W, C], references: [m, H, W, C] -> [n]. A decoded point far from
  every real image is off the data manifold.
  """
  refs = jnp.asarray(references, jnp.float32).reshape(len(references), -1)
  ref_sq = jnp.sum(refs ** 2, -1)

  @jax.jit
  def nearest(q):
    d = jnp.sum(q ** 2, -1)[:, None] - 2 * q @ refs.T + ref_sq[None]
    return jnp.maximum(jnp.min(d, -1), 0.0)

  q = np.asarray(queries, np.float32).reshape(len(queries), -1)
  return np.concatenate([np.asarray(nearest(q[i:i + chunk])) for i in range(0, len(q), chunk)])
