"""Outlier-detection scores (AUROC, average precision) and distances to the data (is a
decoded point on the manifold?)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from sklearn import metrics as sk_metrics


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
