"""The GAN: the models (shapes, parameter names; their convolution layers are tested in
test_models_layers.py), and experiments/train_gan.py end to end on tiny data."""

import json
import os

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from experiments import train_gan
from genjax import models
from tests.experiment_helpers import run_experiment, write_synthetic_mnist

LATENT, WIDTH = 4, 4


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


def _param_shapes(module, x):
  params = jax.eval_shape(module.init, jax.random.PRNGKey(0), x)["params"]
  return {jax.tree_util.keystr(path): leaf.shape
          for path, leaf in jax.tree_util.tree_flatten_with_path(params)[0]}


def test_parameter_names_and_shapes_are_those_of_earlier_checkpoints():
  """The layers moved to models/layers.py; the GAN's parameter tree did not change."""
  generator, discriminator = models.build_gan((28, 28, 1), LATENT, WIDTH)
  z, x = jnp.zeros((2, LATENT)), jnp.zeros((2, 28, 28, 1))
  assert _param_shapes(generator, z) == {
      "['ConvTranspose2x_0']['bias']": (4,), "['ConvTranspose2x_0']['kernel']": (4, 4, 8, 4),
      "['ConvTranspose2x_1']['bias']": (1,), "['ConvTranspose2x_1']['kernel']": (4, 4, 4, 1),
      "['Dense_0']['bias']": (392,), "['Dense_0']['kernel']": (4, 392),
      "['LayerNorm_0']['bias']": (392,), "['LayerNorm_0']['scale']": (392,),
      "['LayerNorm_1']['bias']": (4,), "['LayerNorm_1']['scale']": (4,)}
  assert _param_shapes(discriminator, x) == {
      "['Conv_0']['bias']": (4,), "['Conv_0']['kernel']": (4, 4, 1, 4),
      "['Conv_1']['bias']": (8,), "['Conv_1']['kernel']": (4, 4, 4, 8),
      "['Dense_0']['bias']": (1,), "['Dense_0']['kernel']": (392, 1)}


@pytest.mark.parametrize("norm", models.gan.GENERATOR_NORMS)
def test_generator_norms_keep_each_example_independent_and_the_parameter_names(norm):
  """Every norm is per example (a sample does not depend on the rest of the batch); "map"
  keeps the parameter tree of "channels" (so either loads the other's checkpoint)."""
  generator = models.build_gan((28, 28, 1), LATENT, WIDTH)[0].clone(norm=norm)
  z = jax.random.normal(jax.random.PRNGKey(1), (5, LATENT))
  variables = generator.init(jax.random.PRNGKey(0), z)
  np.testing.assert_allclose(generator.apply(variables, z)[:2], generator.apply(variables, z[:2]),
                             atol=1e-6)
  if norm == "map":
    channels = generator.clone(norm="channels")
    assert _param_shapes(generator, z) == _param_shapes(channels, z)
    assert not np.allclose(generator.apply(variables, z), channels.apply(variables, z))
  with pytest.raises(ValueError, match="expected one of channels, map, none"):
    generator.clone(norm="batch").init(jax.random.PRNGKey(0), z)


def test_generator_code_is_the_one_hot_argmax_of_zs_first_coordinates():
  """categories=K: G(z) is a plain generator of K more inputs applied to [z, one_hot(argmax
  z[:, :K])], with the same parameters; K past latent_dim is an error naming both."""
  coded = models.build_gan((28, 28, 1), LATENT, WIDTH, categories=3)[0]
  plain = models.Generator((28, 28, 1), LATENT + 3, WIDTH)
  z = jax.random.normal(jax.random.PRNGKey(1), (6, LATENT))
  variables = coded.init(jax.random.PRNGKey(0), z)
  assert _param_shapes(coded, z) == _param_shapes(plain, jnp.zeros((1, LATENT + 3)))
  code = np.eye(3)[np.argmax(np.asarray(z)[:, :3], axis=1)]
  np.testing.assert_allclose(coded.apply(variables, z),
                             plain.apply(variables, jnp.concatenate([z, code], axis=1)),
                             atol=1e-6)
  # The code changes the image: z whose largest first coordinate moves from 0 to 1.
  swapped = z.at[:, 1].set(jnp.abs(z).max() + 1.0)
  assert not np.allclose(coded.apply(variables, swapped),
                         plain.apply(variables, jnp.concatenate([swapped, code], axis=1)))
  with pytest.raises(ValueError, match="categories=5: expected 0 .* to latent_dim=4"):
    models.build_gan((28, 28, 1), LATENT, WIDTH, categories=5)


