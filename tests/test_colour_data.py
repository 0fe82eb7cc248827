"""Colour images (cifar10 through TFDS mock data, 32x32x3): train_vae's conv VAE, the DCGAN,
the VQ-VAE, the conditional VAE and the autoencoders end to end, their figures in colour,
their samples scored by the data set's reference classifier; binarization refused.

TFDS mock data (``tfds.testing.mock_data``) gives random images and labels, so the numbers
mean nothing: the tests check shapes, colour, which results exist and that they are finite.
The reference classifier of the mock cifar10 is trained once per session (the cache of
tests/conftest.py) and shared by every run here.
"""

import json
import math
import os

import matplotlib.pyplot as plt
import numpy as np
import pytest

from experiments import train_ae, train_cvae, train_gan, train_vae, train_vqvae
from tests.experiment_helpers import run_experiment

SHAPE = (32, 32, 3)
EXAMPLES = 32   # per split; batch 16 (the smoke variants' 16 or 32) gives 1-2 steps per epoch


@pytest.fixture(scope="module")
def cifar10(tmp_path_factory):
  """A data_dir with cifar10 and svhn_cropped TFDS directories, and mock data for them while
  the module runs: ``sources.load("cifar10", data_dir)`` reads it through TFDS."""
  tfds = pytest.importorskip("tensorflow_datasets")
  data_dir = tmp_path_factory.mktemp("tfds")
  for name in ("cifar10", "svhn_cropped"):
    (data_dir / name).mkdir()
  with tfds.testing.mock_data(num_examples=EXAMPLES, policy=tfds.testing.MockPolicy.USE_CODE):
    yield str(data_dir)


def _run(module, data_dir, workdir, *overrides):
  name = module.__name__.rsplit(".", 1)[-1]
  results = run_experiment(module, [f"--workdir={workdir}", f"--config.data_dir={data_dir}",
                                    f"--config=experiments/configs/{name}.py:smoke",
                                    "--config.dataset=cifar10", *overrides])
  assert results["dataset"] == "cifar10" and results["data_source"] == f"tfds:{data_dir}"
  return results


def _stored(workdir) -> dict:
  with open(os.path.join(workdir, "results.json")) as f:
    return json.load(f)


def assert_colour_png(path, min_share: float = 0.01) -> None:
  """The PNG shows colour: at least ``min_share`` of its pixels have channels that differ by
  more than 8 grey levels (a grey figure, or one drawing a single channel through a grey
  colour map, has R = G = B everywhere)."""
  png = plt.imread(str(path))[..., :3]
  spread = png.max(-1) - png.min(-1)
  assert np.mean(spread > 8 / 255) > min_share, f"{path} looks grey"


def assert_scored(results: dict) -> None:
  """The samples were scored by cifar10's reference classifier: finite scores, 10 classes."""
  for key in ("sample_fd", "sample_score", "sample_class_kl", "data_fd"):
    assert math.isfinite(results[key]), (key, results[key])
  assert 1 <= results["sample_modes"] <= 10
  shares = [results[f"sample_class_share_{k}"] for k in range(10)]
  assert abs(sum(shares) - 1) < 1e-6 and "sample_class_share_10" not in results
  assert 0 <= results["classifier_test_accuracy"] <= 1


# --- train_vae: the conv VAE with a Gaussian likelihood -----------------------------------


@pytest.fixture(scope="module")
def vae_run(cifar10, tmp_path_factory):
  workdir = tmp_path_factory.mktemp("colour_vae") / "run"
  # The log-likelihood evaluator, shape-blind, runs in the (cheaper) cvae run below.
  results = _run(train_vae, cifar10, workdir, "--config.model=conv",
                 "--config.preprocess=continuous", "--config.likelihood=gaussian_learned",
                 "--config.evaluators=sample_quality", "--config.ll_samples=5000",
                 "--config.ll_examples=1000")
  return workdir, results


def test_conv_vae_on_colour_writes_its_figures_in_colour(vae_run):
  workdir, results = vae_run
  for name in ("samples.png", "reconstructions.png", "manifold.png", "latent_scatter.png"):
    assert os.path.getsize(workdir / name) > 0, name
  for name in ("samples.png", "reconstructions.png", "manifold.png"):
    assert_colour_png(workdir / name)
  config = json.load(open(workdir / "config.json"))
  assert config["model"] == "conv" and config["likelihood"] == "gaussian_learned"


def test_conv_vae_on_colour_scores_its_samples(vae_run):
  workdir, results = vae_run
  assert_scored(results)
  assert math.isfinite(results["test_elbo"]) and "test_nll" not in results
  assert _stored(workdir)["sample_fd"] == pytest.approx(results["sample_fd"])


# --- train_gan: the DCGAN ----------------------------------------------------------------


