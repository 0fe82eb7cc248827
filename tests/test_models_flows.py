"""Richer posteriors (models/flows.py, distributions.py): the full-covariance Gaussian,
planar flows and IAF, through the protocol, the ELBO family, the configs and train_vae."""

import json

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import stats

from experiments import train_vae
from experiments.framework import configuration
from genjax import distributions as D
from genjax import likelihoods, models
from genjax.losses import elbo
from genjax.models import protocol
from tests import linear_gaussian as lg
from tests.experiment_helpers import run_experiment, write_synthetic_mnist

SHAPE = (4, 4, 1)


def _random_planar(rng, batch, steps, dim, scale=1.0, opposed=True):
  """A PlanarFlow with random base, u, w, b; ``opposed``: w^T u << -1, so that u^ matters
  (and each step nearly folds: 1 + u^T psi is close to 0 where tanh' = 1)."""
  k = jax.random.split(rng, 5)
  base = D.DiagonalGaussian(jax.random.normal(k[0], (batch, dim)) * 0.3,
                            jax.random.normal(k[1], (batch, dim)) * 0.3)
  w = jax.random.normal(k[2], (batch, steps, dim)) * scale
  u = jax.random.normal(k[3], (batch, steps, dim)) * (0.3 if opposed else 1.0)
  u = u - 2.0 * w if opposed else u
  return D.PlanarFlow(base, u, w, jax.random.normal(k[4], (batch, steps)))


def _random_iaf(rng, batch, steps, dim, hidden=8, context_dim=4):
  keys = iter(jax.random.split(rng, 3 + 9 * steps))
  base = D.DiagonalGaussian(jax.random.normal(next(keys), (batch, dim)) * 0.3,
                            jax.random.normal(next(keys), (batch, dim)) * 0.3)
  context = jax.random.normal(next(keys), (batch, context_dim))
  shapes = {"w_in": (dim, hidden), "c_in": (context_dim, hidden), "b_in": (hidden,),
            "w_m": (hidden, dim), "c_m": (context_dim, dim), "b_m": (dim,),
            "w_s": (hidden, dim), "c_s": (context_dim, dim), "b_s": (dim,)}
  weights = tuple({n: jax.random.normal(next(keys), s) * 0.7 for n, s in shapes.items()}
                  for _ in range(steps))
  return D.InverseAutoregressiveFlow(base, context, weights)


FLOWS = {"planar": _random_planar, "iaf": _random_iaf}


# --- The full-covariance Gaussian ---------------------------------------------------------


def _full_covariance(rng, batch=3, dim=3):
  k1, k2 = jax.random.split(rng)
  mean = jax.random.normal(k1, (batch, dim))
  raw = jax.random.normal(k2, (batch, dim, dim)) * 0.6
  tril = jnp.tril(raw, -1) + jnp.eye(dim) * jnp.exp(0.4 * jnp.diagonal(raw, 0, 1, 2))[..., None]
  return D.FullCovarianceGaussian(mean, tril)


def test_full_covariance_log_prob_and_samples_match_scipy():
  q = _full_covariance(jax.random.PRNGKey(0))
  mean, tril = np.asarray(q.mean, np.float64), np.asarray(q.scale_tril, np.float64)
  cov = tril @ np.swapaxes(tril, -1, -2)
  z = np.random.default_rng(0).normal(size=(5, 3, 3)).astype(np.float32)
  brute = np.stack([[stats.multivariate_normal(mean[b], cov[b]).logpdf(z[n, b])
                     for b in range(3)] for n in range(5)])
  np.testing.assert_allclose(q.log_prob(z), brute, rtol=1e-5, atol=1e-5)
  marginals = stats.norm(mean, np.sqrt(np.diagonal(cov, 0, 1, 2))).logpdf(z)
  np.testing.assert_allclose(q.log_prob_per_dim(z), marginals, rtol=1e-5, atol=1e-5)
  samples = np.asarray(q.sample(jax.random.PRNGKey(1), 100_000), np.float64)   # [n, 3, 3]
  np.testing.assert_allclose(samples.mean(0), mean, atol=0.03)
  centred = samples - samples.mean(0)
  np.testing.assert_allclose(np.einsum("nbi,nbj->bij", centred, centred) / len(samples), cov,
                             atol=0.05 * np.abs(cov).max())
  z1, lq = q.sample_and_log_prob(jax.random.PRNGKey(2), 4)
  np.testing.assert_array_equal(z1, q.sample(jax.random.PRNGKey(2), 4))
  np.testing.assert_array_equal(lq, q.log_prob(z1))


