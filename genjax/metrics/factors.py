"""How strongly each latent dimension tracks each ground-truth factor of variation, and the
mutual information gap (MIG) that sums it up as one disentanglement score.

Latents are continuous codes ``[N, D]`` (e.g. posterior means); factors are integer
indices ``[N, K]`` (e.g. ``genjax.data.dsprites``). Each latent dimension is discretised
into ``bins`` equal-width bins over its own [min, max] and mutual information is the
plug-in estimate of the discrete joint histogram, in nats: the estimator of Locatello et
al. 2019 ("Challenging Common Assumptions in the Unsupervised Learning of Disentangled
Representations", disentanglement_lib, 20 bins).
"""

from __future__ import annotations

import numpy as np
from scipy import stats
from sklearn import metrics as sk_metrics


def mutual_information_matrix(latents: np.ndarray, factors: np.ndarray,
                              bins: int = 20) -> np.ndarray:
  """I(z_j; v_k) in nats, [D, K], for ``latents: [N, D]`` float and ``factors: [N, K]`` int.

  With z_j discretised into ``bins`` equal-width bins b(z_j) over [min z_j, max z_j] and
  p the empirical joint distribution of (b(z_j), v_k) over the N examples:
    I(z_j; v_k) = sum_{a, c} p(a, c) log(p(a, c) / (p(a) p(c)))
  (``sklearn.metrics.mutual_info_score``). A constant latent has I = 0 with every factor.
  """
  latents, factors = _check(latents, factors, bins)
  codes = discretize(latents, bins)
  return np.array([[sk_metrics.mutual_info_score(factors[:, k], codes[:, j])
                    for k in range(factors.shape[1])] for j in range(codes.shape[1])])


def discretize(latents: np.ndarray, bins: int = 20) -> np.ndarray:
  """Bin index in [0, bins) of each entry of ``latents: [N, D]``: ``bins`` equal-width bins
  per column over its [min, max] (the maximum falls in the last bin), int [N, D]."""
  latents = np.asarray(latents, np.float64)
  codes = np.empty(latents.shape, np.int64)
  for j, column in enumerate(latents.T):
    inner_edges = np.histogram_bin_edges(column, bins)[1:-1]
    codes[:, j] = np.digitize(column, inner_edges)
  return codes


def factor_entropies(factors: np.ndarray) -> np.ndarray:
  """H(v_k) = -sum_c p(c) log p(c) in nats of each column's empirical distribution,
  ``factors: [N, K]`` int -> [K]."""
  factors = np.asarray(factors)
  if factors.ndim != 2 or len(factors) == 0:
    raise ValueError(f"factors must be [num_examples, num_factors], got shape {factors.shape}")
  return np.array([stats.entropy(np.unique(column, return_counts=True)[1])
                   for column in factors.T])


def mutual_information_gap(latents: np.ndarray, factors: np.ndarray,
                           bins: int = 20) -> dict[str, np.ndarray | float]:
  """MIG (Chen, Li, Grosse, Duvenaud 2018, "Isolating Sources of Disentanglement in
  Variational Autoencoders", Sec. 4.1), with the histogram estimate of I:
    MIG = 1/K sum_k (I(z_{j_k}; v_k) - max_{j != j_k} I(z_j; v_k)) / H(v_k),
    j_k = argmax_j I(z_j; v_k).
  Each term lies in [0, 1]: 1 when one latent holds all of factor k and no other latent
  holds any of it, 0 when two latents hold it equally.

  ``latents: [N, D]`` float with D >= 2, ``factors: [N, K]`` int, no factor constant.
  Returns ``mig`` (float), ``gaps`` [K] (the per-factor terms), ``normalized_mi`` [D, K]
  (I(z_j; v_k) / H(v_k)), ``mutual_information`` [D, K] (nats), ``entropies`` [K] (nats)
  and ``best_latent`` [K] int (j_k, the latent that tracks factor k best).
  """
  latents, factors = _check(latents, factors, bins)
  if latents.shape[1] < 2:
    raise ValueError(f"latents must have >= 2 dimensions for a gap between the two most "
                     f"informative ones, got shape {latents.shape}")
  entropies = factor_entropies(factors)
  if np.any(entropies == 0):
    raise ValueError(f"factors columns {np.flatnonzero(entropies == 0).tolist()} are constant "
                     f"(entropy 0), so MIG would divide by zero; drop them")
  mi = mutual_information_matrix(latents, factors, bins)
  normalized = mi / entropies[None]
  top_two = -np.sort(-normalized, axis=0)[:2]                    # [2, K], largest first
  gaps = top_two[0] - top_two[1]
  return {"mig": float(np.mean(gaps)), "gaps": gaps, "normalized_mi": normalized,
          "mutual_information": mi, "entropies": entropies,
          "best_latent": np.argmax(mi, axis=0)}


def _check(latents, factors, bins) -> tuple[np.ndarray, np.ndarray]:
  """The arguments as arrays, after the shape, dtype and value checks shared above."""
  latents, factors = np.asarray(latents), np.asarray(factors)
  if latents.ndim != 2:
    raise ValueError(f"latents must be [num_examples, num_latents], got shape {latents.shape}")
  if factors.ndim != 2:
    raise ValueError(f"factors must be [num_examples, num_factors], got shape {factors.shape}")
  if len(latents) != len(factors):
    raise ValueError(f"latents and factors must have one row per example: latents has "
                     f"{len(latents)} rows, factors {len(factors)}")
  if len(latents) < 2 or latents.shape[1] < 1 or factors.shape[1] < 1:
    raise ValueError(f"need >= 2 examples, >= 1 latent and >= 1 factor, got latents "
                     f"{latents.shape}, factors {factors.shape}")
  if not np.issubdtype(factors.dtype, np.integer):
    raise ValueError(f"factors must be integer indices, got dtype {factors.dtype}")
  if not np.all(np.isfinite(latents)):
    raise ValueError("latents must be finite (found NaN or inf)")
  if int(bins) != bins or bins < 2:
    raise ValueError(f"bins must be an integer >= 2, got {bins}")
  return latents.astype(np.float64), factors
