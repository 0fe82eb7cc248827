"""Evaluation beyond the ELBO: importance-sampled log-likelihood, active units, KL per
dimension, the signal-to-noise ratio of gradient estimators, outlier-detection scores
(AUROC, average precision), distances to the data (is a decoded point on the manifold?),
and sample quality on one scale for every model (Frechet distance and score in the feature
space of a cached reference classifier, class histogram, conditional accuracy)."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from typing import Any

from absl import logging
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
import scipy.linalg
import scipy.special
from sklearn import metrics as sk_metrics

from genjax import distributions as D
from genjax import objectives
from genjax.objectives import ENCODER, Batch, Likelihood, LossFn


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
    return objectives.sample_terms(model, likelihood, params, x, key, chunk_size,
                                   condition=condition)["log_w"]

  log_w = jax.lax.map(one_chunk, keys).reshape(num_samples, x.shape[0])   # [K, batch]
  log_px = objectives.log_mean_exp(log_w)
  normalized = jax.nn.softmax(log_w, axis=0)
  std_err = jnp.sqrt(jnp.maximum(num_samples * jnp.sum(normalized ** 2, 0) - 1.0, 0.0)
                     / num_samples)
  return log_px, std_err


def make_log_likelihood_fn(model: nn.Module, likelihood: Likelihood, num_samples: int = 5000,
                           chunk_size: int = 500):
  """Per-example metrics for ``train.make_eval_fn``: ``log_px`` and ``log_px_var`` (se^2).
  A conditional model gets ``batch["condition"]``."""

  def metrics(params: Any, batch: Batch, rng: jax.Array) -> dict[str, jax.Array]:
    log_px, se = importance_sampled_log_likelihood(model, likelihood, params, batch["image"],
                                                   rng, num_samples, chunk_size,
                                                   batch.get("condition"))
    return {"log_px": log_px, "log_px_var": se ** 2}

  return metrics


def posterior_statistics(model: nn.Module, params: Any, x: jax.Array,
                         batch_size: int = 1000, condition: jax.Array | None = None
                         ) -> dict[str, np.ndarray]:
  """Encoder means and per-dimension KL over a data set x: [N, H, W, C] (and, for a
  conditional model, its conditions [N, C]).

  Returns ``kl_per_dim: [latent]`` (mean over x of KL(q(z_d|x) || N(0, 1))), ``mean_cov:
  [latent]`` (Cov_x(E_q[z_d|x])) and ``active_units`` (how many dimensions have
  Cov_x(E_q[z_d|x]) > 0.01; Burda et al. 2016, Sec. 5.2).
  """
  encode = jax.jit(lambda p, xb, cb: objectives.encode(model, p, xb, cb))
  means, kls = [], []
  for start in range(0, len(x), batch_size):
    cb = None if condition is None else condition[start:start + batch_size]
    mean, log_var = encode(params, x[start:start + batch_size], cb)
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


# --- One scale for sample quality -----------------------------------------------------------
#
# Inception weights cannot be downloaded here, so samples are scored in the feature space
# of a small classifier trained (once, then cached) on the data set's own labelled images:
# the Frechet distance of Heusel et al. 2017 and the score of Salimans et al. 2016, computed
# with this classifier in place of Inception. Numbers are comparable between models scored
# by the same classifier with the same number of samples, not with published FID/IS.

REFERENCE_ARCHITECTURE = {"model": "mlp", "latent_dim": 128, "hidden": (512, 256), "epochs": 5,
                          "batch_size": 128, "learning_rate": 1e-3, "seed": 0}
CACHE_ENV = "GENJAX_CACHE"


def frechet_distance(features_a: np.ndarray, features_b: np.ndarray) -> float:
  """d^2 = ||mu_a - mu_b||^2 + Tr(S_a + S_b - 2 (S_a S_b)^{1/2})  (Heusel et al. 2017, Eq. 6).

  features_*: [n, F]; mu and S are each set's mean and covariance (the Frechet distance
  between the Gaussians fitted to them). The matrix square root is scipy's ``sqrtm``; the
  tiny imaginary part it can return from round-off is dropped.
  """
  a, b = np.asarray(features_a, np.float64), np.asarray(features_b, np.float64)
  mu_a, mu_b = a.mean(0), b.mean(0)
  cov_a, cov_b = np.atleast_2d(np.cov(a, rowvar=False)), np.atleast_2d(np.cov(b, rowvar=False))
  root = scipy.linalg.sqrtm(cov_a @ cov_b)
  root = root.real if np.iscomplexobj(root) else root
  return float(np.sum((mu_a - mu_b) ** 2) + np.trace(cov_a + cov_b - 2.0 * root))


def classifier_score(probs: np.ndarray) -> float:
  """exp(E_x KL(p(y|x) || p(y))), p(y) = E_x p(y|x)  (Salimans et al. 2016, "Inception score").

  probs: [n, K] class probabilities of n samples. 1 when every sample gets the same
  distribution; K when each sample is confidently one class and the classes are balanced.
  """
  p = np.asarray(probs, np.float64)
  marginal = p.mean(0, keepdims=True)
  kl = np.sum(scipy.special.rel_entr(p, marginal), axis=1)
  return float(np.exp(kl.mean()))


def class_histogram(probs: np.ndarray) -> np.ndarray:
  """Share of samples whose most probable class is k, for each k: [K], summing to 1."""
  probs = np.asarray(probs)
  return np.bincount(probs.argmax(-1), minlength=probs.shape[-1]) / len(probs)


def mode_coverage(histogram: np.ndarray) -> dict[str, float]:
  """``sample_modes``: classes holding at least a tenth of the uniform share 1/K;
  ``sample_class_kl``: KL(histogram || uniform) in nats (0 for perfectly balanced samples,
  log K when every sample is one class)."""
  h = np.asarray(histogram, np.float64)
  k = len(h)
  return {"sample_modes": int(np.sum(h >= 0.1 / k)),
          "sample_class_kl": float(np.sum(scipy.special.rel_entr(h, np.full(k, 1.0 / k))))}


def conditional_accuracy(probs: np.ndarray, conditioned_on: np.ndarray) -> float:
  """Share of samples the classifier assigns to the class they were generated for.

  probs: [n, K]; conditioned_on: [n] int class indices.
  """
  return float(np.mean(np.asarray(probs).argmax(-1) == np.asarray(conditioned_on)))


@dataclasses.dataclass(frozen=True)
class ReferenceClassifier:
  """The classifier that puts every model's samples on one scale.

  ``model`` is a ``models.Classifier``; its features are the encoder's code (the layer
  before the linear head). ``test_accuracy`` is on the data set's test split.
  """
  model: nn.Module
  params: Any
  test_accuracy: float
  dataset: str
  fingerprint: str

  def features_and_probs(self, images: np.ndarray, batch_size: int = 500
                         ) -> tuple[np.ndarray, np.ndarray]:
    """images [n, H, W, C] in [0, 1] -> (features [n, F], class probabilities [n, K])."""
    return _features_and_probs(self.model, self.params, np.asarray(images, np.float32),
                               batch_size)


def _features_and_probs(model: nn.Module, params: Any, images: np.ndarray, batch_size: int):
  @jax.jit
  def apply(x):
    code = model.encoder.apply({"params": params["encoder"]}, x)
    logits = model.apply({"params": params}, x)
    return code, jax.nn.softmax(logits)

  n = len(images)
  pad = -n % batch_size
  padded = np.concatenate([images, np.zeros((pad, *images.shape[1:]), images.dtype)])
  outs = [jax.device_get(apply(padded[i:i + batch_size])) for i in range(0, len(padded),
                                                                          batch_size)]
  return (np.concatenate([o[0] for o in outs])[:n], np.concatenate([o[1] for o in outs])[:n])


def default_cache_dir() -> str:
  """``$GENJAX_CACHE``, else ``~/.cache/genjax``."""
  return os.environ.get(CACHE_ENV) or os.path.join(os.path.expanduser("~"), ".cache", "genjax")


def _fingerprint(images: np.ndarray, labels: np.ndarray, settings: dict) -> str:
  digest = hashlib.sha256()
  digest.update(np.ascontiguousarray(images).tobytes())
  digest.update(np.ascontiguousarray(labels).tobytes())
  digest.update(json.dumps(settings, sort_keys=True).encode())
  return digest.hexdigest()[:16]


def reference_classifier(dataset_name: str, train_images: np.ndarray, train_labels: np.ndarray,
                         test_images: np.ndarray, test_labels: np.ndarray,
                         cache_dir: str | None = None, **overrides: Any) -> ReferenceClassifier:
  """The data set's reference classifier: restored from the cache, else trained and cached.

  Trains ``REFERENCE_ARCHITECTURE`` (an MLP ``Classifier`` 784-512-256-128-K: 98.0% test
  accuracy on MNIST after 5 epochs, ~20 s on two CPU cores; ``overrides`` change its
  entries, e.g. ``epochs``) with softmax cross-entropy on the labelled training images.
  The cache entry ``<cache_dir>/reference_classifier/<dataset>-<fingerprint>/`` is keyed
  by a hash of the training data and the settings, so a different data source or
  architecture trains anew. Labels must be class indices 0..K-1 (no unlabelled data).
  """
  from genjax import checkpoint, models, train  # pylint: disable=import-outside-toplevel
  settings = {**REFERENCE_ARCHITECTURE, **overrides}
  unknown = set(settings) - set(REFERENCE_ARCHITECTURE)
  if unknown:
    raise ValueError(f"reference_classifier: unknown settings {sorted(unknown)}; expected "
                     f"some of {sorted(REFERENCE_ARCHITECTURE)}")
  train_labels = np.asarray(train_labels, np.int32)
  if train_labels.min() < 0:
    raise ValueError(f"reference_classifier: data set {dataset_name!r} has no labels")
  num_classes = int(max(train_labels.max(), np.max(test_labels))) + 1
  settings_key = {**settings, "hidden": list(settings["hidden"]), "num_classes": num_classes}
  fingerprint = _fingerprint(train_images, train_labels, settings_key)
  directory = os.path.join(cache_dir or default_cache_dir(), "reference_classifier",
                           f"{dataset_name}-{fingerprint}")
  model = models.build_classifier(settings["model"], settings["latent_dim"], settings["hidden"],
                                  num_classes)
  init_rng, state_rng, data_rng = jax.random.split(jax.random.PRNGKey(settings["seed"]), 3)
  params = model.init(init_rng, jnp.zeros((1, *train_images.shape[1:]), jnp.float32))["params"]
  optimizer = optax.adam(settings["learning_rate"])
  state = train.create_train_state(params, optimizer, state_rng)
  manager = checkpoint.make_manager(directory, max_to_keep=1)
  state, restored = checkpoint.restore_latest(manager, state)
  if restored is None:
    logging.info("training the reference classifier of %s (cached in %s)", dataset_name,
                 directory)
    step = train.make_train_step(objectives.make_classifier_loss(model), optimizer)
    batch_size = min(settings["batch_size"], len(train_images))
    for state, _ in train.fit(state, step, {"image": train_images, "label": train_labels},
                              batch_size=batch_size, num_epochs=settings["epochs"],
                              data_rng=data_rng):
      pass
    checkpoint.save(manager, state, int(state.step))
  manager.close()
  _, probs = _features_and_probs(model, state.params, np.asarray(test_images, np.float32), 500)
  accuracy = float(np.mean(probs.argmax(-1) == np.asarray(test_labels)))
  return ReferenceClassifier(model, state.params, accuracy, dataset_name, fingerprint)


def sample_quality(reference: ReferenceClassifier, samples: np.ndarray,
                   real_images: np.ndarray, conditioned_on: np.ndarray | None = None,
                   real_baseline: np.ndarray | None = None) -> dict[str, float]:
  """Scores samples [n, H, W, C] in [0, 1] against real (test) images with ``reference``.

  Returns ``sample_fd`` (Frechet distance between the features of the samples and of
  ``real_images``), ``sample_score`` (``classifier_score`` of the samples),
  ``sample_modes`` and ``sample_class_kl`` (``mode_coverage`` of their class histogram),
  ``sample_class_share_k`` for each class k, ``classifier_test_accuracy``; with
  ``conditioned_on`` ([n] class indices) also ``conditional_accuracy``; with
  ``real_baseline`` (real images not in ``real_images``, e.g. as many training images as
  samples) ``data_fd`` and ``data_score``: what real data scores at this sample size,
  the floor for ``sample_fd``. FD depends on n: compare models at the same n.
  """
  real_features, _ = reference.features_and_probs(real_images)
  features, probs = reference.features_and_probs(samples)
  histogram = class_histogram(probs)
  out = {"sample_fd": frechet_distance(real_features, features),
         "sample_score": classifier_score(probs), **mode_coverage(histogram),
         **{f"sample_class_share_{k}": float(h) for k, h in enumerate(histogram)},
         "classifier_test_accuracy": reference.test_accuracy}
  if conditioned_on is not None:
    out["conditional_accuracy"] = conditional_accuracy(probs, conditioned_on)
  if real_baseline is not None:
    base_features, base_probs = reference.features_and_probs(real_baseline)
    out["data_fd"] = frechet_distance(real_features, base_features)
    out["data_score"] = classifier_score(base_probs)
  return out