def test_full_covariance_kl_matches_numpy_and_monte_carlo():
  """KL = 1/2 (tr Sigma + mu^T mu - d - log det Sigma), against numpy's slogdet and trace,
  and against the mean of log q(z) - log p(z) over 200,000 samples (within 5 s.e.)."""
  q, p = _full_covariance(jax.random.PRNGKey(3)), D.StandardNormal(3)
  mean, tril = np.asarray(q.mean, np.float64), np.asarray(q.scale_tril, np.float64)
  cov = tril @ np.swapaxes(tril, -1, -2)
  numpy_kl = 0.5 * (np.trace(cov, axis1=1, axis2=2) + np.sum(mean ** 2, -1) - 3
                    - np.linalg.slogdet(cov)[1])
  assert D.has_closed_form_kl(q, p)
  np.testing.assert_allclose(D.kl_divergence(q, p), numpy_kl, rtol=1e-5)
  np.testing.assert_allclose(q.kl(p), numpy_kl, rtol=1e-5)
  z = q.sample(jax.random.PRNGKey(4), 200_000)
  draws = np.asarray(q.log_prob(z) - p.log_prob(z), np.float64)
  se = draws.std(0) / np.sqrt(len(draws))
  assert np.all(np.abs(draws.mean(0) - numpy_kl) < 5 * se), (draws.mean(0), numpy_kl, se)
  per_dim = 0.5 * (np.diagonal(cov, 0, 1, 2) + mean ** 2 - 1 - np.log(np.diagonal(cov, 0, 1, 2)))
  np.testing.assert_allclose(D.kl_divergence(q, p, per_dim=True), per_dim, rtol=1e-5)


def test_diagonal_sample_and_log_prob_is_sample_then_log_prob_bit_for_bit():
  q = D.DiagonalGaussian(jnp.arange(6.0).reshape(2, 3) / 5, -jnp.arange(6.0).reshape(2, 3) / 7)
  for n in (None, 3):
    z, lq = q.sample_and_log_prob(jax.random.PRNGKey(5), n)
    np.testing.assert_array_equal(z, q.sample(jax.random.PRNGKey(5), n))
    np.testing.assert_array_equal(lq, q.log_prob(z))


# --- Flows: log-determinants, densities ---------------------------------------------------


@pytest.mark.parametrize("name", sorted(FLOWS))
def test_flow_log_det_is_slogdet_of_the_autodiff_jacobian(name):
  flow = FLOWS[name](jax.random.PRNGKey(6), batch=1, steps=3, dim=4)
  for i, z in enumerate(jax.random.normal(jax.random.PRNGKey(7), (5, 4)) * 1.5):
    jac = jax.jacfwd(lambda v: flow.forward(v[None])[0][0])(z)
    sign, log_abs_det = jnp.linalg.slogdet(jac)
    assert sign != 0, i
    np.testing.assert_allclose(flow.forward(z[None])[1][0], log_abs_det, rtol=1e-4, atol=1e-4)


def test_planar_u_hat_keeps_each_flow_invertible():
  flow = _random_planar(jax.random.PRNGKey(8), 2, 3, 3)
  assert np.any(np.sum(flow.w * flow.u, -1) < -1)                 # raw u would not be
  assert np.all(np.sum(flow.w * D.planar_u_hat(flow.u, flow.w), -1) >= -1 - 1e-6)
  one_d = _random_planar(jax.random.PRNGKey(9), 1, 3, 1, scale=3.0)
  z0 = jnp.linspace(-6, 6, 2001)[:, None, None]                     # [n, batch=1, dim=1]
  assert np.all(np.diff(np.asarray(one_d.forward(z0)[0]).ravel()) > 0)   # monotone in 1-D


