"""Sample quality on one scale for every model: the Frechet distance and score of samples
in the feature space of the reference classifier (``metrics.reference_classifier``), their
class histogram and mode coverage, and conditional accuracy.

Inception weights cannot be downloaded here, so samples are scored in the feature space
of a small classifier trained (once, then cached) on the data set's own labelled images:
the Frechet distance of Heusel et al. 2017 and the score of Salimans et al. 2016, computed
with this classifier in place of Inception. Numbers are comparable between models scored
by the same classifier with the same number of samples, not with published FID/IS.
"""

from __future__ import annotations

import numpy as np
import scipy.linalg
import scipy.special

from genjax.metrics.reference_classifier import ReferenceClassifier


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
