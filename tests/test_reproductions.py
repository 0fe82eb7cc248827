"""Reproduction configs (burda2016_iwae.py, kingma2014_m2.py): the budget field, the
paper's optimiser, the test-NLL learning curve with the passes to a paper's number, and
each config's smoke variant end to end."""

import json
import os

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest

from experiments import compare_elbos, semi_supervised
from experiments.framework import configuration
from tests.experiment_helpers import run_experiment, write_synthetic_mnist

BURDA = "--config=experiments/configs/burda2016_iwae.py"
KINGMA = "--config=experiments/configs/kingma2014_m2.py"


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
  """mnist.npz holding the ten-class synthetic blobs: 320 train, 80 test images."""
  return write_synthetic_mnist(tmp_path_factory.mktemp("blobs"), 320, 80, seed=3)


def test_budget_paper_sets_the_papers_fields(tmp_path):
  run = [f"--workdir={tmp_path / 'w'}"]
  machine = configuration.parse("compare_elbos", [*run, BURDA]).config
  paper = configuration.parse("compare_elbos", [*run, BURDA, "--config.budget=paper"]).config
  assert (machine.budget, machine.epochs, machine.ll_examples) == ("machine", 4, 1000)
  assert (paper.budget, paper.epochs, paper.ll_examples, paper.eval_every) == (
      "paper", 3280, 0, 81)
  assert (paper.batch_size, paper.adam_eps, paper.lr_schedule) == (20, 1e-4, "iwae")
  m2 = configuration.parse("semi_supervised", [*run, KINGMA, "--config.budget=paper"]).config
  assert (m2.epochs, m2.hidden, m2.latent_dim, m2.activation) == (3000, (500,), 50, "softplus")
  # An override of the paper budget itself is how to change one of its fields.
  shorter = configuration.parse("compare_elbos", [*run, BURDA, "--config.budget=paper",
                                                  "--config.paper_budget.epochs=100"]).config
  assert shorter.epochs == 100
  assert not (tmp_path / "w").exists()


def test_budget_refusals_name_the_field(tmp_path):
  run = [f"--workdir={tmp_path / 'w'}"]
  cases = (
      ([BURDA, "--config.budget=paper", "--config.epochs=5"],
       "config.epochs=5 conflicts with budget=paper, which sets epochs=3280"),
      (["--config.budget=paper"], "config.budget=paper: this config has no paper budget"),
      ([BURDA, "--config.budget=gpu"], "config.budget=gpu: expected one of machine, paper"),
      ([BURDA, "--config.paper_nll=iwae=7:80"],
       "config.paper_nll: iwae=7 not among the variants"),
      ([BURDA, "--config.paper_nll=iwae=5"], "config.paper_nll=iwae=5: 'iwae=5' is not "
                                             "VARIANT:NLL"),
      ([BURDA, "--config.curve_ll_samples=0", "--config.paper_nll=iwae=5:1"],
       "paper_nll=iwae=5:1 is not read"),
      ([BURDA, "--config.lr_schedule=cosine"], "expected one of constant, iwae"),
  )
  for extra, message in cases:
    with pytest.raises(configuration.ConfigError, match=message):
      configuration.parse("compare_elbos", [*run, *extra])
  with pytest.raises(configuration.ConfigError, match="config.budget: train_vae has no such"):
    configuration.parse("train_vae", [*run, "--config.budget=paper"])
  config = ml_collections.ConfigDict({"budget": "paper", "epochs": 1,
                                      "paper_budget": {"epoch": 5}})
  with pytest.raises(configuration.ConfigError, match="paper_budget.epoch: not a field"):
    configuration.apply_budget(config)
  assert not (tmp_path / "w").exists()


def test_paper_nll_entries_parse():
  assert compare_elbos.parse_paper_nll("") == {}
  assert compare_elbos.parse_paper_nll("elbo_mc:86.76, iwae=50:84.78") == {
      "elbo_mc": 86.76, "iwae=50": 84.78}
  for bad in ("iwae=5", "iwae=5:x", ":3", "elbo:nan"):
    with pytest.raises(ValueError, match="is not VARIANT:NLL"):
      compare_elbos.parse_paper_nll(bad)


