"""Hierarchies of stochastic layers (models/hierarchical.py, distributions.Hierarchical*):
densities against scipy's Gaussians, every ELBO-lab bound exact at the exact posterior of
a two-layer linear-Gaussian model, STL and DReG encoder gradients zero there, the IWAE
paper's two-layer network, and the config fields."""

import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import stats

from experiments import train_vae
from experiments.framework import configuration
from experiments.configs import base
from genjax import likelihoods, models
from genjax.losses import elbo
from genjax.metrics import likelihood as likelihood_metrics
from genjax.models import protocol
from tests import linear_gaussian as lg
from tests.experiment_helpers import run_experiment, write_synthetic_mnist


@pytest.fixture(scope="module")
def exact():
  return lg.two_layer_exact_setup()


def _likelihood():
  return likelihoods.make_likelihood("gaussian_fixed", gaussian_std=lg.NOISE_STD)


def _log_px_given_z(params, x, z):
  """log N(x; W^T z_1 + b, s^2 I) in numpy: [n]."""
  dec = jax.tree.map(np.asarray, params["decoder"])
  mean = z[:, :lg.DIM_Z] @ dec["w"] + dec["b"]
  return stats.multivariate_normal(np.zeros(lg.DIM_X), lg.NOISE_STD ** 2 * np.eye(lg.DIM_X)
                                   ).logpdf(x - mean)


def test_the_prior_is_the_joint_gaussian_of_its_chain(exact):
  model, params, _, _, (mean, cov) = exact
  prior = protocol.prior(model, params)
  z = np.random.default_rng(0).normal(size=(7, lg.DIM_Z + lg.DIM_Z2)) * 1.5
  np.testing.assert_allclose(prior.log_prob(jnp.asarray(z, jnp.float32)),
                             stats.multivariate_normal(mean, cov).logpdf(z), rtol=1e-5)
  draws = np.asarray(prior.sample(jax.random.PRNGKey(0), 200_000), np.float64)
  np.testing.assert_allclose(draws.mean(0), mean, atol=0.02)
  np.testing.assert_allclose(np.cov(draws.T), cov, atol=0.03)


def test_the_exact_posterior_density_is_bayes_rule(exact):
  """log q(z|x) = log p(z) + log p(x|z) - log p(x) at arbitrary z (scipy references), and
  sample_and_log_prob's density is log_prob at its samples."""
  model, params, batch, log_px, (mean, cov) = exact
  q = protocol.posterior(model, params, batch["image"])
  x = np.asarray(batch["image"]).reshape(4, lg.DIM_X)
  z = np.random.default_rng(1).normal(size=(4, lg.DIM_Z + lg.DIM_Z2))
  bayes = stats.multivariate_normal(mean, cov).logpdf(z) + _log_px_given_z(params, x, z) - log_px
  np.testing.assert_allclose(q.log_prob(jnp.asarray(z, jnp.float32)), bayes, rtol=1e-4)
  draws, log_q = q.sample_and_log_prob(jax.random.PRNGKey(2), 3)
  assert draws.shape == (3, 4, lg.DIM_Z + lg.DIM_Z2) and log_q.shape == (3, 4)
  np.testing.assert_allclose(log_q, q.log_prob(draws), rtol=1e-5)


def test_every_bound_is_log_px_at_the_exact_posterior(exact):
  """q = p(z|x): every log-weight is log p(x), so the Monte Carlo ELBO, VAE-k, IWAE and the
  importance-sampled log-likelihood equal the exact log p(x) (standard error 0)."""
  model, params, batch, log_px, _ = exact
  lik = _likelihood()
  t = elbo.sample_terms(model, lik, params, batch["image"], jax.random.PRNGKey(3), 6)
  np.testing.assert_allclose(t["log_w"], np.broadcast_to(log_px, (6, 4)), atol=2e-4)
  for text in ("elbo_mc", "elbo_k=4", "iwae=5", "iwae_dreg=5", "elbo_stl"):
    _, metrics = elbo.make_loss(model, lik, elbo.parse_variant(text))(
        params, batch, jax.random.PRNGKey(4))
    bound = metrics["elbo"] if "elbo" in text else metrics.get("iwae", metrics["elbo"])
    np.testing.assert_allclose(bound, log_px.mean(), atol=2e-4, err_msg=text)
  ll, se = likelihood_metrics.importance_sampled_log_likelihood(
      model, lik, params, batch["image"], jax.random.PRNGKey(5), 40, 20)
  np.testing.assert_allclose(ll, log_px, atol=2e-4)
  np.testing.assert_allclose(se, 0.0, atol=1e-3)


def _perturbed(params):
  return {**params, "encoder": {**params["encoder"], "b": params["encoder"]["b"] + 0.3},
          "q_upper": jax.tree.map(lambda v: v + 0.2, params["q_upper"])}


@pytest.mark.parametrize("text", ["elbo_stl", "iwae_dreg=4"])
def test_stl_and_dreg_inference_gradients_vanish_at_the_exact_posterior(exact, text):
  """At q = p(z|x), log w is constant in z, so the path-derivative estimators give the
  inference network (encoder and the q(z_2|z_1) link) a zero gradient for every draw;
  away from it they do not."""
  model, params, batch, _, _ = exact
  loss = elbo.make_loss(model, _likelihood(), elbo.parse_variant(text))
  mask = protocol.encoder_mask(model, params)
  for p, zero in ((params, True), (_perturbed(params), False)):
    grads = jax.grad(lambda q: loss(q, batch, jax.random.PRNGKey(6))[0])(p)
    inference = [g for g, m in zip(jax.tree.leaves(grads), jax.tree.leaves(mask)) if m]
    largest = max(float(jnp.abs(g).max()) for g in inference)
    assert (largest < 1e-4) if zero else (largest > 1e-2), (text, zero, largest)


