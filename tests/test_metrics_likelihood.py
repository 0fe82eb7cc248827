"""metrics/likelihood.py: importance-sampled log p(x) against an exact marginal, active
units, posterior statistics, SNR; the default family's numbers against the pre-protocol
implementation."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from genjax import distributions as D
from genjax import likelihoods
from genjax.losses import elbo as elbo_losses
from genjax.metrics import likelihood as likelihood_metrics
from genjax.models import protocol
from genjax.training import loop
from tests import linear_gaussian as lg
from tests import regression_helpers as reg


@pytest.fixture(scope="module")
def setup():
  return lg.exact_setup()


def _likelihood():
  return likelihoods.make_likelihood("gaussian_fixed", gaussian_std=lg.NOISE_STD)


def test_importance_sampled_log_likelihood_matches_exact_within_its_standard_error(setup):
  model, exact, batch, log_px = setup
  params = lg.perturbed(exact, shift=0.5, log_var_shift=0.7)  # a wider q: a good proposal
  est, se = likelihood_metrics.importance_sampled_log_likelihood(
      model, _likelihood(), params, batch["image"], jax.random.PRNGKey(0), 5000, chunk_size=500)
  est, se = np.asarray(est, np.float64), np.asarray(se, np.float64)
  assert np.all(se > 1e-4) and np.all(se < 0.1)
  assert np.all(np.abs(est - log_px) < 4 * se + 1e-3), (est, log_px, se)
  # Far from q = p(z|x), a single-sample ELBO is clearly worse than the estimate.
  elbo = float(lg.closed_form_elbo(params, batch))
  assert elbo < np.mean(est) - 0.5


def test_importance_sampling_with_the_exact_posterior_is_exact(setup):
  model, exact, batch, log_px = setup
  est, se = likelihood_metrics.importance_sampled_log_likelihood(
      model, _likelihood(), exact, batch["image"], jax.random.PRNGKey(1), 100, chunk_size=50)
  np.testing.assert_allclose(est, log_px, atol=2e-3)
  assert np.all(np.asarray(se) < 1e-3)


def test_log_likelihood_metrics_plug_into_the_eval_loop(setup):
  model, exact, batch, log_px = setup
  metric = likelihood_metrics.make_log_likelihood_fn(model, _likelihood(), num_samples=100,
                                                     chunk_size=50)
  out = loop.make_eval_fn(metric)(exact, *loop.pad_batches(batch, 3), jax.random.PRNGKey(2))
  np.testing.assert_allclose(out["log_px"], np.mean(log_px), atol=2e-3)
  with pytest.raises(ValueError, match="num_samples=100 must divide by chunk_size=30"):
    likelihood_metrics.importance_sampled_log_likelihood(model, _likelihood(), exact,
                                                         batch["image"], jax.random.PRNGKey(0),
                                                         100, chunk_size=30)


def test_active_units_counts_dimensions_whose_mean_varies():
  rng = np.random.default_rng(0)
  means = rng.normal(size=(5000, 4)) * np.array([1.0, 0.05, 0.3, 0.0])  # var 1, .0025, .09, 0
  assert likelihood_metrics.active_units(means) == 2
  assert likelihood_metrics.active_units(means, threshold=0.001) == 3


def test_posterior_statistics(setup):
  model, exact, batch, _ = setup
  x = np.repeat(np.asarray(batch["image"]), 5, axis=0)
  stats = likelihood_metrics.posterior_statistics(model, exact, x, batch_size=7)
  q = protocol.posterior(model, exact, x)
  mean = q.mean
  np.testing.assert_allclose(
      stats["kl_per_dim"],
      np.asarray(D.kl_diag_gaussian_standard_normal(q.mean, q.log_var, event_ndims=0)).mean(0),
      rtol=1e-5)
  np.testing.assert_allclose(stats["mean_cov"], np.asarray(mean).var(0), rtol=1e-4)
  assert stats["active_units"] == int(np.sum(np.asarray(mean).var(0) > 0.01))


def test_gradient_snr_separates_estimators_at_the_optimum(setup):
  model, exact, batch, _ = setup
  stl = elbo_losses.make_elbo_loss(model, _likelihood(), kl="mc", estimator="stl")
  reparam = elbo_losses.make_elbo_loss(model, _likelihood(), kl="mc")
  mask = protocol.encoder_mask(model, exact)
  a = likelihood_metrics.gradient_snr(stl, exact, batch, jax.random.PRNGKey(0), 64, mask)
  b = likelihood_metrics.gradient_snr(reparam, exact, batch, jax.random.PRNGKey(0), 64, mask)
  assert set(a) == {f"{part}_{key}" for part in ("encoder", "decoder")
                    for key in ("snr_median", "snr_projection", "grad_snr", "grad_var")}
  assert all(v is not None and np.isfinite(v) for v in (*a.values(), *b.values())), (a, b)
  assert a["encoder_grad_var"] < 1e-9 < 1e-2 < b["encoder_grad_var"]
  np.testing.assert_allclose(a["decoder_grad_var"], b["decoder_grad_var"], rtol=1e-4)
  with pytest.raises(ValueError, match="encoder_mask must mark some parameters"):
    likelihood_metrics.gradient_snr(stl, exact, batch, jax.random.PRNGKey(0), 4,
                                    jax.tree.map(lambda _: True, exact))


def _reference_snr(draws):
  """snr_summary's median and projection, written out with loops in float64."""
  draws = np.asarray(draws, np.float64)
  n, num_params = draws.shape
  per_param = []
  for i in range(num_params):
    col = draws[:, i]
    mean, std = col.sum() / n, np.sqrt(((col - col.sum() / n) ** 2).sum() / n)
    if mean == 0 and std == 0:
      continue                                         # identically zero: no SNR
    per_param.append(np.inf if std == 0 else abs(mean) / std)
  projections = []
  for d in range(n):
    others = np.delete(draws, d, axis=0).mean(0)       # E[g] without draw d
    projections.append(draws[d] @ (others / np.linalg.norm(others)))
  projections = np.array(projections)
  return np.median(per_param), abs(projections.mean()) / projections.std()


