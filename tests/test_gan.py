"""The GAN: losses and R1 against direct formulas, the models, the two-player step, its
checkpoint, and experiments/train_gan.py end to end on tiny data."""

import json
import os

from absl import flags
import chex
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from experiments import train_gan
from genjax import checkpoint, data, models, objectives, train
from genjax.models import gan as gan_models
from tests.experiment_helpers import run_experiment, write_synthetic_mnist

FLAGS = flags.FLAGS
LATENT, WIDTH, BATCH = 4, 4, 8


def _sigmoid(x):
  return 1.0 / (1.0 + np.exp(-x))


def _reference_losses(real, fake, kind):
  """(D loss, G loss) written out with explicit sigmoids and logs, in float64."""
  sr, sf = _sigmoid(real), _sigmoid(fake)
  if kind == "hinge":
    return np.mean(np.maximum(0, 1 - real)) + np.mean(np.maximum(0, 1 + fake)), -np.mean(fake)
  d_loss = np.mean(-np.log(sr)) + np.mean(-np.log(1 - sf))
  g_loss = np.mean(np.log(1 - sf)) if kind == "minimax" else np.mean(-np.log(sf))
  return d_loss, g_loss


@pytest.mark.parametrize("kind", objectives.GAN_LOSSES)
def test_gan_losses_match_direct_formulas_and_stay_finite(kind):
  rng = np.random.default_rng(0)
  real, fake = rng.uniform(-4, 4, 5), rng.uniform(-4, 4, 7)   # unequal sizes: separate means
  d_ref, g_ref = _reference_losses(real, fake, kind)
  np.testing.assert_allclose(objectives.gan_discriminator_loss(jnp.asarray(real),
                                                               jnp.asarray(fake), kind),
                             d_ref, rtol=1e-5)
  np.testing.assert_allclose(objectives.gan_generator_loss(jnp.asarray(fake), kind), g_ref,
                             rtol=1e-5)
  # Logits far past where 1 - sigmoid rounds to 0 in float32: values and gradients finite.
  big = jnp.array([-200.0, 200.0])
  for value, grad in [jax.value_and_grad(lambda f: objectives.gan_generator_loss(f, kind))(big),
                      jax.value_and_grad(lambda r: objectives.gan_discriminator_loss(
                          r, big, kind))(big)]:
    assert np.isfinite(value) and np.all(np.isfinite(grad))


def test_bad_gan_loss_is_a_one_line_error_listing_the_kinds():
  for fn in (lambda: objectives.gan_generator_loss(jnp.zeros(2), "wasserstein"),
             lambda: objectives.gan_discriminator_loss(jnp.zeros(2), jnp.zeros(2), "wgan")):
    with pytest.raises(ValueError, match="expected one of minimax, non_saturating, hinge$"):
      fn()


def test_r1_penalty_matches_the_closed_form_input_gradient():
  # D(x) = <w, x> + c/2 ||x||^2 has grad_x D(x) = w + c x, different for every image.
  rng = np.random.default_rng(1)
  w, x, c, gamma = rng.normal(size=(3, 3, 2)), rng.normal(size=(4, 3, 3, 2)), 0.7, 2.5
  apply = lambda p, xs: (jnp.sum(p["w"] * xs, axis=(1, 2, 3))              # noqa: E731
                         + 0.5 * p["c"] * jnp.sum(xs ** 2, axis=(1, 2, 3)))
  got = objectives.r1_penalty(apply, {"w": jnp.asarray(w), "c": c}, jnp.asarray(x), gamma)
  expected = gamma / 2 * np.mean(np.sum((w + c * x) ** 2, axis=(1, 2, 3)))
  np.testing.assert_allclose(got, expected, rtol=1e-5)


@pytest.mark.parametrize("shape", [(28, 28, 1), (32, 32, 3)])
def test_generator_and_discriminator_shapes(shape):
  generator, discriminator = models.build_gan(shape, LATENT, WIDTH)
  key, z = jax.random.PRNGKey(0), jnp.zeros((3, LATENT))
  g_vars = jax.eval_shape(generator.init, key, z)   # shapes only: nothing compiles
  images = jax.eval_shape(generator.apply, g_vars, z)
  logits = jax.eval_shape(discriminator.apply, jax.eval_shape(discriminator.init, key, images),
                          images)
  chex.assert_shape(images, (3, *shape))
  chex.assert_shape(logits, (3,))
  with pytest.raises(ValueError, match=r"expected \[batch, 4\]"):
    jax.eval_shape(generator.apply, g_vars, jnp.zeros((3, LATENT + 1)))