@pytest.mark.parametrize("reverse", [False, True])
def test_an_iaf_step_is_autoregressive(reverse):
  """dz'_i/dz_j = 0 for j after i in the step's order: a triangular Jacobian whose log-det is
  sum log sigma (lower-triangular in order 1..d, upper when the order is reversed)."""
  flow = _random_iaf(jax.random.PRNGKey(10), 1, 1, 4)
  z = jax.random.normal(jax.random.PRNGKey(11), (4,))
  jac = np.asarray(jax.jacfwd(lambda v: D.iaf_step(v[None], flow.context, flow.steps[0],
                                                   reverse)[0][0])(z))
  outside = np.triu(jac, 1) if not reverse else np.tril(jac, -1)
  np.testing.assert_array_equal(outside, 0.0)
  log_det = D.iaf_step(z[None], flow.context, flow.steps[0], reverse)[1][0]
  np.testing.assert_allclose(log_det, np.sum(np.log(np.abs(np.diag(jac)))), rtol=1e-5)


@pytest.mark.parametrize("name", sorted(FLOWS))
def test_flow_sample_and_log_prob_is_the_change_of_variables(name):
  """log q(z_K) = log q_0(z_0) - sum_k log|det dz_k/dz_{k-1}| at z_K = f(z_0), z_0 ~ q_0."""
  flow = FLOWS[name](jax.random.PRNGKey(12), batch=3, steps=2, dim=2)
  z, log_q = flow.sample_and_log_prob(jax.random.PRNGKey(13), 5)
  z0 = flow.base.sample(jax.random.PRNGKey(13), 5)
  z_k, log_det = flow.forward(z0)
  np.testing.assert_array_equal(z, z_k)
  np.testing.assert_allclose(log_q, flow.base.log_prob(z0) - log_det, rtol=1e-6)
  assert z.shape == (5, 3, 2) and log_q.shape == (5, 3)
  np.testing.assert_array_equal(flow.sample(jax.random.PRNGKey(13), 5), z)
  with pytest.raises(ValueError, match="density is known only at its own samples"):
    flow.log_prob(z)


def _flowed_density_on_grid(flow, z0):
  """(z_K, q(z_K)) at the images of the grid points z0: [..., 1, dim] (batch of one)."""
  z, log_det = flow.forward(z0)
  return (np.asarray(z, np.float64)[..., 0, :],
          np.exp(np.asarray(flow.base.log_prob(z0) - log_det, np.float64))[..., 0])


@pytest.mark.parametrize("name", sorted(FLOWS))
def test_flowed_density_in_1d_integrates_to_one_and_matches_brute_force(name):
  flow = FLOWS[name](jax.random.PRNGKey(14), batch=1, steps=3, dim=1)
  mu, sd = float(flow.base.mean[0, 0]), float(np.exp(flow.base.log_var[0, 0] / 2))
  z0 = (mu + sd * jnp.linspace(-9, 9, 40_001))[:, None, None]
  z, q = _flowed_density_on_grid(flow, z0)
  z = z[:, 0]
  assert np.all(np.diff(z) > 0)
  np.testing.assert_allclose(np.trapezoid(q, z), 1.0, atol=1e-4)
  # Brute force: q_0(z_0) / (dz_K/dz_0), the derivative by central differences of the map.
  h = 1e-2 * sd
  slope = (np.asarray(flow.forward(z0 + h)[0], np.float64)
           - np.asarray(flow.forward(z0 - h)[0], np.float64)).ravel() / (2 * h)
  brute = stats.norm(mu, sd).pdf(np.asarray(z0, np.float64).ravel()) / slope
  inside = q > 1e-3 * q.max()
  np.testing.assert_allclose(q[inside], brute[inside], rtol=2e-3)


