"""models/vamp.py: the VampPrior VAE through the protocol, the ELBO family and the metrics."""

import dataclasses

import jax
import jax.flatten_util
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from scipy import stats

from genjax import distributions as D
from genjax import likelihoods, models
from genjax.losses import elbo
from genjax.metrics import likelihood as likelihood_metrics
from genjax.models import protocol

SHAPE, LATENT, PSEUDO = (4, 4, 1), 2, 3
MC_VARIANTS = ("elbo_mc", "elbo_stl", "elbo_k=3", "iwae=3", "iwae_dreg=3")


@pytest.fixture(scope="module")
def vamp():
  model = models.build_vae("mlp", SHAPE, LATENT, (8,), 1, prior="vamp",
                           num_pseudo_inputs=PSEUDO)
  x = (jax.random.uniform(jax.random.PRNGKey(0), (6, *SHAPE)) > 0.5).astype(jnp.float32)
  params = model.init(jax.random.PRNGKey(1), x)["params"]
  return model, params, {"image": x}


def _lik():
  return likelihoods.make_likelihood("bernoulli")


def _objectives():
  """Every variant that allows a Monte Carlo KL, beta=0.5 switched to kl=mc."""
  return ([elbo.parse_variant(v) for v in MC_VARIANTS]
          + [dataclasses.replace(elbo.parse_variant("beta=0.5"), kl="mc")])


def test_the_prior_is_the_mixture_of_the_encoders_gaussians_at_the_pseudo_inputs(vamp):
  model, params, _ = vamp
  assert isinstance(model, models.VampPriorVAE)
  assert params["pseudo_inputs"].shape == (PSEUDO, *SHAPE)
  assert not any(jax.tree.leaves(protocol.encoder_mask(model, params)["pseudo_inputs"]))
  u = jax.nn.sigmoid(params["pseudo_inputs"])                  # in (0, 1): the image range
  means, log_vars = (np.asarray(a, np.float64) for a in
                     model.encoder.apply({"params": params["encoder"]}, u))
  prior = protocol.prior(model, params)
  assert isinstance(prior, D.MixtureOfDiagonalGaussians)
  z = np.random.default_rng(0).normal(size=(5, LATENT)).astype(np.float32) * 2
  brute = np.log(np.mean([stats.multivariate_normal(means[k], np.diag(np.exp(log_vars[k])))
                          .pdf(z) for k in range(PSEUDO)], axis=0))
  np.testing.assert_allclose(prior.log_prob(z), brute, rtol=1e-5, atol=1e-5)
  samples = protocol.sample_prior(model, params, jax.random.PRNGKey(2), 7)
  assert samples.shape == (7, LATENT) and np.all(np.isfinite(samples))
  assert protocol.decode(model, params, samples).shape == (7, *SHAPE)


def test_analytic_kl_and_free_bits_are_refused_with_the_fix(vamp):
  model, params, batch = vamp
  for variant in ("elbo", "beta=0.5"):
    loss_fn = elbo.make_loss(model, _lik(), elbo.parse_variant(variant))
    with pytest.raises(ValueError, match="kl='analytic' needs a closed-form.*MixtureOf"
                                         "DiagonalGaussians.*use kl='mc'"):
      loss_fn(params, batch, jax.random.PRNGKey(0))
  with pytest.raises(ValueError, match="kl='analytic'.*use kl='mc'"):
    elbo.make_elbo_terms(model, _lik())(params, batch, jax.random.PRNGKey(0))
  free_bits = elbo.make_elbo_loss(model, _lik(), kl="mc", free_bits=0.1)
  with pytest.raises(ValueError, match="factorize over latent dimensions"):
    free_bits(params, batch, jax.random.PRNGKey(0))


