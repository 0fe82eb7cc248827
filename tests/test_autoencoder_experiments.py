"""train_ae, anomaly and semi_supervised end to end on tiny labelled data, and their refusals."""

import json
import os

import numpy as np
import pytest

from experiments import anomaly, semi_supervised, train_ae
from tests.experiment_helpers import run_experiment as _run, write_synthetic_mnist

TINY = ["--config.epochs=2", "--config.batch_size=32", "--config.hidden=16",
        "--config.latent_dim=2", "--config.checkpoint_every=1", "--config.eval_batch_size=40"]
EVAL = ["--config.eval_every=1"]   # anomaly has no evaluation during training


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
  """mnist.npz holding the ten-class synthetic blobs: 320 train, 80 test images."""
  return write_synthetic_mnist(tmp_path_factory.mktemp("blobs"), 320, 80, seed=1)


def _files(workdir, *names):
  for name in names:
    assert os.path.getsize(os.path.join(workdir, name)) > 0, name


def test_train_ae_trains_a_dae_beside_a_vae_and_resumes(data_dir, tmp_path):
  workdir = str(tmp_path / "ae")
  argv = [f"--workdir={workdir}", f"--config.data_dir={data_dir}", *TINY, *EVAL,
          "--config.corruption=masking", "--config.noise_level=0.5",
          "--config.interpolation_pairs=3", "--config.interpolation_steps=4"]
  results = _run(train_ae, argv)
  _files(workdir, "config.json", "metrics.jsonl", "results.json", "results.md",
         "reconstructions.png", "denoising.png", "interpolations.png", "vae/metrics.jsonl")
  stored = json.load(open(os.path.join(workdir, "results.json")))
  for key in ("test_mse", "test_denoise_mse", "test_noisy_mse", "test_recon", "vae_test_elbo",
              "ae_interp_nn_dist", "vae_interp_nn_dist", "pixels_interp_nn_dist"):
    assert np.isfinite(stored[key]), key
  assert stored["test_noisy_mse"] > 0 and stored["steps"] == 2 * (320 // 32)
  assert json.load(open(os.path.join(workdir, "config.json")))["preprocess"] == "continuous"
  assert sorted(os.listdir(os.path.join(workdir, "checkpoints"))) == ["10", "20"]
  # A rerun resumes both models at their last checkpoint: the same numbers, no new chunks.
  lines = len(open(os.path.join(workdir, "metrics.jsonl")).read().splitlines())
  again = _run(train_ae, argv)
  assert len(open(os.path.join(workdir, "metrics.jsonl")).read().splitlines()) == lines
  for key in ("test_mse", "vae_test_elbo", "ae_interp_nn_dist"):
    assert again[key] == results[key], key


def test_train_ae_refuses_a_bad_noise_level_before_writing(data_dir, tmp_path):
  with pytest.raises(ValueError, match=r"noise_level=1.5: the pixel rate of "
                                       r"corruption=salt_and_pepper must be in \[0, 1\]"):
    _run(train_ae, [f"--workdir={tmp_path / 'w'}", f"--config.data_dir={data_dir}", *TINY,
                    *EVAL, "--config.corruption=salt_and_pepper", "--config.noise_level=1.5"])
  assert not (tmp_path / "w").exists()


def test_anomaly_reports_auroc_and_ap_per_held_out_class(data_dir, tmp_path):
  workdir = str(tmp_path / "an")
  results = _run(anomaly, [f"--workdir={workdir}", f"--config.data_dir={data_dir}", *TINY,
                           "--config.holdout_classes=3,8", "--config.score_samples=2"])
  _files(workdir, "results.json", "results.md", "scores_holdout3.png", "scores_holdout8.png",
         "holdout3/ae/metrics.jsonl", "holdout8/vae/metrics.jsonl")
  stored = json.load(open(os.path.join(workdir, "results.json")))
  for c in ("holdout3", "holdout8", "mean"):
    for score in anomaly.SCORES:
      assert 0 <= stored[f"{c}/{score}_auroc"] <= 1 and 0 < stored[f"{c}/{score}_ap"] <= 1
  np.testing.assert_allclose(
      stored["mean/vae_elbo_auroc"],
      (stored["holdout3/vae_elbo_auroc"] + stored["holdout8/vae_elbo_auroc"]) / 2)
  assert results["holdout3/ae_recon_auroc"] == stored["holdout3/ae_recon_auroc"]
  assert "| mean |" in open(os.path.join(workdir, "results.md")).read()


def test_anomaly_refuses_an_unknown_class_before_writing(data_dir, tmp_path):
  with pytest.raises(ValueError, match=r"config.holdout_classes=12: no such class in "
                                       r"mnist \(classes 0..9\)"):
    _run(anomaly, [f"--workdir={tmp_path / 'w'}", f"--config.data_dir={data_dir}", *TINY,
                   "--config.holdout_classes=1,12"])
  assert not (tmp_path / "w").exists()


def test_semi_supervised_compares_every_method_over_seeds(data_dir, tmp_path):
  workdir = str(tmp_path / "ss")
  argv = [f"--workdir={workdir}", f"--config.data_dir={data_dir}", *TINY, *EVAL,
          "--config.epochs=1", "--config.labels_per_class=2", "--config.seeds=2",
          "--config.finetune_steps=4", "--config.finetune_batch=8"]
  results = _run(semi_supervised, argv)
  stored = json.load(open(os.path.join(workdir, "results.json")))
  keys = ["scratch", "ae_finetune", "ae_probe", "dae_finetune", "dae_probe", "vae_finetune",
          "vae_probe", "m2"]
  for key in keys:
    assert 0 <= stored[f"n2/{key}_error"] <= 1 and stored[f"n2/{key}_error_std"] >= 0, key
  assert results == stored
  table = open(os.path.join(workdir, "results.md")).read()
  assert "| M2, as reported by Kingma et al. 2014 | — |" in table
  _files(workdir, "pretrain/vae/metrics.jsonl", "m2/n2/seed1/metrics.jsonl")
  # Each run's result is cached: a rerun reuses them and reports the same errors.
  runs = sorted(os.listdir(os.path.join(workdir, "finetune", "n2", "seed0")))
  assert runs == sorted(f"{k}.json" for k in keys if k != "m2")
  again = _run(semi_supervised, argv)
  assert {k: again[k] for k in stored if "error" in k} == {k: stored[k] for k in stored
                                                           if "error" in k}


def test_semi_supervised_refuses_more_labels_than_a_class_has(data_dir, tmp_path):
  with pytest.raises(ValueError, match=r"labels_per_class=200: class \d has only \d+ "
                                       r"training examples"):
    _run(semi_supervised, [f"--workdir={tmp_path / 'w'}", f"--config.data_dir={data_dir}",
                           *TINY, "--config.labels_per_class=10,200"])
  assert not (tmp_path / "w").exists()