@pytest.mark.parametrize("name", sorted(FLOWS))
def test_flowed_density_in_2d_integrates_to_one_over_the_mapped_grid(name):
  """The grid of z_0 cells, mapped by the flow: sum over cells of q(z_K at the cell's centre)
  times the mapped cell's area (shoelace formula on its mapped corners, no Jacobian) is 1,
  and q there is q_0's mass in the cell over the mapped area (up to the cells' curvature)."""
  extra = {"opposed": False} if name == "planar" else {}   # no near-fold below the grid
  flow = FLOWS[name](jax.random.PRNGKey(15), batch=1, steps=2, dim=2, **extra)
  mu = np.asarray(flow.base.mean[0], np.float64)
  sd = np.exp(np.asarray(flow.base.log_var[0], np.float64) / 2)
  n = 401
  a = mu[0] + sd[0] * np.linspace(-8, 8, n)
  b = mu[1] + sd[1] * np.linspace(-8, 8, n)
  corners = np.stack(np.meshgrid(a, b, indexing="ij"), -1)                  # [n, n, 2]
  centres = (corners[1:, 1:] + corners[:-1, :-1]) / 2
  mapped, _ = _flowed_density_on_grid(flow, jnp.asarray(corners[:, :, None], jnp.float32))
  _, q = _flowed_density_on_grid(flow, jnp.asarray(centres[:, :, None], jnp.float32))
  p00, p10, p11, p01 = mapped[:-1, :-1], mapped[1:, :-1], mapped[1:, 1:], mapped[:-1, 1:]
  cross = lambda u, v: u[..., 0] * v[..., 1] - u[..., 1] * v[..., 0]          # noqa: E731
  area = 0.5 * np.abs(cross(p00, p10) + cross(p10, p11) + cross(p11, p01) + cross(p01, p00))
  np.testing.assert_allclose(np.sum(q * area), 1.0, atol=2e-3)
  cell0 = (a[1] - a[0]) * (b[1] - b[0])
  q0 = stats.multivariate_normal(mu, np.diag(sd ** 2)).pdf(centres)
  inside = q > 1e-2 * q.max()
  relative = np.abs(q / (q0 * cell0 / area) - 1)[inside]   # the cells' curvature: O(h^2)
  assert np.median(relative) < 2e-3 and relative.max() < 5e-2, (np.median(relative),
                                                                relative.max())


# --- A linear-Gaussian model with a correlated posterior ----------------------------------


class CorrelatedEncoder(nn.Module):
  """x -> (mean, L) with L = ``tril`` (``full``), or (mean, log_var) = ``log_var``."""
  full: bool

  @nn.compact
  def __call__(self, x):
    a = self.param("w", nn.initializers.zeros, (lg.DIM_X, lg.DIM_Z))
    mean = x.reshape(x.shape[0], -1) @ a + self.param("b", nn.initializers.zeros, (lg.DIM_Z,))
    if self.full:
      tril = self.param("tril", nn.initializers.zeros, (lg.DIM_Z, lg.DIM_Z))
      return D.FullCovarianceGaussian(mean, jnp.broadcast_to(tril, (*mean.shape, lg.DIM_Z)))
    log_var = self.param("log_var", nn.initializers.zeros, (lg.DIM_Z,))
    return D.DiagonalGaussian(mean, jnp.broadcast_to(log_var, mean.shape))


class CorrelatedLinearGaussian(nn.Module):
  """p(z) = N(0, I_3), p(x|z) = N(W z + b, s^2 I_6) with W's columns not orthogonal, so the
  exact posterior N(m(x), Sigma) is correlated; q(z|x) = N(x A + c, L L^T) (``full``) or
  N(x A + c, diag(exp(v)))."""
  full: bool
  latent_dim: int = lg.DIM_Z
  encoder_params = ("encoder",)

  def setup(self):
    self.encoder = CorrelatedEncoder(self.full)
    self.decoder = lg.LinearDecoder()

  def posterior(self, x, condition=None):
    protocol.check_condition(self, condition, conditional=False)
    return self.encoder(x)

  def prior(self):
    return D.StandardNormal(self.latent_dim)

  def decode(self, z, condition=None):
    protocol.check_condition(self, condition, conditional=False)
    return self.decoder(z)


