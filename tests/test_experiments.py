"""launch.py and experiments/train_vae.py end to end on tiny data."""

import csv
import json
import os
import pathlib
import subprocess
import sys

import numpy as np
import pytest

from experiments import train_vae
from tests.experiment_helpers import run_experiment

ROOT = pathlib.Path(__file__).resolve().parents[1]
TINY = ["--config=experiments/configs/train_vae.py:smoke"]   # 2 epochs, batch 32, 16-2-16


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
  """A tiny mnist.npz with the keys of ../shared/data/mnist.npz."""
  path = tmp_path_factory.mktemp("data")
  rng = np.random.default_rng(0)
  images = (rng.random((2, 28, 28)) * 255).astype(np.uint8)
  labels = rng.integers(0, 2, 320).astype(np.uint8)
  np.savez(path / "mnist.npz", x_train=images[labels[:256]], y_train=labels[:256],
           x_test=images[labels[256:]], y_test=labels[256:])
  return str(path)


def _run(argv):
  return run_experiment(train_vae, argv)


def _launch(*args, timeout=120):
  return subprocess.run([sys.executable, str(ROOT / "launch.py"), *args], capture_output=True,
                        text=True, timeout=timeout, cwd=ROOT)


def test_train_vae_writes_every_workdir_file_and_resumes(data_dir, tmp_path):
  workdir = str(tmp_path / "run")
  results = _run([f"--workdir={workdir}", f"--config.data_dir={data_dir}", *TINY])
  for name in ("config.json", "metrics.jsonl", "samples.png", "reconstructions.png",
               "results.json", "results.md", "manifold.png", "latent_scatter.png"):
    assert os.path.getsize(os.path.join(workdir, name)) > 0, name
  assert sorted(os.listdir(os.path.join(workdir, "checkpoints"))) == ["16", "8"]
  stored = json.load(open(os.path.join(workdir, "results.json")))
  for key in ("test_elbo", "test_recon", "test_kl", "wall_s", "examples_per_s"):
    assert np.isfinite(stored[key]), key
  assert stored["steps"] == 16 and results["test_elbo"] < 0
  # The smoke config names the log-likelihood evaluator: K = 20 on 10 test images.
  assert np.isfinite(stored["test_nll"]) and stored["test_ll_se"] >= 0
  assert stored["ll_examples_used"] == 10
  # The pre-redesign implementation (flags, no model protocol: commit d9d5e88) gave exactly
  # these numbers for this run; the default VAE family and the runner must reproduce them.
  np.testing.assert_allclose([stored["test_elbo"], stored["params_digest"]],
                             [-544.7329711914062, 812.0471801757812], rtol=1e-4)
  # Prior samples scored by the reference classifier of the (two-class) data set.
  assert stored["sample_fd"] > 0 and 1 <= stored["sample_score"] <= 2 + 1e-6
  assert 0 <= stored["classifier_test_accuracy"] <= 1 and stored["data_fd"] >= 0
  np.testing.assert_allclose(stored["sample_class_share_0"] + stored["sample_class_share_1"], 1)
  np.testing.assert_allclose(stored["test_elbo"], -(stored["test_recon"] + stored["test_kl"]),
                             rtol=1e-5)
  records = [json.loads(l) for l in open(os.path.join(workdir, "metrics.jsonl"))]
  train_records = [r for r in records if "loss" in r]
  assert [r["step"] for r in train_records] == [8, 16]
  assert {"step", "epoch", "loss", "recon", "kl", "elbo", "examples_per_s"} <= set(train_records[0])
  assert [r["epoch"] for r in records if "test_elbo" in r] == [1, 2]
  assert json.load(open(os.path.join(workdir, "config.json")))["latent_dim"] == 2

  # Rerun with more epochs: resumes at step 16 rather than starting over.
  _run([f"--workdir={workdir}", f"--config.data_dir={data_dir}", *TINY, "--config.epochs=3"])
  records = [json.loads(l) for l in open(os.path.join(workdir, "metrics.jsonl"))]
  assert [r["step"] for r in records if "loss" in r] == [8, 16, 24]
  assert json.load(open(os.path.join(workdir, "results.json")))["steps"] == 24

  # A rerun that changes the model is refused, and nothing already written changes.
  before = open(os.path.join(workdir, "results.json")).read()
  with pytest.raises(ValueError, match="latent_dim=2 there, 3 now"):
    _run([f"--workdir={workdir}", f"--config.data_dir={data_dir}", *TINY,
          "--config.latent_dim=3"])
  assert open(os.path.join(workdir, "results.json")).read() == before
  assert sorted(os.listdir(os.path.join(workdir, "checkpoints"))) == ["16", "24", "8"]


