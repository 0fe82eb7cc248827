"""compare_elbos' ``models``: architectures (posteriors, a second stochastic layer) on equal
footing, with the gap log p(x) - ELBO measured on the same draws."""

import json

import jax
import numpy as np
import pytest

from experiments import compare_elbos
from experiments.framework import configuration
from genjax import likelihoods
from genjax.metrics import likelihood as likelihood_metrics
from tests import linear_gaussian as lg
from tests.experiment_helpers import run_experiment, write_synthetic_mnist


def test_model_entries_parse_to_the_fields_they_set():
  assert compare_elbos.parse_models("") == []
  assert compare_elbos.parse_models("diagonal, planar=8,two_layer=50,iaf=2") == [
      ("diagonal", {"posterior": "diagonal", "upper_latents": ()}),
      ("planar=8", {"posterior": "planar", "flow_steps": 8, "upper_latents": ()}),
      ("two_layer=50", {"posterior": "diagonal", "upper_latents": (50,)}),
      ("iaf=2", {"posterior": "iaf", "flow_steps": 2, "upper_latents": ()})]
  for bad in ("planar", "diagonal=2", "iaf=0", "two_layer=x", "vamp", "diagonal,diagonal"):
    with pytest.raises(ValueError):
      compare_elbos.parse_models(bad)


def test_models_are_refused_with_variants_they_cannot_train(tmp_path):
  run = [f"--workdir={tmp_path / 'run'}", "--config=experiments/configs/compare_elbos.py:smoke"]
  cases = (
      (["--config.models=diagonal,planar=2"], "elbo need a closed-form KL.*planar=2"),
      (["--config.models=iaf=2", "--config.variants=elbo_mc,iwae_dreg=3"],
       "iwae_dreg=3 evaluate log q"),
      (["--config.models=two_layer=2", "--config.variants=elbo_mc+free_bits=0.1"],
       "factorizes"),
      (["--config.models=planar"], "config.models=planar: 'planar' is not a model"),
      (["--config.models=diagonal", "--config.variants=elbo_mc", "--config.posterior=iaf"],
       "posterior=iaf is not read: compare_elbos reads posterior only when models is empty"),
      (["--config.models=diagonal", "--config.variants=elbo_mc", "--config.upper_hidden=3"],
       "upper_hidden=3 is not read"))
  for extra, message in cases:
    with pytest.raises(configuration.ConfigError, match=message):
      configuration.parse("compare_elbos", [*run, *extra])
  config = configuration.parse("compare_elbos", [
      *run, "--config.models=diagonal,iaf=2,two_layer=2", "--config.variants=elbo_mc,iwae=3",
      "--config.upper_hidden=3"]).config
  (_, own), (_, iaf), (_, two) = compare_elbos.model_configs(config)
  assert (iaf.posterior, iaf.flow_steps, iaf.latent_dim) == ("iaf", 2, config.latent_dim)
  assert tuple(two.upper_latents) == (2,) and tuple(two.upper_hidden) == (3,)
  assert compare_elbos.test_kl(own) == "analytic" and compare_elbos.test_kl(two) == "mc"
  assert not (tmp_path / "run").exists()


def test_the_log_likelihood_metrics_give_the_elbo_of_the_same_draws():
  """``elbo`` is the mean of the log-weights whose log-mean-exp is ``log_px``: at the exact
  posterior of the linear-Gaussian model both are log p(x); away from it the gap is >= 0
  (Jensen) and the ELBO matches the closed form within its Monte Carlo error."""
  model, params, batch, log_px = lg.exact_setup()
  lik = likelihoods.make_likelihood("gaussian_fixed", gaussian_std=lg.NOISE_STD)
  metrics = likelihood_metrics.make_log_likelihood_fn(model, lik, 2000, 500)
  exact = metrics(params, batch, jax.random.PRNGKey(0))
  np.testing.assert_allclose(exact["log_px"], log_px, atol=2e-4)
  np.testing.assert_allclose(exact["elbo"], log_px, atol=2e-4)
  off = lg.perturbed(params)
  away = metrics(off, batch, jax.random.PRNGKey(1))
  assert np.all(away["log_px"] - away["elbo"] > 0.05)
  closed = float(lg.closed_form_elbo(off, batch))
  assert abs(float(np.mean(away["elbo"])) - closed) < 0.1, (away["elbo"], closed)


@pytest.fixture(scope="module")
def compared(tmp_path_factory):
  data = tmp_path_factory.mktemp("data")
  work = tmp_path_factory.mktemp("run")
  results = run_experiment(compare_elbos, [
      f"--workdir={work}", "--config=experiments/configs/compare_posteriors.py:smoke",
      f"--config.data_dir={write_synthetic_mnist(data, num_train=64, num_test=40)}"])
  return work, results


def test_compare_posteriors_trains_every_model_and_reports_the_gap(compared):
  work, results = compared
  for row in ("diagonal:elbo_mc", "planar=2:elbo_mc", "two_layer=2:elbo_mc"):
    assert np.isfinite(results[f"{row}/test_nll"]), row
    assert results[f"{row}/gap"] >= 0.0, row            # log-mean-exp >= mean, same draws
  table = (work / "results.md").read_text()
  assert "| two_layer=2 | elbo_mc |" in table and "Architectures on equal footing" in table
  row = json.loads((work / "variants" / "two_layer=2_elbo_mc" / "results.json").read_text())
  assert len(row["active_units_per_layer"][0]) == 2
  assert row["kl_per_dim"] == [[None] * 4]    # a hierarchy's marginals have no density
