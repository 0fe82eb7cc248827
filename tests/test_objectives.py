"""objectives.py: the ELBO against a linear-Gaussian model whose log p(x) is exact."""

import chex
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import stats

from genjax import distributions as D
from genjax import objectives

DIM_X, DIM_Z, NOISE_STD = 6, 3, 0.5


class LinearGaussian(nn.Module):
  """p(z) = N(0, I), p(x|z) = N(W z + b, s^2 I); q(z|x) = N(A x + c, diag(exp(v)))."""

  def setup(self):
    self.enc_w = self.param("enc_w", nn.initializers.zeros, (DIM_X, DIM_Z))
    self.enc_b = self.param("enc_b", nn.initializers.zeros, (DIM_Z,))
    self.enc_log_var = self.param("enc_log_var", nn.initializers.zeros, (DIM_Z,))
    self.dec_w = self.param("dec_w", nn.initializers.zeros, (DIM_Z, DIM_X))
    self.dec_b = self.param("dec_b", nn.initializers.zeros, (DIM_X,))

  def encode(self, x):
    mean = x.reshape(x.shape[0], -1) @ self.enc_w + self.enc_b
    return mean, jnp.broadcast_to(self.enc_log_var, mean.shape)

  def decode(self, z):
    return (z @ self.dec_w + self.dec_b).reshape(z.shape[0], 1, 1, DIM_X)

  def __call__(self, x):
    return self.decode(self.encode(x)[0])


@pytest.fixture(scope="module")
def linear_gaussian():
  """The model, the exact posterior's encoder params, and data with exact log p(x)."""
  rng = np.random.default_rng(0)
  q, _ = np.linalg.qr(rng.normal(size=(DIM_X, DIM_Z)))
  w = q * np.array([2.0, 1.0, 0.5])          # orthogonal columns: a diagonal posterior
  b = rng.normal(size=DIM_X)
  post_var = 1.0 / (1.0 + np.sum(w ** 2, 0) / NOISE_STD ** 2)     # [DIM_Z]
  enc_w = w * post_var / NOISE_STD ** 2                            # mean = (x - b) @ enc_w
  params = {"enc_w": enc_w, "enc_b": -b @ enc_w, "enc_log_var": np.log(post_var),
            "dec_w": w.T, "dec_b": b}
  params = jax.tree.map(lambda a: jnp.asarray(a, jnp.float32), params)
  x = rng.normal(size=(4, DIM_X)) @ np.diag([1, 2, 1, 1, 1, 1.]) + b
  log_px = stats.multivariate_normal(b, w @ w.T + NOISE_STD ** 2 * np.eye(DIM_X)).logpdf(x)
  batch = {"image": jnp.asarray(x.reshape(4, 1, 1, DIM_X), jnp.float32)}
  return LinearGaussian(), params, batch, log_px


def _likelihood():
  return objectives.make_likelihood("gaussian_fixed", gaussian_std=NOISE_STD)


def _repeat(batch, n):
  return {"image": jnp.repeat(batch["image"], n, axis=0)}


def test_elbo_with_exact_posterior_equals_log_px_for_every_sample(linear_gaussian):
  """With q = p(z|x), log p(x,z) - log q(z|x) = log p(x) for every z (MC KL)."""
  model, params, batch, log_px = linear_gaussian
  terms = objectives.make_elbo_terms(model, _likelihood(), kl="mc")(
      params, _repeat(batch, 50), jax.random.PRNGKey(0))
  elbo = np.asarray(objectives.elbo_metrics(terms)["elbo"]).reshape(4, 50)
  np.testing.assert_allclose(elbo, np.repeat(log_px[:, None], 50, 1), atol=2e-3)


def test_analytic_kl_elbo_expectation_equals_log_px_at_exact_posterior(linear_gaussian):
  model, params, batch, log_px = linear_gaussian
  n = 40_000
  terms = objectives.make_elbo_terms(model, _likelihood(), kl="analytic")(
      params, _repeat(batch, n), jax.random.PRNGKey(1))
  elbo = np.asarray(objectives.elbo_metrics(terms)["elbo"], np.float64).reshape(4, n)
  se = elbo.std(1) / np.sqrt(n)
  assert np.all(np.abs(elbo.mean(1) - log_px) < 5 * se + 1e-3), (elbo.mean(1), log_px, se)