def test_snr_summary_on_hand_built_draws():
  """Four draws of five parameters with SNRs known by hand: 2 (mean 2, std 1), 0 (mean 0),
  1/3 (mean -1, std 3), a constant 5 (SNR inf) and one identically zero (excluded): the
  median of {0, 1/3, 2, inf} is (1/3 + 2) / 2. A single direction g_d = a_d v with all
  a_d > 0 projects to a_d, so its projection SNR is mean(a) / std(a)."""
  draws = np.array([[1., -1., 2., 5., 0.], [3., 1., -4., 5., 0.],
                    [1., -1., 2., 5., 0.], [3., 1., -4., 5., 0.]])
  out = likelihood_metrics.snr_summary(draws)
  np.testing.assert_allclose(out["snr_median"], (1 / 3 + 2) / 2, rtol=1e-6)
  np.testing.assert_allclose(out["grad_var"], (1 + 1 + 9 + 0 + 0) / 5, rtol=1e-6)
  assert out["grad_snr"] > 1e20       # the legacy mean: the constant parameter's 5 / 1e-30
  a = np.array([1., 2., 3., 6.])
  v = np.array([0.6, 0., -0.8])
  np.testing.assert_allclose(likelihood_metrics.snr_summary(a[:, None] * v)["snr_projection"],
                             a.mean() / a.std(), rtol=1e-6)


def test_snr_summary_matches_a_float64_reference():
  rng = np.random.default_rng(0)
  signal = rng.normal(size=40) * np.geomspace(0.01, 10, 40)
  draws = signal + rng.normal(size=(64, 40)) * rng.uniform(0.5, 2, 40)
  draws[:, [3, 17]] = 0.0                               # two identically zero parameters
  out = likelihood_metrics.snr_summary(draws.astype(np.float32))
  median, projection = _reference_snr(draws.astype(np.float32))
  np.testing.assert_allclose(out["snr_median"], median, rtol=1e-5)
  np.testing.assert_allclose(out["snr_projection"], projection, rtol=1e-4)
  assert 0.1 < out["snr_median"] < 10 and projection > 1