def test_most_real_keeps_the_same_share_of_each_code_its_highest_logits():
  rng = np.random.default_rng(3)
  logits, codes = rng.normal(size=40), np.repeat([0, 1, 2, 3], [16, 8, 8, 8])
  kept = models.gan.most_real(logits, codes, 20)
  assert len(kept) == 20 and np.all(np.diff(kept) > 0)
  for code, count in [(0, 8), (1, 4), (2, 4), (3, 4)]:   # half of each code
    members = np.flatnonzero(codes == code)
    best = members[np.argsort(-logits[members])[:count]]
    assert set(kept[codes[kept] == code]) == set(best), code
  # One code: the num largest logits.
  np.testing.assert_array_equal(models.gan.most_real(logits, np.zeros(40, int), 5),
                                np.sort(np.argsort(-logits)[:5]))
  with pytest.raises(ValueError, match="keep num=41 of 40 candidates"):
    models.gan.most_real(logits, codes, 41)


def test_sampling_by_discriminator_rejection_raises_d_and_keeps_the_codes_share():
  generator, discriminator = models.build_gan((28, 28, 1), LATENT, WIDTH, categories=2)
  g_params = jax.jit(generator.init)(jax.random.PRNGKey(0), jnp.zeros((1, LATENT)))["params"]
  d_params = jax.jit(discriminator.init)(jax.random.PRNGKey(1),
                                         jnp.zeros((1, 28, 28, 1)))["params"]
  rng, num = jax.random.PRNGKey(2), 64
  raw = train_gan.generate(generator, g_params, rng, num, batch_size=32)
  kept, first = train_gan.generate(generator, g_params, rng, num, batch_size=32,
                                   discriminator=discriminator, d_params=d_params, keep=0.5,
                                   with_raw=True)
  np.testing.assert_allclose(first, raw, atol=1e-5)
  # The same draws plus as many more: the kept are the best half of the 128 candidates.
  z = jnp.concatenate([jax.random.normal(jax.random.fold_in(rng, i), (32, LATENT))
                       for i in range(4)])
  candidates = generator.apply({"params": g_params}, z)
  np.testing.assert_allclose(candidates[:num], raw, atol=1e-4)
  logits = np.asarray(discriminator.apply({"params": d_params}, candidates))
  choice = models.gan.most_real(logits, np.asarray(models.gan.code_of(z, 2)), num)
  np.testing.assert_allclose(kept, candidates[choice], atol=1e-4)
  assert logits[choice].mean() > logits.mean()
  with pytest.raises(ValueError, match="keep=0.5 < 1 ranks the draws by the discriminator"):
    train_gan.generate(generator, g_params, rng, num, batch_size=32, keep=0.5)


def test_curves_show_each_players_gradient_norm(tmp_path):
  """curves.png: losses, sigmoid(D) and the gradient norms of D and G (the diagnostics of a
  run whose discriminator wins)."""
  records = [{"step": s, "d_loss": 1.0, "g_loss": 2.0, "r1": 0.0, "d_real": 0.6, "d_fake": 0.4,
              "d_grad_norm": 10.0 * s, "g_grad_norm": 1.0 / s} for s in (1, 2, 3)]
  records.append({"step": 3, "epoch": 1, "test_d_real": 0.7, "fixed_d_fake": 0.3})
  path = tmp_path / "curves.png"
  drawn = train_gan._save_curves(str(path), records)
  assert drawn == {"loss": ["d_loss", "g_loss"],
                   "sigmoid(D)": ["d_real", "d_fake", "test_d_real", "fixed_d_fake"],
                   "gradient norm": ["d_grad_norm", "g_grad_norm"]}
  assert path.stat().st_size > 0
  for r in records[:3]:
    r["g_top_k"] = 0.5
  assert train_gan._save_curves(str(path), records)["fraction of G's batch in its loss"] == [
      "g_top_k"]


def test_build_gan_names_the_supported_image_sizes():
  for shape in [(64, 64, 3), (28, 28)]:
    with pytest.raises(ValueError, match="the GAN supports 28x28 and 32x32 images"):
      models.build_gan(shape, LATENT, WIDTH)


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
  """mnist.npz holding the ten-class synthetic blobs: 64 train, 32 test images."""
  return write_synthetic_mnist(tmp_path_factory.mktemp("gan_blobs"), 64, 32, seed=1)