def _correlated_setup():
  """W, b, data x: [4, 6], the exact posterior's precision, encoder map, log p(x)."""
  rng = np.random.default_rng(3)
  w = rng.normal(size=(lg.DIM_X, lg.DIM_Z)) * 0.4 + rng.normal(size=(lg.DIM_X, 1)) * 0.6
  b = rng.normal(size=lg.DIM_X)
  precision = np.eye(lg.DIM_Z) + w.T @ w / lg.NOISE_STD ** 2
  cov = np.linalg.inv(precision)
  enc_w = w @ cov / lg.NOISE_STD ** 2                          # m(x) = (x - b) @ enc_w
  x = rng.normal(size=(4, lg.DIM_X)) * 2 + b
  log_px = stats.multivariate_normal(b, w @ w.T + lg.NOISE_STD ** 2 * np.eye(lg.DIM_X)).logpdf(x)
  return w, b, x, precision, cov, enc_w, log_px


def _lg_params(w, b, enc_w, **posterior):
  f32 = lambda v: jnp.asarray(v, jnp.float32)                 # noqa: E731
  return {"encoder": {"w": f32(enc_w), "b": f32(-b @ enc_w),
                      **{k: f32(v) for k, v in posterior.items()}},
          "decoder": {"w": f32(w.T), "b": f32(b)}}


def _lg_likelihood():
  return likelihoods.make_likelihood("gaussian_fixed", gaussian_std=lg.NOISE_STD)


def test_a_full_covariance_posterior_at_the_exact_posterior_makes_the_elbo_exact():
  """q = p(z|x) = N(m(x), Sigma): log p(x, z) - log q(z|x) = log p(x) for every z, for the
  Monte Carlo ELBO and for each IWAE log-weight; the closed-form-KL ELBO averages to it."""
  w, b, x, _, cov, enc_w, log_px = _correlated_setup()
  assert np.abs(cov[0, 2]) / np.sqrt(cov[0, 0] * cov[2, 2]) > 0.5   # strongly correlated
  model = CorrelatedLinearGaussian(full=True)
  params = _lg_params(w, b, enc_w, tril=np.linalg.cholesky(cov))
  n = 50
  batch = {"image": jnp.asarray(np.repeat(x, n, 0).reshape(-1, 1, 1, lg.DIM_X), jnp.float32)}
  terms = elbo.make_elbo_terms(model, _lg_likelihood(), kl="mc")(params, batch,
                                                                  jax.random.PRNGKey(16))
  per_sample = np.asarray(elbo.elbo_metrics(terms)["elbo"]).reshape(4, n)
  np.testing.assert_allclose(per_sample, np.repeat(log_px[:, None], n, 1), atol=2e-3)
  t = elbo.sample_terms(model, _lg_likelihood(), params, batch["image"][::n],
                        jax.random.PRNGKey(17), 7)
  np.testing.assert_allclose(t["log_w"], np.broadcast_to(log_px, (7, 4)), atol=2e-3)
  many = {"image": jnp.repeat(batch["image"][::n], 20_000, 0)}
  analytic = elbo.make_elbo_terms(model, _lg_likelihood(), kl="analytic")(
      params, many, jax.random.PRNGKey(18))
  values = np.asarray(elbo.elbo_metrics(analytic)["elbo"], np.float64).reshape(4, -1)
  se = values.std(1) / np.sqrt(values.shape[1])
  assert np.all(np.abs(values.mean(1) - log_px) < 5 * se + 1e-3), (values.mean(1), log_px)


def _exact_diagonal_elbo(w, b, x, mean, log_var):
  """E_q log p(x|z) - KL(q || N(0, I)) in closed form for q = N(mean, diag(exp(log_var))):
  [batch] (jnp, differentiable in mean and log_var)."""
  var = jnp.exp(log_var)
  residual = jnp.sum((x - mean @ w.T - b) ** 2, -1) + jnp.sum(var * jnp.sum(w ** 2, 0), -1)
  expected = -0.5 * lg.DIM_X * jnp.log(2 * jnp.pi * lg.NOISE_STD ** 2) - residual / (
      2 * lg.NOISE_STD ** 2)
  return expected - 0.5 * jnp.sum(mean ** 2 + var - 1 - log_var, -1)