def test_missing_data_set_is_a_clear_error_and_writes_nothing(data_dir, tmp_path):
  workdir = tmp_path / "never"
  with pytest.raises(FileNotFoundError, match="binarized_mnist") as info:
    _run([f"--workdir={workdir}", f"--config.data_dir={data_dir}",
          "--config.dataset=binarized_mnist", *TINY])
  assert data_dir in str(info.value)
  assert not workdir.exists()


def test_launch_lists_experiments_and_rejects_unknown_names():
  listing = _launch("--list")
  assert listing.returncode == 0
  lines = dict(line.split(None, 1) for line in listing.stdout.strip().splitlines())
  assert lines["train_vae"].startswith("Train a VAE")
  assert lines["compare_elbos"].startswith("Compare ELBO variants")
  unknown = _launch("train_gaN")
  assert unknown.returncode != 0
  known = sorted(p.stem for p in (ROOT / "experiments").glob("*.py")
                 if p.stem not in ("__init__", "runner", "configuration", "evaluators"))
  assert sorted(lines) == known
  assert f"unknown experiment 'train_gaN'; known: {', '.join(known)}" in unknown.stderr


def test_launch_sets_host_devices_before_jax_starts():
  code = ("import launch, sys\n"
          "launch._set_host_devices(['--host_devices=3'])\n"
          "import jax; print(jax.device_count())\n")
  result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          cwd=ROOT, timeout=120, env={**os.environ, "XLA_FLAGS": ""})
  assert result.stdout.strip() == "3", result.stderr
  bad = _launch("train_vae", "--host_devices=zero")
  assert bad.returncode != 0 and "--host_devices=zero: expected an integer >= 1" in bad.stderr


def test_compare_elbos_end_to_end(data_dir, tmp_path):
  from experiments import compare_elbos
  workdir = tmp_path / "cmp"
  results = run_experiment(compare_elbos, [    # elbo and iwae_dreg=3, 2 seeds, 1 epoch
      f"--workdir={workdir}", f"--config.data_dir={data_dir}",
      "--config=experiments/configs/compare_elbos.py:smoke"])
  for name in ("config.json", "results.json", "results.md", "results.csv", "curves.png"):
    assert (workdir / name).stat().st_size > 0, name
  stored = json.load(open(workdir / "results.json"))
  for variant in ("elbo", "iwae_dreg=3"):
    for key in ("test_ll", "test_nll", "test_elbo", "test_kl", "active_units",
                "encoder_snr_median", "encoder_snr_projection", "decoder_snr_median",
                "decoder_snr_projection", "encoder_grad_snr", "decoder_grad_snr", "train_s"):
      assert np.isfinite(stored[f"{variant}/{key}"]) and f"{variant}/{key}_std" in stored
    assert stored[f"{variant}/test_nll"] == -stored[f"{variant}/test_ll"]
    # The log-likelihood bound holds on average: IS estimate above the ELBO.
    assert stored[f"{variant}/test_ll"] > stored[f"{variant}/test_elbo"] - 1.0
    per_seed = json.load(open(workdir / "variants" / variant / "results.json"))["per_seed"]
    assert len(per_seed["test_elbo"]) == 2 and per_seed["test_elbo"][0] != per_seed["test_elbo"][1]
  assert results["elbo/test_elbo"] == stored["elbo/test_elbo"]
  rows = list(csv.reader(open(workdir / "results.csv")))
  assert [r[0] for r in rows] == ["variant", "elbo", "iwae_dreg=3"]
  assert "| iwae_dreg=3 |" in open(workdir / "results.md").read()


