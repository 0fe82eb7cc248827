"""metrics/detection.py: AUROC / AP on cases with known answers, nearest-neighbour distances
against brute force."""

import numpy as np

from genjax.metrics import detection


def test_detection_scores_on_separable_and_identical_cases():
  rng = np.random.default_rng(0)
  normal = rng.random(50)
  separable = detection.detection_scores(normal, normal.max() + 1 + rng.random(20))
  np.testing.assert_allclose([separable["auroc"], separable["ap"]], [1.0, 1.0], rtol=1e-12)
  identical = detection.detection_scores(np.full(50, 3.0), np.full(20, 3.0))
  assert identical["auroc"] == 0.5
  np.testing.assert_allclose(identical["ap"], 20 / 70)   # the share of anomalies
  # Against the pairwise definition: P(score_anomaly > score_normal) + 1/2 P(tie).
  a, b = rng.integers(0, 5, 30).astype(float), rng.integers(1, 6, 40).astype(float)
  pairs = (b[:, None] > a[None]).mean() + 0.5 * (b[:, None] == a[None]).mean()
  np.testing.assert_allclose(detection.detection_scores(a, b)["auroc"], pairs)


def test_nearest_neighbour_distance_against_brute_force():
  rng = np.random.default_rng(1)
  refs, queries = rng.random((50, 3, 3, 1)), rng.random((7, 3, 3, 1))
  brute = ((queries.reshape(7, 1, -1) - refs.reshape(1, 50, -1)) ** 2).sum(-1).min(1)
  np.testing.assert_allclose(detection.nearest_neighbour_distance(queries, refs, chunk=3), brute,
                             rtol=1e-4, atol=1e-5)
  np.testing.assert_allclose(detection.nearest_neighbour_distance(refs[:4], refs), 0, atol=1e-5)