def test_the_best_diagonal_posterior_stays_below_log_px_by_the_computable_gap():
  """The diagonal q closest to N(m, Sigma) in KL(q || p(z|x)) has the mean m and variances
  1 / Lambda_ii (Lambda = Sigma^-1); its ELBO is log p(x) - gap, gap = 1/2 (sum_i log
  Lambda_ii - log det Lambda) > 0 (Hadamard). Checked in closed form (whose gradient there
  is zero: no diagonal q does better) and by the library's ELBO with 20,000 samples."""
  w, b, x, precision, _, enc_w, log_px = _correlated_setup()
  gap = 0.5 * (np.sum(np.log(np.diag(precision))) - np.linalg.slogdet(precision)[1])
  assert gap > 0.05
  mean = (x - b) @ enc_w
  log_var = np.broadcast_to(-np.log(np.diag(precision)), mean.shape)
  exact = np.asarray(_exact_diagonal_elbo(w, b, x, mean, log_var))
  np.testing.assert_allclose(exact, log_px - gap, rtol=1e-6)   # float32 closed form
  grad = jax.grad(lambda m, v: jnp.sum(_exact_diagonal_elbo(w, b, x, m, v)), argnums=(0, 1))
  flat = lambda g: np.concatenate([np.ravel(a) for a in g])      # noqa: E731
  np.testing.assert_allclose(flat(grad(jnp.asarray(mean), jnp.asarray(log_var))), 0.0,
                             atol=2e-4)
  assert np.abs(flat(grad(jnp.asarray(mean) + 0.1, jnp.asarray(log_var) + 0.1))).max() > 0.1
  model = CorrelatedLinearGaussian(full=False)
  params = _lg_params(w, b, enc_w, log_var=-np.log(np.diag(precision)))
  many = {"image": jnp.asarray(np.repeat(x, 20_000, 0).reshape(-1, 1, 1, lg.DIM_X),
                               jnp.float32)}
  terms = elbo.make_elbo_terms(model, _lg_likelihood(), kl="mc")(params, many,
                                                                  jax.random.PRNGKey(19))
  values = np.asarray(elbo.elbo_metrics(terms)["elbo"], np.float64).reshape(4, -1)
  assert np.all(values.std(1) > 0.05)                           # not exact per sample
  se = values.std(1) / np.sqrt(values.shape[1])
  assert np.all(np.abs(values.mean(1) - (log_px - gap)) < 5 * se + 1e-3)
  assert np.all(values.mean(1) < log_px - gap / 2)


# --- The models, the losses and the configs -----------------------------------------------


def _model(posterior, flow_steps=2):
  model = models.build_vae("mlp", SHAPE, 3, (8,), 1, posterior=posterior,
                           flow_steps=flow_steps)
  x = (jax.random.uniform(jax.random.PRNGKey(20), (5, *SHAPE)) > 0.5).astype(jnp.float32)
  return model, model.init(jax.random.PRNGKey(21), x)["params"], {"image": x}


def q_diag(model, params, batch):
  """The encoder's log_var head for ``batch``."""
  return model.apply({"params": params}, batch["image"], method=lambda m, x: m.encoder(x)[1])


def test_build_vae_gives_each_posterior_through_the_protocol():
  expected = {"diagonal": D.DiagonalGaussian, "full_covariance": D.FullCovarianceGaussian,
              "planar": D.PlanarFlow, "iaf": D.InverseAutoregressiveFlow}
  for name, kind in expected.items():
    model, params, batch = _model(name, flow_steps=3)
    q = protocol.posterior(model, params, batch["image"])
    assert isinstance(q, kind), name
    z, log_q = q.sample_and_log_prob(jax.random.PRNGKey(22), 4)
    assert z.shape == (4, 5, 3) and log_q.shape == (4, 5) and np.all(np.isfinite(log_q))
    assert q.mean.shape == (5, 3) and model.apply({"params": params}, batch["image"]).shape == (
        5, *SHAPE)
  model, params, batch = _model("full_covariance")
  q = protocol.posterior(model, params, batch["image"])
  np.testing.assert_array_equal(np.tril(q.scale_tril, -1), 0.0)   # starts as the diagonal q
  np.testing.assert_allclose(np.diagonal(q.scale_tril, 0, 1, 2), np.exp(0.5 * q_diag(model, params, batch)), rtol=1e-6)
  params = jax.tree_util.tree_map_with_path(      # give the off-diagonal head weights
      lambda path, v: v + 0.1 if "extra" in jax.tree_util.keystr(path) else v, params)
  tril = protocol.posterior(model, params, batch["image"]).scale_tril
  np.testing.assert_array_equal(np.triu(tril, 1), 0.0)
  assert np.all(np.diagonal(tril, 0, 1, 2) > 0) and np.any(np.tril(tril, -1) != 0)
  model, params, batch = _model("planar", flow_steps=3)
  assert protocol.posterior(model, params, batch["image"]).u.shape == (5, 3, 3)
  model, params, _ = _model("iaf")
  assert set(params) == {"encoder", "decoder", "flow"}
  assert all(jax.tree.leaves(protocol.encoder_mask(model, params)["flow"]))
  with pytest.raises(ValueError, match="takes prior='standard_normal'"):
    models.build_vae("mlp", SHAPE, 3, (8,), 1, prior="vamp", posterior="iaf")
  with pytest.raises(ValueError, match="posterior='gaussian': expected one of diagonal"):
    models.build_vae("mlp", SHAPE, 3, (8,), 1, posterior="gaussian")