def test_every_monte_carlo_variant_trains_the_pseudo_inputs(vamp):
  model, params, batch = vamp
  for objective in _objectives():
    loss_fn = elbo.make_loss(model, _lik(), objective)
    (loss, metrics), grads = jax.value_and_grad(loss_fn, has_aux=True)(
        params, batch, jax.random.PRNGKey(3))
    assert np.isfinite(loss) and np.isfinite(metrics["elbo"]), objective
    assert all(np.all(np.isfinite(g)) for g in jax.tree.leaves(grads)), objective
    for part in ("pseudo_inputs", "encoder", "decoder"):
      assert any(np.any(g != 0) for g in jax.tree.leaves(grads[part])), (objective, part)


def test_stl_and_dreg_stay_unbiased_when_the_prior_shares_the_encoder(vamp):
  """The VampPrior depends on the encoder's weights: STL and DReG must keep that gradient
  (weighted by w~_k, not w~_k^2). Their mean gradient over 2000 keys equals the
  reparameterization gradient's, within 5 standard errors, for every parameter."""
  model, params, batch = vamp
  pairs = (("elbo_mc", "elbo_stl"), ("iwae=3", "iwae_dreg=3"))
  keys = jax.random.split(jax.random.PRNGKey(4), 2000)
  for names in pairs:
    draws = []
    for name in names:
      loss_fn = elbo.make_loss(model, _lik(), elbo.parse_variant(name))
      grad = jax.jit(jax.vmap(lambda k: jax.flatten_util.ravel_pytree(
          jax.grad(lambda p: loss_fn(p, batch, k)[0])(params))[0]))
      draws.append(np.asarray(grad(keys), np.float64))
    a, b = draws
    se = np.sqrt(a.var(0) / len(a) + b.var(0) / len(b))
    assert np.all(np.abs(a.mean(0) - b.mean(0)) < 5 * se + 1e-4), names


def test_a_few_adam_steps_lower_the_loss(vamp):
  model, params, batch = vamp
  loss_fn = elbo.make_loss(model, _lik(), elbo.parse_variant("iwae=3"))
  optimizer = optax.adam(3e-2)
  rng = jax.random.PRNGKey(5)            # one key: the same samples each step

  @jax.jit
  def step(p, opt_state):
    loss, grads = jax.value_and_grad(lambda q: loss_fn(q, batch, rng)[0])(p)
    updates, opt_state = optimizer.update(grads, opt_state, p)
    return optax.apply_updates(p, updates), opt_state, loss

  p, opt_state = params, optimizer.init(params)
  losses = []
  for _ in range(15):
    p, opt_state, loss = step(p, opt_state)
    losses.append(float(loss))
  assert losses[-1] < losses[0] - 1.0, losses
  assert not np.allclose(p["pseudo_inputs"], params["pseudo_inputs"])


def test_metrics_run_through_the_protocol(vamp):
  model, params, batch = vamp
  x = batch["image"]
  log_px, se = likelihood_metrics.importance_sampled_log_likelihood(
      model, _lik(), params, x, jax.random.PRNGKey(6), 200, chunk_size=50)
  assert log_px.shape == se.shape == (6,) and np.all(np.isfinite(log_px)) and np.all(log_px < 0)
  elbo_fn = jax.jit(jax.vmap(lambda k: elbo.make_elbo_terms(model, _lik(), kl="mc")(
      params, batch, k)))
  terms = elbo_fn(jax.random.split(jax.random.PRNGKey(7), 500))
  assert np.all(np.asarray(log_px) > np.mean(terms["log_px"] - terms["kl"], 0))
  stats_ = likelihood_metrics.posterior_statistics(model, params, np.asarray(x), batch_size=4,
                                                   num_kl_samples=8)
  assert stats_["kl_per_dim"].shape == (LATENT,) and np.all(np.isfinite(stats_["kl_per_dim"]))
  loss_fn = elbo.make_loss(model, _lik(), elbo.parse_variant("elbo_stl"))
  snr = likelihood_metrics.gradient_snr(loss_fn, params, batch, jax.random.PRNGKey(8), 16,
                                        protocol.encoder_mask(model, params))
  assert all(np.isfinite(v) and v > 0 for v in snr.values()), snr