def test_compare_elbos_measures_other_estimators_snr_at_the_trained_parameters(data_dir,
                                                                              tmp_path):
  """snr_vs_k.py:smoke: the SNR of each of snr_estimators at the trained ELBO's parameters,
  on one batch with the same noise. At K = 1 IWAE's gradient is elbo_mc's and DReG's is
  elbo_stl's (its weights w~^2 are 1), so their SNRs agree; at every K, IWAE and DReG
  share their decoder gradient, and their encoder gradients differ."""
  from experiments import compare_elbos
  workdir = tmp_path / "snr"
  run_experiment(compare_elbos, [f"--workdir={workdir}", f"--config.data_dir={data_dir}",
                                 "--config=experiments/configs/snr_vs_k.py:smoke"])
  stored = json.load(open(workdir / "results.json"))
  snr = {e: {k: stored[f"elbo/snr/{e}/{k}"] for k in compare_elbos.SNR_METRICS}
         for e in ("iwae=1", "iwae=20", "iwae_dreg=1", "iwae_dreg=20", "elbo_mc", "elbo_stl")}
  assert all(np.isfinite(v) and v > 0 for row in snr.values() for v in row.values()), snr
  for a, b in (("iwae=1", "elbo_mc"), ("iwae_dreg=1", "elbo_stl")):
    for key, value in snr[a].items():
      np.testing.assert_allclose(value, snr[b][key], rtol=1e-4, err_msg=f"{a} vs {b}: {key}")
  for k in (1, 20):
    iwae, dreg = snr[f"iwae={k}"], snr[f"iwae_dreg={k}"]
    for key in ("decoder_snr_median", "decoder_snr_projection", "decoder_grad_var"):
      np.testing.assert_allclose(iwae[key], dreg[key], rtol=1e-4, err_msg=f"K={k}: {key}")
    assert abs(iwae["encoder_grad_var"] / dreg["encoder_grad_var"] - 1) > 1e-3, (iwae, dreg)
  table = open(workdir / "results.md").read()
  assert "at the final parameters of elbo" in table and "| iwae_dreg=20 |" in table


def test_compare_elbos_checks_snr_estimators_before_any_work(tmp_path):
  from experiments.framework import configuration

  def parse(*argv):
    return configuration.parse("compare_elbos", [f"--workdir={tmp_path}", *argv])

  assert parse().config.snr_estimators == ""                   # default: none
  assert parse("--config.snr_estimators=iwae=5,iwae_dreg=5").config.snr_estimators
  with pytest.raises(configuration.ConfigError, match="config.snr_estimators=iwae=x"):
    parse("--config.snr_estimators=iwae=x")
  with pytest.raises(configuration.ConfigError,
                     match="config.snr_estimators: elbo need a closed-form KL"):
    parse("--config.prior=vamp", "--config.variants=elbo_mc", "--config.snr_estimators=elbo")


def test_train_vae_runs_the_vamp_prior_config(data_dir, tmp_path):
  """The VampPrior (a second latent family: a learned mixture prior, Monte Carlo KL) runs
  through the same experiment, losses, evaluators and sampling as the default VAE."""
  workdir = tmp_path / "vamp"
  results = _run([f"--workdir={workdir}", f"--config.data_dir={data_dir}",
                  "--config=experiments/configs/vamp_prior.py:smoke"])
  config = json.load(open(workdir / "config.json"))
  assert (config["prior"], config["kl"], config["pseudo_inputs"]) == ("vamp", "mc", 4)
  assert np.isfinite(results["test_elbo"]) and results["test_elbo"] < 0
  assert np.isfinite(results["sample_fd"])          # prior samples decoded and scored
  for name in ("samples.png", "manifold.png", "latent_scatter.png"):
    assert (workdir / name).stat().st_size > 0, name
