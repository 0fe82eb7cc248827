"""Balanced labelled subsets of a data set, and rows repeated cyclically to a length."""

from __future__ import annotations

import numpy as np


def labelled_subset(labels: np.ndarray, per_class: int, seed: int) -> np.ndarray:
  """Indices of ``per_class`` examples of every class, drawn without replacement.

  labels: [N] int. Returns sorted indices [num_classes * per_class]; a different
  ``seed`` draws a different subset.
  """
  labels = np.asarray(labels)
  if np.any(labels < 0):
    raise ValueError("this data set has no labels: use a data set with class labels")
  rng = np.random.default_rng(seed)
  chosen = []
  for c in np.unique(labels):
    members = np.flatnonzero(labels == c)
    if len(members) < per_class:
      raise ValueError(f"labels_per_class={per_class}: class {c} has only {len(members)} "
                       "training examples")
    chosen.append(rng.choice(members, per_class, replace=False))
  return np.sort(np.concatenate(chosen))


def repeat_to(arrays: dict[str, np.ndarray], n: int) -> dict[str, np.ndarray]:
  """Each array's rows repeated cyclically to exactly ``n`` rows (row i is row i mod len).

  Lets a small labelled set ride along with a large unlabelled one (one labelled example
  per image, reshuffled every epoch by the fit loop), or fill an epoch of many steps.
  """
  return {k: np.asarray(v)[np.arange(n) % len(v)] for k, v in arrays.items()}