@pytest.mark.parametrize("posterior,variants", [
    ("full_covariance", ("elbo", "elbo_mc", "elbo_stl", "iwae=3", "iwae_dreg=3")),
    ("planar", ("elbo_mc", "elbo_k=2", "iwae=3")),
    ("iaf", ("elbo_mc", "elbo_k=2", "iwae=3"))])
def test_supported_variants_train_every_encoder_parameter(posterior, variants):
  model, params, batch = _model(posterior)
  lik = likelihoods.make_likelihood("bernoulli")
  for variant in variants:
    loss_fn = elbo.make_loss(model, lik, elbo.parse_variant(variant))
    (loss, metrics), grads = jax.value_and_grad(loss_fn, has_aux=True)(
        params, batch, jax.random.PRNGKey(23))
    assert np.isfinite(loss) and np.isfinite(metrics["elbo"]), variant
    for entry in model.encoder_params:
      for path, g in jax.tree_util.tree_leaves_with_path(grads[entry]):
        assert np.all(np.isfinite(g)) and np.any(g != 0), (variant, entry, path)


def test_flows_refuse_the_closed_form_kl_stl_and_dreg_and_free_bits_needs_a_factorized_q():
  lik = likelihoods.make_likelihood("bernoulli")
  for posterior in ("planar", "iaf"):
    model, params, batch = _model(posterior)
    with pytest.raises(ValueError, match="kl='analytic' needs a closed-form.*Flow.*use kl='mc'"):
      elbo.make_loss(model, lik, elbo.parse_variant("elbo"))(params, batch,
                                                             jax.random.PRNGKey(0))
    for variant in ("elbo_stl", "iwae_dreg=3"):
      with pytest.raises(ValueError, match="density is known only at its own samples.*STL "
                                           "and DReG"):
        elbo.make_loss(model, lik, elbo.parse_variant(variant))(params, batch,
                                                                jax.random.PRNGKey(0))
  model, params, batch = _model("full_covariance")
  for kl in ("analytic", "mc"):
    with pytest.raises(ValueError, match="factorize over latent dimensions; "
                                         "FullCovarianceGaussian does not"):
      elbo.make_elbo_loss(model, lik, kl=kl, free_bits=0.1)(params, batch,
                                                            jax.random.PRNGKey(0))


