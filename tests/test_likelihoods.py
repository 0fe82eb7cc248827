"""likelihoods.py: each likelihood's log-density against scipy."""

import chex
import numpy as np
from scipy import stats

from genjax import likelihoods


def test_gaussian_learned_likelihood_matches_scipy():
  rng = np.random.default_rng(6)
  x = rng.random((2, 3, 3, 1)).astype(np.float32)
  out = rng.normal(size=(2, 3, 3, 2)).astype(np.float32)
  lik = likelihoods.make_likelihood("gaussian_learned")
  assert lik.params_per_channel == 2
  expected = stats.norm.logpdf(x[..., 0], out[..., 0], np.exp(0.5 * out[..., 1])).reshape(2, -1)
  chex.assert_trees_all_close(lik.log_prob(x, out), expected.sum(1), rtol=1e-5)
  chex.assert_trees_all_close(lik.mean(out), out[..., :1])


def test_gaussian_fixed_likelihood_matches_scipy():
  rng = np.random.default_rng(7)
  x, out = rng.random((2, 4, 4, 1)), rng.random((2, 4, 4, 1))
  lik = likelihoods.make_likelihood("gaussian_fixed", gaussian_std=0.3)
  expected = stats.norm.logpdf(x, out, 0.3).reshape(2, -1).sum(1)
  chex.assert_trees_all_close(lik.log_prob(x.astype(np.float32), out.astype(np.float32)),
                              expected, rtol=1e-5)
