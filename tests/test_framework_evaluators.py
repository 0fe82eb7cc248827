"""experiments/framework/evaluators.py: final evaluations by name (what each reads and
requires), the factors evaluator (MIG, factors.md, traversals.png) on the dSprites-style
set end to end, and their refusals."""

import json
import pathlib

import numpy as np
import pytest
from PIL import Image

from experiments import train_cvae, train_vae
from experiments.framework import configuration, evaluators
from experiments.framework.configuration import ConfigError
from genjax.data import dsprites
from tests.experiment_helpers import run_experiment


def test_the_registry_says_what_each_reads():
  assert tuple(evaluators.EVALUATORS) == ("log_likelihood", "sample_quality", "factors")
  assert evaluators.EVALUATORS["log_likelihood"].reads == ("ll_samples", "ll_examples")
  assert set(train_vae.READ_IF) == {"ll_samples", "ll_examples", "quality_samples"}
  assert train_vae.READ_IF["ll_samples"].description == "evaluators has log_likelihood"
  with pytest.raises(ValueError, match="'factors' is already registered"):
    evaluators.register(evaluators.EVALUATORS["factors"])


def test_an_evaluator_is_refused_where_it_cannot_run(tmp_path):
  with pytest.raises(ConfigError, match="config.evaluators has factors: dataset=mnist has no "
                                        "known factors of variation; use dataset=dsprites"):
    configuration.parse("train_vae", [f"--workdir={tmp_path}", "--config.evaluators=factors"])
  with pytest.raises(ConfigError, match="config.evaluators=factors: expected comma-separated "
                                        "names from log_likelihood, sample_quality, each once"):
    configuration.parse("train_cvae", [f"--workdir={tmp_path}", "--config.evaluators=factors"])
  assert not list(tmp_path.iterdir())   # nothing written


@pytest.fixture(scope="module")
def beta_vae_run(tmp_path_factory):
  workdir = tmp_path_factory.mktemp("beta_vae")
  results = run_experiment(train_vae, [f"--workdir={workdir}",
                                       "--config=experiments/configs/beta_vae.py:smoke"])
  return workdir, results


def test_the_factors_evaluator_writes_its_table_and_traversals(beta_vae_run):
  workdir, results = beta_vae_run
  assert 0.0 <= results["mig"] <= 1.0
  for name in dsprites.FACTOR_NAMES:
    assert 0.0 <= results[f"mig_{name}"] <= 1.0 and results[f"best_latent_{name}"] in (0, 1, 2)
  assert np.isclose(results["mig"], np.mean([results[f"mig_{n}"] for n in dsprites.FACTOR_NAMES]))
  table = (workdir / "factors.md").read_text().splitlines()
  rows = [line for line in table if line.startswith("| z_")]
  assert len(rows) == 3 and all(len(r.split("|")) == 3 + len(dsprites.FACTOR_NAMES) for r in rows)
  assert f"MIG = {results['mig']:.3f}" in "\n".join(table)
  width, height = Image.open(workdir / "traversals.png").size
  assert width > 2 * height                   # 9 columns, 3 rows
  stored = json.loads((workdir / "results.json").read_text())
  assert stored["dataset"] == "dsprites" and stored["mig"] == results["mig"]
