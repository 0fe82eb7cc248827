"""metrics/factors.py: mutual information against a hand-computed table and against
entropies of a joint histogram (scipy), MIG at its two ends, and the border checks."""

import numpy as np
import pytest
from scipy import stats

from genjax.metrics import factors as F


def _mi_by_entropies(codes, labels):
  """I(A; C) = H(A) + H(C) - H(A, C), each from scipy.stats.entropy of counts."""
  joint = np.histogram2d(codes, labels, bins=[np.arange(codes.max() + 2),
                                              np.arange(labels.max() + 2)])[0]
  return (stats.entropy(joint.sum(1)) + stats.entropy(joint.sum(0))
          - stats.entropy(joint.ravel()))


def test_mutual_information_of_a_hand_computed_table():
  # Joint counts [[3, 1], [1, 3]] / 8: I = 3/4 log(3/2) + 1/4 log(1/2).
  factors = np.array([[0], [0], [0], [0], [1], [1], [1], [1]])
  latents = np.array([[0.0, 5.0], [0, 5], [0, 7], [1, 7], [1, 5], [1, 5], [1, 7], [0, 7]])
  mi = F.mutual_information_matrix(latents, factors, bins=2)
  assert mi.shape == (2, 1)
  np.testing.assert_allclose(mi[0, 0], 0.75 * np.log(1.5) + 0.25 * np.log(0.5), rtol=1e-12)
  np.testing.assert_allclose(mi[1, 0], 0.0, atol=1e-12)   # [[2, 2], [2, 2]]: independent


def test_mutual_information_against_joint_histogram_entropies():
  rng = np.random.default_rng(0)
  factors = rng.integers(0, [3, 5], size=(400, 2))
  latents = np.stack([factors[:, 0] + rng.normal(0, 0.7, 400), rng.normal(size=400),
                      np.exp(factors[:, 1] * 0.3) + rng.normal(0, 0.2, 400)], 1)
  mi = F.mutual_information_matrix(latents, factors, bins=7)
  codes = F.discretize(latents, bins=7)
  expected = [[_mi_by_entropies(codes[:, j], factors[:, k]) for k in range(2)]
              for j in range(3)]
  np.testing.assert_allclose(mi, expected, rtol=1e-10, atol=1e-12)
  assert mi[0, 0] > 0.3 and mi[2, 1] > 0.5 and mi[1].max() < 0.1   # the ones that track


def test_discretize_uses_equal_width_bins_per_column():
  latents = np.array([[0.0, -1.0], [0.24, 3.0], [0.26, 3.0], [0.74, 3.0], [1.0, 3.0]])
  codes = F.discretize(latents, bins=4)
  np.testing.assert_array_equal(codes[:, 0], [0, 0, 1, 2, 3])   # edges 0, .25, .5, .75, 1
  np.testing.assert_array_equal(codes[:, 1], [0, 3, 3, 3, 3])
  np.testing.assert_array_equal(F.discretize(np.full((4, 1), 2.0), 5)[:, 0], [2] * 4)


def test_factor_entropies():
  factors = np.array([[0, 7, 1], [1, 7, 1], [2, 7, 1], [3, 7, 2]])
  np.testing.assert_allclose(F.factor_entropies(factors),
                             [np.log(4), 0.0, -(0.75 * np.log(0.75) + 0.25 * np.log(0.25))])


def _factors(rng, n=4000):
  return rng.integers(0, [3, 6, 10], size=(n, 3))


def test_mig_is_near_one_for_one_copy_per_factor_and_noise():
  rng = np.random.default_rng(1)
  factors = _factors(rng)
  noise = rng.normal(size=(len(factors), 2))
  # Copies under monotone maps, out of order, with independent noise dimensions between.
  latents = np.stack([noise[:, 0], 2.0 * factors[:, 2] - 3, noise[:, 1],
                      np.tanh(factors[:, 0] - 1.0), 0.1 * factors[:, 1]], 1)
  result = F.mutual_information_gap(latents, factors)
  np.testing.assert_array_equal(result["best_latent"], [3, 4, 1])
  # I(copy; v) = H(v) exactly; noise keeps only the histogram estimator's positive bias,
  # ~ (bins - 1)(|v| - 1) / (2N) nats.
  np.testing.assert_allclose(result["normalized_mi"][[3, 4, 1], [0, 1, 2]], 1.0, rtol=1e-12)
  assert 0.97 < result["mig"] < 1.0
  assert np.all(result["gaps"] > 0.95)
  np.testing.assert_allclose(result["mig"], np.mean(result["gaps"]))
  np.testing.assert_allclose(result["normalized_mi"],
                             result["mutual_information"] / result["entropies"])


def test_mig_is_near_zero_when_two_latents_copy_the_same_factor():
  rng = np.random.default_rng(2)
  factors = _factors(rng)
  copies = np.concatenate([factors, 0.5 * factors + 1.0], 1).astype(float)   # each twice
  latents = np.concatenate([copies, rng.normal(size=(len(factors), 1))], 1)
  assert F.mutual_information_gap(latents, factors)["mig"] < 1e-9
  # One factor shared by two latents, the others held by one each: gaps ~[1, 0, 1] (the
  # copies of independent factors share only the sample's chance dependence).
  shared = np.stack([factors[:, 0], factors[:, 1], -factors[:, 1], factors[:, 2]], 1)
  gaps = F.mutual_information_gap(shared.astype(float), factors)["gaps"]
  np.testing.assert_allclose(gaps, [1, 0, 1], atol=0.01)
  assert gaps[1] < 1e-9


def test_border_checks_name_the_argument():
  latents, factors = np.zeros((10, 3)), np.zeros((10, 2), int)
  factors[::2] = 1
  with pytest.raises(ValueError, match="latents must be \\[num_examples, num_latents\\]"):
    F.mutual_information_gap(latents[:, 0], factors)
  with pytest.raises(ValueError, match="factors must be \\[num_examples, num_factors\\]"):
    F.mutual_information_matrix(latents, factors[:, 0])
  with pytest.raises(ValueError, match="latents has 9 rows, factors 10"):
    F.mutual_information_gap(latents[:9], factors)
  with pytest.raises(ValueError, match="latents must have >= 2 dimensions"):
    F.mutual_information_gap(latents[:, :1], factors)
  with pytest.raises(ValueError, match="factors must be integer"):
    F.mutual_information_gap(latents, factors.astype(float))
  with pytest.raises(ValueError, match="columns \\[1\\] are constant"):
    F.mutual_information_gap(latents, np.stack([factors[:, 0], np.zeros(10, int)], 1))
  with pytest.raises(ValueError, match="bins must be"):
    F.mutual_information_matrix(latents, factors, bins=1)
  with pytest.raises(ValueError, match="finite"):
    F.mutual_information_matrix(np.full((10, 3), np.nan), factors)
