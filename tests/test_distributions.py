"""genjax.distributions (_functions, _gaussian, _mixture, _kl) against independent references:
scipy.stats and Monte Carlo. The flows and full covariance are in test_models_flows.py, the
hierarchies of stochastic layers in test_models_hierarchical.py."""

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


# --- Distribution objects -------------------------------------------------------------------

def test_diagonal_gaussian_log_probs_match_scipy_and_broadcast_sample_axes():
  mean, log_var = _rand(40, (3, 4)), _rand(41, (3, 4), 0.8)
  q = D.DiagonalGaussian(jnp.asarray(mean), jnp.asarray(log_var))
  z = _rand(42, (5, 3, 4), 2.0)                                       # [K, batch, dim]
  per_dim = stats.norm.logpdf(z, mean, np.exp(0.5 * log_var))
  chex.assert_trees_all_close(q.log_prob_per_dim(z), per_dim, rtol=1e-5, atol=1e-5)
  chex.assert_trees_all_close(q.log_prob(z), per_dim.sum(-1), rtol=1e-5, atol=1e-4)
  p = D.StandardNormal(4)
  chex.assert_trees_all_close(p.log_prob(z), stats.norm.logpdf(z).sum(-1), rtol=1e-5, atol=1e-4)
  chex.assert_trees_all_close(p.log_prob_per_dim(z), stats.norm.logpdf(z), rtol=1e-5, atol=1e-5)


def test_samples_are_the_pure_functions_numbers():
  mean, log_var = jnp.asarray(_rand(43, (3, 4))), jnp.asarray(_rand(44, (3, 4)))
  q = D.DiagonalGaussian(mean, log_var)
  key, keys = jax.random.PRNGKey(5), jax.random.split(jax.random.PRNGKey(6), 3)
  for rng in (key, keys):
    np.testing.assert_array_equal(q.sample(rng), D.reparameterize(rng, mean, log_var))
    np.testing.assert_array_equal(q.sample(rng, 7), D.reparameterize(rng, mean, log_var, 7))
  chex.assert_shape(q.sample(keys, 7), (7, 3, 4))
  np.testing.assert_array_equal(D.StandardNormal(4).sample(key, 9),
                                jax.random.normal(key, (9, 4)))


@pytest.mark.parametrize("p_kind", ["standard_normal", "diagonal_gaussian"])
def test_closed_form_kl_matches_the_monte_carlo_estimate_of_kl_divergence(p_kind):
  """kl_divergence's closed form against its own Monte Carlo branch (the same p as a
  one-component mixture, which has no closed form) with 200k samples: within 5 standard
  errors plus float32 round-off."""
  q = D.DiagonalGaussian(jnp.asarray(_rand(50, (3, 5))), jnp.asarray(_rand(51, (3, 5), 0.7)))
  if p_kind == "standard_normal":
    p, p_mean, p_log_var = D.StandardNormal(5), np.zeros((1, 5)), np.zeros((1, 5))
  else:
    p_mean, p_log_var = _rand(52, (1, 5)), _rand(53, (1, 5), 0.7)
    p = D.DiagonalGaussian(jnp.asarray(p_mean[0]), jnp.asarray(p_log_var[0]))
  as_mixture = D.MixtureOfDiagonalGaussians(jnp.asarray(p_mean, jnp.float32),
                                            jnp.asarray(p_log_var, jnp.float32))
  assert D.has_closed_form_kl(q, p) and not D.has_closed_form_kl(q, as_mixture)
  n = 200_000
  z = q.sample(jax.random.PRNGKey(7), n)
  for per_dim in (False, True):
    exact = np.asarray(D.kl_divergence(q, p, per_dim=per_dim))
    est = np.asarray(D.kl_divergence(q, as_mixture, z, per_dim=per_dim), np.float64)
    assert np.all(np.abs(est.mean(0) - exact) < 5 * est.std(0) / np.sqrt(n)
                  + 1e-4 * (1 + np.abs(exact))), (per_dim, est.mean(0), exact)
  chex.assert_trees_all_close(q.kl(p), np.asarray(q.kl_per_dim(p)).sum(-1), rtol=1e-5)
  chex.assert_trees_all_close(D.kl_divergence(q, p, z), q.kl(p))   # z ignored: closed form


