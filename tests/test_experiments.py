"""launch.py and experiments/train_vae.py end to end on tiny data."""

import csv
import json
import os
import pathlib
import subprocess
import sys

from absl import flags
import numpy as np
import pytest

from experiments import train_vae
from tests.experiment_helpers import run_experiment

ROOT = pathlib.Path(__file__).resolve().parents[1]
FLAGS = flags.FLAGS
TINY = ["--epochs=2", "--batch_size=32", "--hidden=16", "--latent_dim=2", "--eval_every=1",
        "--checkpoint_every=1", "--num_samples=4", "--eval_batch_size=40",
        "--quality_samples=200"]


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
  results = _run([f"--workdir={workdir}", f"--data_dir={data_dir}", *TINY])
  for name in ("config.json", "metrics.jsonl", "samples.png", "reconstructions.png",
               "results.json", "results.md", "manifold.png", "latent_scatter.png"):
    assert os.path.getsize(os.path.join(workdir, name)) > 0, name
  assert sorted(os.listdir(os.path.join(workdir, "checkpoints"))) == ["16", "8"]
  stored = json.load(open(os.path.join(workdir, "results.json")))
  for key in ("test_elbo", "test_recon", "test_kl", "wall_s", "examples_per_s"):
    assert np.isfinite(stored[key]), key
  assert stored["steps"] == 16 and results["test_elbo"] < 0
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
  _run([f"--workdir={workdir}", f"--data_dir={data_dir}", *TINY, "--epochs=3"])
  records = [json.loads(l) for l in open(os.path.join(workdir, "metrics.jsonl"))]
  assert [r["step"] for r in records if "loss" in r] == [8, 16, 24]
  assert json.load(open(os.path.join(workdir, "results.json")))["steps"] == 24

  # A rerun that changes the model is refused, and nothing already written changes.
  before = open(os.path.join(workdir, "results.json")).read()
  with pytest.raises(ValueError, match="--latent_dim=2 there, 3 now"):
    _run([f"--workdir={workdir}", f"--data_dir={data_dir}", *TINY, "--latent_dim=3"])
  assert open(os.path.join(workdir, "results.json")).read() == before
  assert sorted(os.listdir(os.path.join(workdir, "checkpoints"))) == ["16", "24", "8"]


def test_missing_data_set_is_a_clear_error_and_writes_nothing(data_dir, tmp_path):
  workdir = tmp_path / "never"
  with pytest.raises(FileNotFoundError, match="binarized_mnist") as info:
    _run([f"--workdir={workdir}", f"--data_dir={data_dir}", "--dataset=binarized_mnist", *TINY])
  assert data_dir in str(info.value)
  assert not workdir.exists()


@pytest.mark.parametrize("flag,expected", [
    ("--model=resnet", "flag --model=resnet: value should be one of <mlp|conv>"),
    ("--hidden=400,x", "400', 'x']: must be comma-separated positive integers"),
    ("--likelihood=poisson", "flag --likelihood=poisson: value should be one of"),
    ("--batch_size=0", "flag --batch_size=0: 0 is not a positive integer"),
])
def test_bad_flags_name_the_flag_and_allowed_values(flag, expected, tmp_path):
  with pytest.raises(flags.IllegalFlagValueError) as info:
    FLAGS(["train_vae", f"--workdir={tmp_path}", flag])
  FLAGS.unparse_flags()
  assert expected in str(info.value)


def test_launch_reports_bad_flag_in_one_line_before_writing(tmp_path):
  result = _launch("train_vae", f"--workdir={tmp_path / 'w'}", "--kl=exact")
  assert result.returncode != 0
  assert "flag --kl=exact: value should be one of <analytic|mc>" in result.stderr
  assert not (tmp_path / "w").exists()


def test_launch_lists_experiments_and_rejects_unknown_names():
  listing = _launch("--list")
  assert listing.returncode == 0
  lines = dict(line.split(None, 1) for line in listing.stdout.strip().splitlines())
  assert lines["train_vae"].startswith("Train a VAE")
  assert lines["compare_elbos"].startswith("Compare ELBO variants")
  unknown = _launch("train_gaN")
  assert unknown.returncode != 0
  known = sorted(p.stem for p in (ROOT / "experiments").glob("*.py")
                 if p.stem not in ("__init__", "common"))
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
  results = run_experiment(compare_elbos, [
      f"--workdir={workdir}", f"--data_dir={data_dir}", "--variants=elbo,iwae_dreg=3",
      "--seeds=2", "--epochs=1", "--batch_size=32", "--hidden=16", "--latent_dim=2",
      "--ll_samples=20", "--ll_examples=10", "--snr_draws=4", "--snr_batch=8",
      "--eval_batch_size=40"])
  for name in ("config.json", "results.json", "results.md", "results.csv", "curves.png"):
    assert (workdir / name).stat().st_size > 0, name
  stored = json.load(open(workdir / "results.json"))
  for variant in ("elbo", "iwae_dreg=3"):
    for key in ("test_ll", "test_nll", "test_elbo", "test_kl", "active_units",
                "encoder_grad_snr", "decoder_grad_snr", "train_s"):
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


def test_compare_elbos_rejects_bad_variants_in_one_line(tmp_path):
  from experiments import compare_elbos  # noqa: F401  (defines the flags)
  with pytest.raises(flags.IllegalFlagValueError) as info:
    FLAGS(["compare_elbos", f"--workdir={tmp_path}", "--variants=elbo,iwae=x"])
  FLAGS.unparse_flags()
  message = str(info.value)
  assert "bad variant 'iwae=x'" in message and "iwae_dreg=K" in message
  assert "\n" not in message