@pytest.mark.parametrize("kernel,stride,shape", [(4, 2, (2, 7, 6, 3)), (3, 1, (2, 6, 7, 3))])
def test_patch_conv_is_flax_conv_on_the_same_parameters(kernel, stride, shape):
  x = jax.random.normal(jax.random.PRNGKey(0), shape)   # odd, even, non-square: every edge
  params = gan_models.Conv(4, kernel, stride).init(jax.random.PRNGKey(1), x)
  params = jax.tree.map(lambda v: v + 0.1, params)       # a nonzero bias too
  reference = nn.Conv(4, (kernel, kernel), strides=(stride, stride), padding="SAME")
  chex.assert_trees_all_equal_shapes(params, reference.init(jax.random.PRNGKey(1), x))
  chex.assert_trees_all_close(gan_models.Conv(4, kernel, stride).apply(params, x),
                              reference.apply(params, x), atol=1e-5)


def test_conv_transpose_2x_is_flax_conv_transpose_on_the_same_parameters():
  x = jax.random.normal(jax.random.PRNGKey(0), (2, 7, 5, 3))
  fast = gan_models.ConvTranspose2x(4)
  params = jax.tree.map(lambda v: v + 0.1, fast.init(jax.random.PRNGKey(1), x))
  reference = nn.ConvTranspose(4, (4, 4), strides=(2, 2), padding="SAME")
  chex.assert_trees_all_equal_shapes(params, reference.init(jax.random.PRNGKey(1), x))
  chex.assert_trees_all_close(fast.apply(params, x), reference.apply(params, x), atol=1e-5)


def test_build_gan_names_the_supported_image_sizes():
  for shape in [(64, 64, 3), (28, 28)]:
    with pytest.raises(ValueError, match="the GAN supports 28x28 and 32x32 images"):
      models.build_gan(shape, LATENT, WIDTH)


@pytest.fixture(scope="module")
def gan():
  """Tiny 28x28 networks, their initial state, a jitted step and one batch (R1 is
  exercised by the end-to-end run)."""
  generator, discriminator = models.build_gan((28, 28, 1), LATENT, WIDTH)
  g_params = jax.jit(generator.init)(jax.random.PRNGKey(0), jnp.zeros((1, LATENT)))["params"]
  d_params = jax.jit(discriminator.init)(jax.random.PRNGKey(1),
                                         jnp.zeros((1, 28, 28, 1)))["params"]
  g_opt, d_opt = optax.adam(1e-3, 0.5), optax.adam(2e-3, 0.5)
  state = train.create_gan_train_state(g_params, d_params, g_opt, d_opt, jax.random.PRNGKey(2))
  step_fn = lambda axis_name=None: train.make_gan_train_step(   # noqa: E731
      generator, discriminator, g_opt, d_opt, "non_saturating", 0.0, LATENT, axis_name)
  batch = {"image": jnp.asarray(data.synthetic(BATCH, 1).train_images),
           "index": jnp.arange(BATCH)}
  new_state, metrics = jax.jit(step_fn())(state, batch)
  return {"state": state, "new_state": new_state, "metrics": metrics, "step_fn": step_fn,
          "batch": batch}


def test_one_gan_step_changes_both_networks_and_stays_finite(gan):
  state, new, metrics = gan["state"], gan["new_state"], gan["metrics"]
  assert int(new.step) == 1
  chex.assert_tree_all_finite((new, metrics))
  for name in ("g_params", "d_params"):
    for path, before, after in zip(jax.tree_util.tree_leaves_with_path(getattr(state, name)),
                                   jax.tree.leaves(getattr(state, name)),
                                   jax.tree.leaves(getattr(new, name))):
      assert not np.allclose(before, after), (name, path[0])
  assert {"loss", "d_loss", "g_loss", "r1", "d_real", "d_fake", "d_grad_norm",
          "g_grad_norm"} <= set(metrics)
  assert 0 < metrics["d_real"] < 1 and 0 < metrics["d_fake"] < 1 and metrics["r1"] == 0
  np.testing.assert_allclose(metrics["loss"], metrics["d_loss"] + metrics["g_loss"], rtol=1e-6)
  assert set(new.params) == {"generator", "discriminator"}


