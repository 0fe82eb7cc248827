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
  assert set(a) == {"encoder_grad_snr", "encoder_grad_var", "decoder_grad_snr",
                    "decoder_grad_var"}
  assert a["encoder_grad_var"] < 1e-9 < 1e-2 < b["encoder_grad_var"]
  np.testing.assert_allclose(a["decoder_grad_var"], b["decoder_grad_var"], rtol=1e-4)
  with pytest.raises(ValueError, match="encoder_mask must mark some parameters"):
    likelihood_metrics.gradient_snr(stl, exact, batch, jax.random.PRNGKey(0), 4,
                                    jax.tree.map(lambda _: True, exact))


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