def test_per_example_keys_draw_each_example_alone(exact):
  """Row b of a draw with one key per example depends on key b only (placement
  independence), in every stochastic layer."""
  model, params, batch, _, _ = exact
  keys = jax.random.split(jax.random.PRNGKey(7), 4)
  q = protocol.posterior(model, params, batch["image"])
  whole = q.sample(keys, 3)
  halves = [protocol.posterior(model, params, batch["image"][i:i + 2]).sample(keys[i:i + 2], 3)
            for i in (0, 2)]
  np.testing.assert_array_equal(whole, jnp.concatenate(halves, 1))


def test_the_two_layer_network_is_the_iwae_papers():
  model = models.build_vae("mlp", (28, 28, 1), 100, (200, 200), 1, "tanh", upper_latents=(50,))
  params = model.init(jax.random.PRNGKey(0), jnp.zeros((1, 28, 28, 1)))["params"]
  shapes = jax.tree.map(lambda a: a.shape, params)
  assert shapes["encoder"]["Dense_0"]["kernel"] == (784, 200)
  assert shapes["encoder"]["mean"]["kernel"] == (200, 100)
  assert [shapes["q_upper"][f"link_0_layer_{i}_w"] for i in range(3)] == [
      (100, 100), (100, 100), (100, 100)]                   # z_1 -> 100 -> 100 -> (mu, lv) of 50
  assert [shapes["p_lower"][f"link_0_layer_{i}_w"] for i in range(3)] == [
      (50, 100), (100, 100), (100, 200)]                    # z_2 -> 100 -> 100 -> (mu, lv) of 100
  assert shapes["decoder"]["Dense_0"]["kernel"] == (100, 200)
  assert model.latent_dim == 150 and protocol.sample_prior(
      model, params, jax.random.PRNGKey(1), 5).shape == (5, 150)
  mask = protocol.encoder_mask(model, params)
  assert all(jax.tree.leaves(mask["q_upper"])) and not any(jax.tree.leaves(mask["p_lower"]))
  with pytest.raises(ValueError, match="prior='standard_normal' and posterior='diagonal'"):
    models.build_vae("mlp", (28, 28, 1), 4, (8,), 1, upper_latents=(2,), posterior="planar")


def test_the_closed_form_kl_and_free_bits_are_refused(exact):
  model, params, batch, _, _ = exact
  with pytest.raises(ValueError, match="closed-form KL"):
    elbo.make_loss(model, _likelihood(), elbo.parse_variant("elbo"))(
        params, batch, jax.random.PRNGKey(0))
  with pytest.raises(ValueError, match="factorize"):
    elbo.make_loss(model, _likelihood(), elbo.parse_variant("elbo_mc+free_bits=0.1"))(
        params, batch, jax.random.PRNGKey(0))


def test_the_config_fields_build_the_hierarchy_and_refuse_what_does_not_fit(tmp_path):
  run = [f"--workdir={tmp_path / 'run'}"]
  config = configuration.parse("train_vae", [*run, "--config.upper_latents=2,3",
                                             "--config.kl=mc"]).config
  assert tuple(config.upper_latents) == (2, 3) and tuple(config.upper_hidden) == (100, 100)
  for extra, message in (([], "config.kl=analytic: a hierarchy of stochastic layers"),
                         (["--config.kl=mc", "--config.posterior=planar"],
                          "takes posterior=diagonal and prior=standard_normal"),
                         (["--config.kl=mc", "--config.upper_latents=0"], "integers >= 1")):
    with pytest.raises(configuration.ConfigError, match=message):
      configuration.parse("train_vae", [*run, "--config.upper_latents=2", *extra])
  with pytest.raises(configuration.ConfigError, match="upper_hidden=7 is not read"):
    configuration.parse("train_vae", [*run, "--config.upper_hidden=7"])
  assert not (tmp_path / "run").exists()
  table = configuration.load_config_file("experiments/configs/iwae_table1.py:two_layer")
  assert (table.latent_dim, tuple(table.upper_latents), tuple(table.upper_hidden),
          tuple(table.hidden)) == (100, (50,), (100, 100), (200, 200))
  with pytest.raises(configuration.ConfigError, match="elbo need a closed-form KL"):
    configuration.parse("compare_elbos", [*run, "--config=experiments/configs/iwae_table1.py:two_layer",
                                          "--config.variants=elbo,iwae=5"])
  assert base.latent(base.run()).upper_latents == ()


def test_train_vae_runs_a_two_layer_model(tmp_path):
  """train_vae with a second stochastic layer: Monte Carlo KL, the IS log-likelihood and
  prior samples through both layers (no manifold: z_1's prior is not N(0, I))."""
  (tmp_path / "data").mkdir()
  data = write_synthetic_mnist(tmp_path / "data", num_train=64, num_test=40)
  results = run_experiment(train_vae, [
      f"--workdir={tmp_path / 'run'}", f"--config.data_dir={data}",
      "--config=experiments/configs/train_vae.py:smoke", "--config.kl=mc",
      "--config.upper_latents=2", "--config.upper_hidden=4"])
  config = json.loads((tmp_path / "run" / "config.json").read_text())
  assert (config["upper_latents"], config["upper_hidden"]) == ([2], [4])
  assert np.isfinite(results["test_elbo"]) and results["test_nll"] > 0
  assert (tmp_path / "run" / "samples.png").exists()
  assert not (tmp_path / "run" / "manifold.png").exists()