def test_snr_summary_is_invariant_to_scale_permutation_zeros_and_rotation():
  rng = np.random.default_rng(1)
  draws = (rng.normal(size=12) + rng.normal(size=(50, 12))).astype(np.float32)
  base = likelihood_metrics.snr_summary(draws)
  rotation, _ = np.linalg.qr(rng.normal(size=(12, 12)))
  variants = {"x -3e-4": draws * -3e-4, "x 1e3": draws * 1e3,
              "permuted": draws[:, rng.permutation(12)],
              "zeros added": np.concatenate([draws, np.zeros((50, 7), np.float32)], 1)}
  for name, other in variants.items():
    out = likelihood_metrics.snr_summary(other)
    for key in ("snr_median", "snr_projection"):
      np.testing.assert_allclose(out[key], base[key], rtol=1e-4, err_msg=f"{name}: {key}")
  rotated = likelihood_metrics.snr_summary((draws @ rotation).astype(np.float32))
  np.testing.assert_allclose(rotated["snr_projection"], base["snr_projection"], rtol=1e-4)
  # The median is per parameter: a rotation mixes parameters and changes it.
  assert abs(rotated["snr_median"] - base["snr_median"]) > 1e-3


def test_snr_projection_estimates_the_mean_directions_snr_and_is_not_inflated_by_noise():
  """With E[g] = m and independent noise of std sigma_i, the SNR along u = m / ||m|| is
  ||m|| / sqrt(sum_i u_i^2 sigma_i^2). Pure noise (m = 0) in many dimensions has none: the
  leave-one-out projection finds SNR ~ 0, where projecting on the mean of all draws would
  find the noise's own direction (SNR > 1)."""
  rng = np.random.default_rng(2)
  m, sigma = np.array([1., -2., 0.5, 0., 3.]), np.array([2., 1., 4., 1., 6.])
  draws = (m + sigma * rng.normal(size=(4000, 5))).astype(np.float32)
  u = m / np.linalg.norm(m)
  expected = np.linalg.norm(m) / np.sqrt(np.sum(u ** 2 * sigma ** 2))
  np.testing.assert_allclose(likelihood_metrics.snr_summary(draws)["snr_projection"], expected,
                             rtol=0.05)
  noise = rng.normal(size=(100, 5000)).astype(np.float32)
  naive = noise @ noise.mean(0) / np.linalg.norm(noise.mean(0))
  assert naive.mean() / naive.std() > 1
  assert likelihood_metrics.snr_summary(noise)["snr_projection"] < 0.3


def test_gradient_snr_reproduces_the_papers_trends_in_k_near_the_posterior(setup):
  """Rainforth et al. 2018 (Thm. 1): with q close to p(z|x), IWAE's encoder SNR falls as
  O(1/sqrt(K)) and its decoder SNR rises as O(sqrt(K)); Tucker et al. 2019: DReG's encoder
  SNR rises with K. On the linear-Gaussian model with q a little off the exact posterior,
  K = 1, 10, 100, 300 draws of the gradient on its four data points."""
  model, exact, batch, _ = setup
  params = lg.perturbed(exact, shift=0.3, log_var_shift=0.5)
  mask = protocol.encoder_mask(model, params)

  def snr(variant):
    loss = elbo_losses.make_loss(model, _likelihood(), elbo_losses.parse_variant(variant))
    return likelihood_metrics.gradient_snr(loss, params, batch, jax.random.PRNGKey(0), 300,
                                           mask)

  iwae = [snr(f"iwae={k}") for k in (1, 10, 100)]
  dreg = [snr(f"iwae_dreg={k}") for k in (1, 10, 100)]
  for agg in ("snr_median", "snr_projection"):
    enc, dec = [s[f"encoder_{agg}"] for s in iwae], [s[f"decoder_{agg}"] for s in iwae]
    assert enc[0] > 1.5 * enc[1] > 2.25 * enc[2], (agg, enc)           # falls with K
    assert 3 < dec[2] / dec[0] < 30 and dec[0] < dec[1] < dec[2], (agg, dec)   # ~ sqrt(100)
    enc_dreg = [s[f"encoder_{agg}"] for s in dreg]
    assert enc_dreg[2] > 2 * enc_dreg[0] and enc_dreg[2] > 20 * enc[2], (agg, enc_dreg)
    # DReG changes only the encoder's gradient: the decoder's draws are IWAE's.
    np.testing.assert_allclose([s[f"decoder_{agg}"] for s in dreg], dec, rtol=1e-4)


