"""distributions.py against independent references: scipy.stats and Monte Carlo."""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import stats

from genjax import distributions as D



def _rand(seed, shape, scale=1.0):
  return np.random.default_rng(seed).normal(size=shape).astype(np.float32) * scale


def test_gaussian_log_prob_matches_scipy():
  x, mean, log_var = _rand(0, (5, 7)), _rand(1, (5, 7)), _rand(2, (5, 7), 2.0)
  expected = stats.norm.logpdf(x, mean, np.exp(0.5 * log_var)).sum(-1)
  chex.assert_trees_all_close(D.gaussian_log_prob(x, mean, log_var), expected, rtol=1e-5, atol=1e-4)


def test_gaussian_log_prob_event_ndims_sums_trailing_axes():
  x = _rand(3, (2, 4, 4, 3))
  zeros = np.zeros_like(x)
  expected = stats.norm.logpdf(x).reshape(2, -1).sum(-1)
  chex.assert_trees_all_close(D.gaussian_log_prob(x, zeros, zeros, event_ndims=3), expected,
                              rtol=1e-5)
  chex.assert_trees_all_close(D.standard_normal_log_prob(x, event_ndims=3), expected, rtol=1e-5)
  assert D.gaussian_log_prob(x, zeros, zeros, event_ndims=0).shape == x.shape


def test_bernoulli_log_prob_matches_scipy():
  rng = np.random.default_rng(4)
  x = rng.integers(0, 2, size=(6, 10)).astype(np.float32)
  logits = _rand(5, (6, 10), 4.0)
  p = 1.0 / (1.0 + np.exp(-logits.astype(np.float64)))
  expected = stats.bernoulli.logpmf(x, p).sum(-1)
  chex.assert_trees_all_close(D.bernoulli_log_prob(x, logits), expected, rtol=1e-5, atol=1e-5)


def test_bernoulli_log_prob_is_stable_for_extreme_logits():
  x = jnp.array([[1.0, 0.0]])
  logits = jnp.array([[200.0, -200.0]])
  assert abs(float(D.bernoulli_log_prob(x, logits)[0])) < 1e-6
  assert np.isfinite(float(D.bernoulli_log_prob(1.0 - x, logits)[0]))


@pytest.mark.parametrize("shape,mean_scale,log_var_loc", [
    ((3, 4), 1.0, 0.0),        # moderate variances
    ((2, 8), 3.0, 3.0),        # large variances (var ~ e^3)
    ((4, 2), 0.5, -6.0),       # small variances (var ~ e^-6)
    ((1, 16), 2.0, -1.0),
])
def test_closed_form_kl_matches_monte_carlo(shape, mean_scale, log_var_loc):
  mean = _rand(10, shape, mean_scale)
  log_var = log_var_loc + _rand(11, shape, 0.5)
  n = 200_000
  z = D.reparameterize(jax.random.PRNGKey(0), mean, log_var, num_samples=n)
  estimates = np.asarray(D.kl_monte_carlo(z, mean, log_var), np.float64)  # [n, batch]
  mc_mean = estimates.mean(0)
  std_err = estimates.std(0) / np.sqrt(n)
  exact = np.asarray(D.kl_diag_gaussian_standard_normal(mean, log_var))
  # 5 standard errors of the MC estimate, plus float32 round-off of the per-sample terms.
  assert np.all(np.abs(mc_mean - exact) < 5 * std_err + 1e-4 * (1 + np.abs(exact))), (
      mc_mean, exact, std_err)


def test_kl_between_diagonal_gaussians_matches_monte_carlo():
  mq, lq = _rand(20, (3, 5)), _rand(21, (3, 5), 0.7)
  mp, lp = _rand(22, (3, 5)), _rand(23, (3, 5), 0.7)
  n = 200_000
  z = D.reparameterize(jax.random.PRNGKey(1), mq, lq, num_samples=n)
  est = np.asarray(D.gaussian_log_prob(z, mq, lq) - D.gaussian_log_prob(z, mp, lp), np.float64)
  exact = np.asarray(D.kl_diag_gaussians(mq, lq, mp, lp))
  assert np.all(np.abs(est.mean(0) - exact) < 5 * est.std(0) / np.sqrt(n) + 1e-4)


def test_kl_to_standard_normal_is_special_case_and_zero_at_prior():
  mean, log_var = _rand(30, (4, 3)), _rand(31, (4, 3))
  zeros = np.zeros_like(mean)
  chex.assert_trees_all_close(D.kl_diag_gaussian_standard_normal(mean, log_var),
                              D.kl_diag_gaussians(mean, log_var, zeros, zeros), rtol=1e-6)
  chex.assert_trees_all_close(D.kl_diag_gaussian_standard_normal(zeros, zeros), np.zeros(4))
  assert np.all(np.asarray(D.kl_diag_gaussian_standard_normal(mean, log_var)) > 0)


def test_reparameterize_shapes_and_moments():
  mean = jnp.array([[-2.0, 0.5, 3.0]])
  log_var = jnp.log(jnp.array([[0.25, 4.0, 1e-4]]))
  one = D.reparameterize(jax.random.PRNGKey(0), mean, log_var)
  chex.assert_shape(one, (1, 3))
  n = 100_000
  many = np.asarray(D.reparameterize(jax.random.PRNGKey(1), mean, log_var, num_samples=n))
  chex.assert_shape(many, (n, 1, 3))
  sd = np.exp(0.5 * np.asarray(log_var))
  assert np.all(np.abs(many.mean(0) - mean) < 5 * sd / np.sqrt(n))
  assert np.all(np.abs(many.std(0) / sd - 1.0) < 0.02)


def test_reparameterized_gradients_match_analytic():
  """E[z^2] = mu^2 + sigma^2, so d/dmu = 2 mu and d/dlog_var = sigma^2 = exp(log_var)."""
  mean = jnp.array([0.7, -1.3, 2.0])
  log_var = jnp.array([0.2, -1.0, 0.5])
  n = 200_000

  def objective(m, lv):
    z = D.reparameterize(jax.random.PRNGKey(3), m, lv, num_samples=n)
    return jnp.sum(jnp.mean(z ** 2, axis=0))

  g_mean, g_log_var = jax.grad(objective, argnums=(0, 1))(mean, log_var)
  # Per-sample gradients: 2z and z*eps*sigma; their standard deviations bound the error.
  sigma = np.exp(0.5 * np.asarray(log_var))
  se_mean = 2 * np.sqrt(sigma ** 2) / np.sqrt(n)
  se_lv = np.sqrt(np.asarray(mean) ** 2 * sigma ** 2 + 2 * sigma ** 4) / np.sqrt(n)
  assert np.all(np.abs(np.asarray(g_mean) - 2 * np.asarray(mean)) < 5 * se_mean)
  assert np.all(np.abs(np.asarray(g_log_var) - sigma ** 2) < 5 * se_lv)
