"""metrics/sample_quality.py: the Frechet distance against exact identities, the classifier
score, the class histogram and conditional accuracy."""

import numpy as np
import pytest

from genjax.metrics import sample_quality


def test_frechet_distance_against_exact_identities():
  rng = np.random.default_rng(0)
  a = rng.normal(size=(500, 4)) @ rng.normal(size=(4, 4)) + 1.0
  shift = np.array([1.0, -2.0, 0.5, 0.0])
  np.testing.assert_allclose(sample_quality.frechet_distance(a, a), 0.0, atol=1e-6)
  # Same covariance, shifted mean: d^2 = ||shift||^2.
  np.testing.assert_allclose(sample_quality.frechet_distance(a, a + shift), shift @ shift,
                             rtol=1e-6)
  # b = s a: S_b = s^2 S_a, (S_a S_b)^1/2 = s S_a, so d^2 = (1 - s)^2 (||mu_a||^2 + Tr S_a).
  s = 3.0
  expected = (1 - s) ** 2 * (np.sum(a.mean(0) ** 2) + np.trace(np.cov(a, rowvar=False)))
  np.testing.assert_allclose(sample_quality.frechet_distance(a, s * a), expected, rtol=1e-6)
  # One dimension: (m_a - m_b)^2 + (sd_a - sd_b)^2.
  x, y = rng.normal(0, 1, (300, 1)), rng.normal(2, 3, (400, 1))
  np.testing.assert_allclose(sample_quality.frechet_distance(x, y),
                             (x.mean() - y.mean()) ** 2 + (x.std(ddof=1) - y.std(ddof=1)) ** 2,
                             rtol=1e-6)


def test_classifier_score_histogram_and_conditional_accuracy():
  confident = np.eye(5)[np.arange(100) % 5]
  np.testing.assert_allclose(sample_quality.classifier_score(confident), 5.0, rtol=1e-9)
  np.testing.assert_allclose(sample_quality.classifier_score(np.full((7, 5), 0.2)), 1.0)
  probs = np.random.default_rng(1).dirichlet(np.ones(4), 50)
  marginal = probs.mean(0)
  direct = np.exp(np.mean([np.sum(p * np.log(p / marginal)) for p in probs]))
  np.testing.assert_allclose(sample_quality.classifier_score(probs), direct, rtol=1e-9)
  collapsed = np.eye(5)[np.zeros(100, int)]
  np.testing.assert_allclose(sample_quality.class_histogram(collapsed), [1, 0, 0, 0, 0])
  assert sample_quality.mode_coverage(sample_quality.class_histogram(collapsed)) == {
      "sample_modes": 1, "sample_class_kl": pytest.approx(np.log(5))}
  assert sample_quality.mode_coverage(
      sample_quality.class_histogram(confident))["sample_modes"] == 5
  assert sample_quality.conditional_accuracy(confident, np.arange(100) % 5) == 1.0
  assert sample_quality.conditional_accuracy(confident, (np.arange(100) + 1) % 5) == 0.0