def test_snr_summary_reports_none_where_undefined_never_nan():
  out = likelihood_metrics.snr_summary(np.zeros((5, 3), np.float32))
  assert out["snr_median"] is None and out["snr_projection"] is None
  assert out["grad_snr"] == 0.0 and out["grad_var"] == 0.0
  constant = likelihood_metrics.snr_summary(np.ones((5, 3), np.float32))
  assert constant["snr_median"] is None and constant["snr_projection"] is None
  with pytest.raises(ValueError, match="num_draws >= 2"):
    likelihood_metrics.snr_summary(np.ones((1, 3), np.float32))


def test_posterior_statistics_estimate_the_kl_by_monte_carlo_without_a_closed_form(setup):
  """Against a prior with no closed-form KL (a one-component mixture equal to N(0, I)), the
  per-dimension KL is a Monte Carlo estimate of the same closed form."""
  model, exact, batch, _ = setup

  class MixturePrior(type(model)):
    def prior(self):
      return D.MixtureOfDiagonalGaussians(jnp.zeros((1, lg.DIM_Z)), jnp.zeros((1, lg.DIM_Z)))

  x = np.asarray(batch["image"])
  closed = likelihood_metrics.posterior_statistics(model, exact, x)
  mc = likelihood_metrics.posterior_statistics(MixturePrior(), exact, x,
                                               rng=jax.random.PRNGKey(3), num_kl_samples=4000)
  np.testing.assert_allclose(mc["kl_per_dim"], closed["kl_per_dim"], rtol=0.05, atol=0.01)
  np.testing.assert_allclose(mc["mean_cov"], closed["mean_cov"])


def test_importance_sampling_and_statistics_reproduce_the_pre_protocol_numbers():
  """The IS log-likelihood (K=50), its standard error, posterior statistics, gradient SNR and
  the conditional IS log-likelihood on the tiny MLP VAE / CVAE, computed with the
  pre-protocol implementation (``tests/regression_helpers.py``): the default family must
  reproduce them."""
  model, params, batch = reg.vae()
  lik, x = reg.bernoulli(), batch["image"]
  log_px, se = likelihood_metrics.importance_sampled_log_likelihood(
      model, lik, params, x, jax.random.PRNGKey(4), 50, chunk_size=25)
  np.testing.assert_allclose(log_px, [-546.28833, -548.818298, -547.127686, -546.120422,
                                      -553.185669, -544.805847, -546.620667, -548.479065],
                             rtol=reg.RTOL)
  np.testing.assert_allclose(se, [0.773313582, 0.413458884, 0.462479889, 0.461920649,
                                  0.65445894, 0.737861216, 0.702149212, 0.793031454],
                             rtol=reg.RTOL)
  stats = likelihood_metrics.posterior_statistics(model, params, x, batch_size=5)
  np.testing.assert_allclose(stats["kl_per_dim"], [0.151232272, 0.107605293], rtol=reg.RTOL)
  np.testing.assert_allclose(stats["mean_cov"], [0.0440921113, 0.0477805883], rtol=reg.RTOL)
  assert stats["active_units"] == 2
  loss_fn = elbo_losses.make_loss(model, lik, elbo_losses.parse_variant("elbo_mc"))
  snr = likelihood_metrics.gradient_snr(loss_fn, params, batch, jax.random.PRNGKey(5), 8,
                                        protocol.encoder_mask(model, params))
  expected = {"encoder_grad_snr": 0.840703368, "encoder_grad_var": 18.701086,
              "decoder_grad_snr": 1.07590604, "decoder_grad_var": 0.0775954276}
  for key, value in expected.items():
    np.testing.assert_allclose(snr[key], value, rtol=reg.RTOL, err_msg=key)
  cvae, cparams, cbatch = reg.cvae()
  log_px, _ = likelihood_metrics.importance_sampled_log_likelihood(
      cvae, lik, cparams, x, jax.random.PRNGKey(4), 50, chunk_size=25,
      condition=cbatch["condition"])
  np.testing.assert_allclose(log_px, [-547.957336, -544.364136, -553.729309, -546.459656,
                                      -549.311768, -563.480347, -552.387085, -552.468872],
                             rtol=reg.RTOL)