@pytest.fixture(scope="module")
def gan_run(cifar10, tmp_path_factory):
  workdir = tmp_path_factory.mktemp("colour_gan") / "run"
  return workdir, _run(train_gan, cifar10, workdir)


def test_dcgan_on_colour_draws_colour_samples_and_scores_them(gan_run):
  workdir, results = gan_run
  grids = np.load(workdir / "fixed_noise.npz")
  assert sorted(grids) == ["epoch_001", "epoch_002"]
  assert grids["epoch_002"].shape[1:] == SHAPE and grids["epoch_002"].dtype == np.uint8
  for name in ("samples.png", "scored_samples.png", "progress.png", "samples_epoch_002.png"):
    assert_colour_png(workdir / name)
  assert_scored(results)
  # The raw draws, scored beside those discriminator rejection keeps.
  assert math.isfinite(results["raw_sample_fd"]) and 1 <= results["raw_sample_modes"] <= 10


# --- train_vqvae: the VQ-VAE and its PixelCNN prior ------------------------------------------


@pytest.fixture(scope="module")
def vqvae_run(cifar10, tmp_path_factory):
  workdir = tmp_path_factory.mktemp("colour_vqvae") / "run"
  return workdir, _run(train_vqvae, cifar10, workdir, "--config.preprocess=continuous")


def test_vqvae_on_colour_codes_an_8x8_grid_and_scores_its_samples(vqvae_run):
  workdir, results = vqvae_run
  # 32x32 images, halved twice: the prior's NLL per grid over 8 x 8 positions.
  assert results["prior_bits_per_dim"] == pytest.approx(
      results["prior_test_nll"] / (8 * 8 * math.log(2)))
  notes = open(workdir / "results.md").read()
  assert "8x8 grid" in notes and "test_elbo no bound" in notes
  assert_scored(results)
  for name in ("samples.png", "reconstructions.png"):
    assert_colour_png(workdir / name)


# --- train_cvae: labels as the condition -----------------------------------------------------


@pytest.fixture(scope="module")
def cvae_run(cifar10, tmp_path_factory):
  workdir = tmp_path_factory.mktemp("colour_cvae") / "run"
  return workdir, _run(train_cvae, cifar10, workdir, "--config.preprocess=continuous",
                       "--config.likelihood=gaussian_fixed")


def test_cvae_on_colour_labels_draws_its_class_grid_and_scores_conditional_accuracy(cvae_run):
  workdir, results = cvae_run
  assert results["condition"] == "label" and results["condition_dim"] == 10
  assert 0 <= results["conditional_accuracy"] <= 1
  assert_scored(results)
  assert math.isfinite(results["test_nll"]) and results["ll_examples_used"] == 10
  for name in ("class_grid.png", "analogies.png", "reconstructions.png"):
    assert_colour_png(workdir / name)
  assert os.path.getsize(workdir / "conditional_accuracy.png") > 0


# --- train_ae: the denoising autoencoder beside a VAE ------------------------------------------


@pytest.fixture(scope="module")
def ae_run(cifar10, tmp_path_factory):
  workdir = tmp_path_factory.mktemp("colour_ae") / "run"
  return workdir, _run(train_ae, cifar10, workdir, "--config.corruption=salt_and_pepper",
                       "--config.noise_level=0.2", "--config.reconstruction=mse")


def test_autoencoders_on_colour_reconstruct_denoise_and_interpolate_in_colour(ae_run):
  workdir, results = ae_run
  for key in ("test_mse", "test_denoise_mse", "vae_test_elbo", "ae_interp_nn_dist",
              "vae_interp_nn_dist", "pixels_interp_nn_dist"):
    assert math.isfinite(results[key]), key
  for name in ("reconstructions.png", "denoising.png", "interpolations.png"):
    assert_colour_png(workdir / name)


# --- Refusals: binarization is for grey levels -------------------------------------------------


@pytest.mark.parametrize("module,overrides,dataset,mode", [
    (train_vae, [], "cifar10", "dynamic"),                 # train_vae's default preprocess
    (train_vqvae, ["--config.preprocess=static"], "cifar10", "static"),
    (train_cvae, ["--config.dataset=svhn_cropped"], "svhn_cropped", "dynamic"),
])
def test_binarizing_colour_images_is_one_clear_error_and_writes_nothing(
    cifar10, tmp_path, module, overrides, dataset, mode):
  workdir = tmp_path / "never"
  with pytest.raises(ValueError, match=(
      f"preprocess={mode}: {dataset} has colour images \\(32x32x3\\) and binarization is for "
      "grey levels \\(one channel\\); use preprocess=continuous")):
    _run(module, cifar10, workdir, *overrides)
  assert not workdir.exists()