def test_the_config_fields_select_the_posterior_and_refuse_what_does_not_fit(tmp_path):
  def parse(experiment, *argv):
    return configuration.parse(experiment, [f"--workdir={tmp_path}", *argv])

  config = parse("train_vae").config
  assert (config.posterior, config.flow_steps) == ("diagonal", 2)
  assert parse("train_vae", "--config.posterior=iaf", "--config.kl=mc",
               "--config.flow_steps=4").config.flow_steps == 4
  assert parse("train_vae", "--config.posterior=full_covariance").config.kl == "analytic"
  with pytest.raises(configuration.ConfigError, match="config.kl=analytic: a flow posterior "
                                                      r"\(posterior=planar\).*use kl=mc"):
    parse("train_vae", "--config.posterior=planar")
  with pytest.raises(configuration.ConfigError, match="flow_steps=3 is not read: train_vae "
                                                      "reads flow_steps only when posterior"):
    parse("train_vae", "--config.flow_steps=3")
  with pytest.raises(configuration.ConfigError, match="config.posterior=normal: expected one "
                                                      "of diagonal, full_covariance, planar"):
    parse("train_vae", "--config.posterior=normal")
  with pytest.raises(configuration.ConfigError, match="takes prior=standard_normal"):
    parse("train_vae", "--config.posterior=full_covariance", "--config.prior=vamp",
          "--config.kl=mc")
  with pytest.raises(configuration.ConfigError, match="elbo, beta=0.5 need a closed-form KL, which "
                                                      r"posterior=iaf \(this config\) has not"):
    parse("compare_elbos", "--config.posterior=iaf")
  with pytest.raises(configuration.ConfigError, match="elbo_stl evaluate log q"):
    parse("compare_elbos", "--config.posterior=iaf", "--config.variants=elbo_mc,elbo_stl")
  assert parse("compare_elbos", "--config.posterior=iaf", "--config.variants=elbo_mc,iwae=5",
               "--config.flow_steps=3").config.flow_steps == 3
  assert parse("compare_elbos", "--config.posterior=full_covariance").config.posterior == (
      "full_covariance")


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
  return write_synthetic_mnist(tmp_path_factory.mktemp("data"), 256, 64)


def test_the_flow_posterior_config_is_train_vaes_with_a_flow_and_a_monte_carlo_kl():
  defaults = configuration.load_config_file("experiments/configs/train_vae.py")
  for variant, posterior in (("", "iaf"), (":planar", "planar"), (":smoke", "iaf")):
    c = configuration.load_config_file(f"experiments/configs/flow_posterior.py{variant}")
    assert set(c.keys()) == set(defaults.keys())
    assert (c.posterior, c.kl) == (posterior, "mc")
    configuration.validate("train_vae", c, defaults, train_vae.READ_IF)
    assert all(check(c) is None for check in train_vae.CHECKS)


@pytest.mark.parametrize("posterior", ["full_covariance", "planar", "iaf"])
def test_train_vae_runs_with_each_posterior(posterior, data_dir, tmp_path):
  kl = "analytic" if posterior == "full_covariance" else "mc"
  config = ["--config=experiments/configs/flow_posterior.py:smoke"] if posterior == "iaf" else [
      "--config=experiments/configs/train_vae.py:smoke", f"--config.posterior={posterior}",
      f"--config.kl={kl}"]
  results = run_experiment(train_vae, [
      f"--workdir={tmp_path}", f"--config.data_dir={data_dir}", *config])
  config = json.load(open(tmp_path / "config.json"))
  assert (config["posterior"], config["kl"]) == (posterior, kl)
  assert np.isfinite(results["test_elbo"]) and results["test_elbo"] < 0
  assert np.isfinite(results["test_nll"]) and results["test_nll"] > 0
  assert (tmp_path / "reconstructions.png").stat().st_size > 0


def test_compare_elbos_runs_the_full_covariance_posterior(data_dir, tmp_path):
  """The closed-form KL, DReG (log q at stopped parameters), active units and KL per
  dimension (the marginals' closed form) all take the full-covariance posterior."""
  from experiments import compare_elbos
  results = run_experiment(compare_elbos, [   # elbo and iwae_dreg=3, 2 seeds, 1 epoch
      f"--workdir={tmp_path}", f"--config.data_dir={data_dir}",
      "--config=experiments/configs/compare_elbos.py:smoke",
      "--config.posterior=full_covariance"])
  assert json.load(open(tmp_path / "config.json"))["posterior"] == "full_covariance"
  for variant in ("elbo", "iwae_dreg=3"):
    for key in ("test_elbo", "test_nll", "active_units", "encoder_snr_median"):
      assert np.isfinite(results[f"{variant}/{key}"]), (variant, key)
    assert results[f"{variant}/test_elbo"] < 0 < results[f"{variant}/test_nll"]