def _first_updates(optimizer, gradient: float, steps: int) -> np.ndarray:
  """The updates of ``steps`` Adam steps on one parameter with a constant gradient."""
  params = jnp.zeros(())
  state = optimizer.init(params)
  out = []
  for _ in range(steps):
    update, state = optimizer.update(jnp.float32(gradient), state, params)
    out.append(float(update))
  return np.array(out)


def test_the_papers_adam_epsilon_and_schedule():
  """With a constant gradient g Adam's bias-corrected moments are exactly g and g^2, so
  every update is -rate * g / (|g| + eps): eps = 1e-4 halves a step when g = 1e-4, and the
  rate drops by 10^(-1/7) after the first pass (Burda et al. 2016, Sec. 5)."""
  config = ml_collections.ConfigDict(dict(learning_rate=1e-3, adam_eps=1e-4,
                                          lr_schedule="iwae", batch_size=20))
  steps_per_pass = 3
  updates = _first_updates(compare_elbos.optimizer(config, 20 * steps_per_pass), 1e-4, 5)
  expected = np.array([1e-3] * 3 + [1e-3 * 10 ** (-1 / 7)] * 2) * -0.5
  np.testing.assert_allclose(updates, expected, rtol=1e-5)
  config.update(dict(adam_eps=1e-8, lr_schedule="constant"))
  constant = _first_updates(compare_elbos.optimizer(config, 20 * steps_per_pass), 1e-4, 5)
  np.testing.assert_allclose(constant, -1e-3 / (1 + 1e-4), rtol=1e-5)


def test_burda2016_smoke_logs_a_test_nll_curve_and_the_passes_to_the_paper(data_dir,
                                                                           tmp_path):
  workdir = str(tmp_path / "burda")
  results = run_experiment(compare_elbos, [f"--workdir={workdir}", BURDA + ":smoke",
                                           f"--config.data_dir={data_dir}"])
  for name in ("elbo_mc", "iwae=3"):
    assert results[f"{name}/test_nll_seed_se"] == pytest.approx(
        results[f"{name}/test_nll_std"] / np.sqrt(2))
    row = json.load(open(os.path.join(workdir, "variants", name, "results.json")))
    assert [e for e, _ in row["nll_curve"]] == [1.0, 2.0]
    assert all(len(v) == 2 and all(np.isfinite(v)) for _, v in row["nll_curve"])
    assert row["paper_nll"] == {"elbo_mc": 90.0, "iwae=3": 89.0}[name]
    assert f"{name}/passes_to_paper" in results
  assert os.path.getsize(os.path.join(workdir, "nll_curves.png")) > 0
  table = open(os.path.join(workdir, "results.md")).read()
  assert "| variant | test NLL | paper | passes to the paper's number |" in table
  assert "| iwae=3 | " in table and " | 89.00 | " in table


def test_kingma2014_smoke_draws_m2_learning_curves(data_dir, tmp_path):
  workdir = str(tmp_path / "kingma")
  results = run_experiment(semi_supervised, [f"--workdir={workdir}", KINGMA + ":smoke",
                                             f"--config.data_dir={data_dir}"])
  assert 0 <= results["n2/m2_error"] <= 1
  config = configuration.parse("semi_supervised", [f"--workdir={workdir}", KINGMA + ":smoke",
                                                   f"--config.data_dir={data_dir}"]).config
  ((epochs, mean, se),) = semi_supervised.m2_curves(config).values()
  assert epochs == [1.0, 2.0] and len(mean) == len(se) == 2
  final = []
  for s in range(2):
    lines = open(os.path.join(workdir, "m2", "n2", f"seed{s}", "metrics.jsonl")).readlines()
    final.append([json.loads(l)["test_error"] for l in lines if "test_error" in l][-1])
  assert mean[-1] == pytest.approx(100 * np.mean(final))
  assert os.path.getsize(os.path.join(workdir, "m2_curves.png")) > 0