def test_a_pair_without_closed_form_needs_samples():
  q = D.DiagonalGaussian(jnp.zeros((2, 3)), jnp.zeros((2, 3)))
  mixture = D.MixtureOfDiagonalGaussians(jnp.zeros((4, 3)), jnp.zeros((4, 3)))
  with pytest.raises(ValueError, match="no closed form: pass samples z ~ q"):
    D.kl_divergence(q, mixture)
  with pytest.raises(NotImplementedError, match="has no closed form"):
    q.kl(mixture)


@pytest.mark.parametrize("with_logits", [False, True])
def test_mixture_log_prob_is_the_brute_force_sum_of_scipy_densities(with_logits):
  m, d = 4, 3
  means, log_vars = _rand(60, (m, d), 2.0), _rand(61, (m, d), 0.5)
  logits = _rand(62, (m,)) if with_logits else None
  weights = (np.exp(logits) / np.exp(logits).sum() if with_logits else np.full(m, 1 / m))
  mixture = D.MixtureOfDiagonalGaussians(jnp.asarray(means), jnp.asarray(log_vars),
                                         None if logits is None else jnp.asarray(logits))
  z = _rand(63, (2, 5, d), 2.0)                                     # any leading axes
  sd = np.exp(0.5 * log_vars.astype(np.float64))
  densities = np.stack([stats.multivariate_normal(means[k], np.diag(sd[k] ** 2)).pdf(z)
                        for k in range(m)], -1)                     # [2, 5, m]
  chex.assert_trees_all_close(mixture.log_prob(z), np.log(densities @ weights), rtol=1e-5,
                              atol=1e-5)
  marginals = sum(w * stats.norm.pdf(z, mu, s) for w, mu, s in zip(weights, means, sd))
  chex.assert_trees_all_close(mixture.log_prob_per_dim(z), np.log(marginals), rtol=1e-5,
                              atol=1e-5)
  assert not mixture.factorized


def test_mixture_samples_have_the_mixture_moments():
  means = jnp.array([[-3.0, 0.0], [1.0, 2.0], [4.0, -1.0]])
  log_vars = jnp.log(jnp.array([[0.25, 1.0], [1.0, 0.5], [2.0, 0.1]]))
  logits = jnp.log(jnp.array([0.2, 0.5, 0.3]))
  mixture = D.MixtureOfDiagonalGaussians(means, log_vars, logits)
  n = 200_000
  z = np.asarray(mixture.sample(jax.random.PRNGKey(8), n), np.float64)
  chex.assert_shape(z, (n, 2))
  w, mu, var = np.array([0.2, 0.5, 0.3]), np.asarray(means), np.exp(np.asarray(log_vars))
  mean = w @ mu
  second = w @ (var + mu ** 2)
  std = np.sqrt(second - mean ** 2)
  assert np.all(np.abs(z.mean(0) - mean) < 5 * std / np.sqrt(n))
  assert np.all(np.abs(z.var(0) / std ** 2 - 1.0) < 0.02)
  # Component shares: the share of samples near each (well-separated in dim 0) mean.
  nearest = np.argmin(np.abs(z[:, :1] - mu[None, :, 0]), axis=1)
  assert np.all(np.abs(np.bincount(nearest, minlength=3) / n - w) < 0.02)


def test_stop_gradient_stops_every_parameter_of_a_distribution():
  mean, log_var = jnp.array([[0.3, -0.2]]), jnp.array([[0.1, 0.4]])
  z = jnp.array([[0.5, 1.0]])

  def log_prob(m, lv, stop):
    q = D.DiagonalGaussian(m, lv)
    return jnp.sum((jax.lax.stop_gradient(q) if stop else q).log_prob(z))

  live = jax.grad(log_prob, argnums=(0, 1))(mean, log_var, False)
  assert all(np.any(np.asarray(g) != 0) for g in live)
  stopped = jax.grad(log_prob, argnums=(0, 1))(mean, log_var, True)
  assert all(np.all(np.asarray(g) == 0) for g in stopped)
  mixture = D.MixtureOfDiagonalGaussians(mean, log_var, jnp.zeros(1))
  assert len(jax.tree.leaves(mixture)) == 3
  assert jax.tree.leaves(D.StandardNormal(2)) == []      # dim is static