def test_gan_step_split_over_two_devices_equals_one_device(gan):
  # vmap with an axis name stands in for pmap: each half-batch keeps its examples' indices.
  halves = jax.tree.map(lambda v: v.reshape(2, BATCH // 2, *v.shape[1:]), gan["batch"])
  split = jax.jit(jax.vmap(gan["step_fn"]("batch"), in_axes=(None, 0), axis_name="batch"))
  states, metrics = split(gan["state"], halves)
  for replica in range(2):
    chex.assert_trees_all_close(jax.tree.map(lambda x: x[replica], states), gan["new_state"],
                                rtol=1e-4, atol=1e-6)
  chex.assert_trees_all_close(jax.tree.map(lambda x: x[0], metrics), gan["metrics"],
                              rtol=1e-4, atol=1e-6)


def test_gan_state_checkpoint_round_trips_both_networks_and_optimizers(gan, tmp_path):
  manager = checkpoint.make_manager(str(tmp_path))
  checkpoint.save(manager, gan["new_state"], 1)
  restored, step = checkpoint.restore_latest(checkpoint.make_manager(str(tmp_path)), gan["state"])
  assert step == 1 and isinstance(restored, train.GANTrainState)
  chex.assert_trees_all_equal(restored, jax.device_get(gan["new_state"]))
  chex.assert_trees_all_equal_dtypes(restored, gan["new_state"])


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
  """mnist.npz holding the ten-class synthetic blobs: 64 train, 32 test images."""
  return write_synthetic_mnist(tmp_path_factory.mktemp("gan_blobs"), 64, 32, seed=1)


def _run(argv):
  return run_experiment(train_gan, argv)


def test_train_gan_end_to_end_writes_every_file_and_resumes(data_dir, tmp_path):
  workdir = str(tmp_path / "gan")
  argv = [f"--workdir={workdir}", f"--data_dir={data_dir}", "--epochs=2", "--batch_size=16",
          f"--latent_dim={LATENT}", f"--gan_width={WIDTH}", "--steps_per_chunk=2",
          "--checkpoint_every=1", "--gan_loss=hinge", "--r1_gamma=1", "--quality_samples=64"]
  results = _run(argv)
  for name in ("config.json", "metrics.jsonl", "samples_epoch_001.png", "samples_epoch_002.png",
               "samples.png", "progress.png", "curves.png", "fixed_noise.npz", "results.json",
               "results.md"):
    assert os.path.getsize(os.path.join(workdir, name)) > 0, name
  assert sorted(os.listdir(os.path.join(workdir, "checkpoints"))) == ["4", "8"]
  stored = json.load(open(os.path.join(workdir, "results.json")))
  for key in ("d_loss", "g_loss", "d_real", "d_fake", "r1", "test_d_real", "fixed_d_fake",
              "sample_fd", "sample_score", "classifier_test_accuracy", "examples_per_s",
              "wall_s", "train_s"):
    assert np.isfinite(stored[key]), key
  assert stored["steps"] == 8 and stored["epochs"] == 2 and stored["r1"] > 0
  assert stored["num_params"] == stored["g_num_params"] + stored["d_num_params"]
  assert {"dataset", "data_source", "device"} <= set(stored)
  config = json.load(open(os.path.join(workdir, "config.json")))
  assert config["preprocess"] == "continuous" and config["gan_loss"] == "hinge"
  records = [json.loads(line) for line in open(os.path.join(workdir, "metrics.jsonl"))]
  assert [r["step"] for r in records if "d_loss" in r] == [2, 4, 6, 8]
  assert [r["epoch"] for r in records if "test_d_real" in r] == [1, 2]
  grids = np.load(os.path.join(workdir, "fixed_noise.npz"))
  assert sorted(grids) == ["epoch_001", "epoch_002"] and grids["epoch_001"].shape == (64, 28, 28, 1)

  # A rerun resumes at the last checkpoint: no new chunks, the same final networks.
  again = _run(argv)
  assert len(open(os.path.join(workdir, "metrics.jsonl")).read().splitlines()) == len(records)
  assert again["params_digest"] == results["params_digest"]
  assert again["d_loss"] == results["d_loss"]


def test_bad_gan_loss_flag_names_the_flag_and_allowed_values(tmp_path):
  with pytest.raises(flags.IllegalFlagValueError,
                     match="flag --gan_loss=wgan: value should be one of "
                           "<minimax|non_saturating|hinge>"):
    FLAGS(["train_gan", f"--workdir={tmp_path}", "--gan_loss=wgan"])
  FLAGS.unparse_flags()