def _run(argv):
  return run_experiment(train_gan, argv)


def test_train_gan_end_to_end_writes_every_file_and_resumes(data_dir, tmp_path):
  workdir = str(tmp_path / "gan")
  # The smoke config: 2 epochs at batch 16, latent 4, width 4, 2 steps per chunk.
  argv = [f"--workdir={workdir}", f"--config.data_dir={data_dir}",
          "--config=experiments/configs/train_gan.py:smoke", f"--config.latent_dim={LATENT}",
          f"--config.gan_width={WIDTH}", "--config.gan_d_width=6", "--config.gan_loss=hinge",
          "--config.r1_gamma=1"]
  with pytest.raises(ValueError, match=r"config.gan_categories=5: expected 0 \(no code\) to "
                                       r"config.latent_dim=4"):
    _run([*argv, "--config.gan_categories=5"])
  with pytest.raises(ValueError, match=r"config.gan_top_k=0.0: expected a number in \(0, 1\]"):
    _run([*argv, "--config.gan_top_k=0"])
  with pytest.raises(ValueError, match="config.gan_top_k_decay=0.7 is not read: train_gan reads "
                                       "gan_top_k_decay only when gan_top_k < 1"):
    _run([*argv, "--config.gan_top_k=1", "--config.gan_top_k_decay=0.7"])
  assert not os.path.exists(workdir)
  results = _run(argv)
  for name in ("config.json", "metrics.jsonl", "samples_epoch_001.png", "samples_epoch_002.png",
               "samples.png", "scored_samples.png", "progress.png", "curves.png",
               "fixed_noise.npz", "results.json", "results.md"):
    assert os.path.getsize(os.path.join(workdir, name)) > 0, name
  assert sorted(os.listdir(os.path.join(workdir, "checkpoints"))) == ["4", "8"]
  stored = json.load(open(os.path.join(workdir, "results.json")))
  for key in ("d_loss", "g_loss", "d_real", "d_fake", "r1", "test_d_real", "fixed_d_fake",
              "sample_fd", "sample_score", "classifier_test_accuracy", "examples_per_s",
              "wall_s", "train_s", "raw_sample_fd", "raw_sample_score"):
    assert np.isfinite(stored[key]), key
  assert stored["steps"] == 8 and stored["epochs"] == 2 and stored["r1"] > 0
  assert stored["num_params"] == stored["g_num_params"] + stored["d_num_params"]
  # gan_d_width=6: the discriminator's convolutions have 6 and 12 channels, G keeps 4 and 8.
  assert stored["d_num_params"] == (4 * 4 * 1 * 6 + 6) + (4 * 4 * 6 * 12 + 12) + (7 * 7 * 12 + 1)
  # The smoke config's 3-way code: G's dense layer reads latent + 3 inputs.
  assert stored["g_num_params"] == sum(np.prod(s) for s in _param_shapes(
      models.build_gan((28, 28, 1), LATENT + 3, WIDTH)[0], jnp.zeros((1, LATENT + 3))).values())
  assert {"dataset", "data_source", "device"} <= set(stored)
  config = json.load(open(os.path.join(workdir, "config.json")))
  assert config["preprocess"] == "continuous" and config["gan_loss"] == "hinge"
  records = [json.loads(line) for line in open(os.path.join(workdir, "metrics.jsonl"))]
  assert [r["step"] for r in records if "d_loss" in r] == [2, 4, 6, 8]
  # The smoke config's top-k: G's loss keeps the whole batch in epoch 1, half in epoch 2.
  assert [r["g_top_k"] for r in records if "d_loss" in r] == [1.0, 1.0, 0.5, 0.5]
  assert all(np.isfinite(r["d_grad_norm"]) and np.isfinite(r["g_grad_norm"])
             for r in records if "d_loss" in r)
  assert [r["epoch"] for r in records if "test_d_real" in r] == [1, 2]
  grids = np.load(os.path.join(workdir, "fixed_noise.npz"))
  assert sorted(grids) == ["epoch_001", "epoch_002"] and grids["epoch_001"].shape == (64, 28, 28, 1)

  # A rerun resumes at the last checkpoint: no new chunks, the same final networks.
  again = _run(argv)
  assert len(open(os.path.join(workdir, "metrics.jsonl")).read().splitlines()) == len(records)
  assert again["params_digest"] == results["params_digest"]
  assert again["d_loss"] == results["d_loss"]