def test_elbo_gap_is_kl_to_true_posterior_and_elbo_below_log_px(linear_gaussian):
  """ELBO = log p(x) - KL(q(z|x) || p(z|x)); checked for both KL estimators."""
  model, exact, batch, log_px = linear_gaussian
  params = {**exact, "enc_b": exact["enc_b"] + 0.4, "enc_log_var": exact["enc_log_var"] + 0.7}
  q_mean, q_lv = model.apply({"params": params}, batch["image"], method=model.encode)
  p_mean, p_lv = model.apply({"params": exact}, batch["image"], method=model.encode)
  gap = np.asarray(D.kl_diag_gaussians(q_mean, q_lv, p_mean, p_lv))
  assert np.all(gap > 0.1)
  n = 40_000
  for kl in objectives.KL_ESTIMATORS:
    terms = objectives.make_elbo_terms(model, _likelihood(), kl=kl)(
        params, _repeat(batch, n), jax.random.PRNGKey(2))
    elbo = np.asarray(objectives.elbo_metrics(terms)["elbo"], np.float64).reshape(4, n)
    se = elbo.std(1) / np.sqrt(n)
    assert np.all(elbo.mean(1) < log_px)
    assert np.all(np.abs(elbo.mean(1) - (log_px - gap)) < 5 * se + 1e-3), kl


def test_loss_weights_kl_by_beta_and_reports_unweighted_elbo(linear_gaussian):
  model, params, batch, _ = linear_gaussian
  rng = jax.random.PRNGKey(3)
  terms = objectives.make_elbo_terms(model, _likelihood())(params, batch, rng)
  recon, kl = -np.asarray(terms["log_px"]), np.asarray(terms["kl"])
  for beta in (0.0, 0.5, 4.0):
    loss, metrics = objectives.make_elbo_loss(model, _likelihood(), beta=beta)(params, batch, rng)
    np.testing.assert_allclose(loss, np.mean(recon + beta * kl), rtol=1e-5)
    np.testing.assert_allclose(metrics["elbo"], -np.mean(recon + kl), rtol=1e-5)
    np.testing.assert_allclose(metrics["recon"], recon.mean(), rtol=1e-5)
    np.testing.assert_allclose(metrics["kl"], kl.mean(), rtol=1e-5)


def test_bernoulli_recon_sums_over_pixels_and_means_over_batch(linear_gaussian):
  model, params, _, _ = linear_gaussian
  x = (np.random.default_rng(5).random((3, 1, 1, DIM_X)) > 0.5).astype(np.float32)
  batch, rng = {"image": jnp.asarray(x)}, jax.random.PRNGKey(4)
  likelihood = objectives.make_likelihood("bernoulli")
  _, metrics = objectives.make_elbo_loss(model, likelihood)(params, batch, rng)
  mean, log_var = model.apply({"params": params}, batch["image"], method=model.encode)
  logits = np.asarray(model.apply({"params": params}, D.reparameterize(rng, mean, log_var),
                                  method=model.decode), np.float64)
  per_example = -stats.bernoulli.logpmf(x, 1 / (1 + np.exp(-logits))).reshape(3, -1).sum(1)
  np.testing.assert_allclose(metrics["recon"], per_example.mean(), rtol=1e-5)


def test_gaussian_learned_likelihood_matches_scipy():
  rng = np.random.default_rng(6)
  x = rng.random((2, 3, 3, 1)).astype(np.float32)
  out = rng.normal(size=(2, 3, 3, 2)).astype(np.float32)
  lik = objectives.make_likelihood("gaussian_learned")
  assert lik.params_per_channel == 2
  expected = stats.norm.logpdf(x[..., 0], out[..., 0], np.exp(0.5 * out[..., 1])).reshape(2, -1)
  chex.assert_trees_all_close(lik.log_prob(x, out), expected.sum(1), rtol=1e-5)
  chex.assert_trees_all_close(lik.mean(out), out[..., :1])


def test_gaussian_fixed_likelihood_matches_scipy():
  rng = np.random.default_rng(7)
  x, out = rng.random((2, 4, 4, 1)), rng.random((2, 4, 4, 1))
  lik = objectives.make_likelihood("gaussian_fixed", gaussian_std=0.3)
  expected = stats.norm.logpdf(x, out, 0.3).reshape(2, -1).sum(1)
  chex.assert_trees_all_close(lik.log_prob(x.astype(np.float32), out.astype(np.float32)),
                              expected, rtol=1e-5)


def test_bad_names_list_the_allowed_values(linear_gaussian):
  model = linear_gaussian[0]
  with pytest.raises(ValueError, match="likelihood='poisson'.*bernoulli, gaussian_fixed"):
    objectives.make_likelihood("poisson")
  with pytest.raises(ValueError, match="kl='exact'.*analytic, mc"):
    objectives.make_elbo_terms(model, _likelihood(), kl="exact")
