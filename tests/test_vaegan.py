"""The VAE-GAN (Larsen et al. 2016): models/vaegan.py, losses/vaegan.py (each term against
an independent numpy computation; each player's gradient from its own terms only), its
step on one device and split over two, and experiments/train_vaegan.py end to end."""

import functools
import json
import os
import types

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from experiments import train_vaegan
from experiments.framework import configuration
from genjax import models
from genjax.losses import vaegan as L
from genjax.models import layers, vaegan
from genjax.training import state as train_state
from genjax.training import step as train_step
from tests.experiment_helpers import run_experiment, write_synthetic_mnist

LATENT, HIDDEN, WIDTH, BATCH, LAYER = 4, (8,), 4, 4, 2


def _np_softplus(v):
  return np.logaddexp(0.0, v)


@pytest.fixture(scope="module")
def native_convs():
  """XLA's native convolutions while this module's functions are traced: they compile
  several times faster on the CPU than the patch form (``layers.implementation()``), which
  computes the same function (tests/test_models_layers.py); what these tests check, the
  losses and which parameters their gradients reach, does not depend on it. The end-to-end
  run keeps the default."""
  old = os.environ.get(layers.ENV_VAR)
  os.environ[layers.ENV_VAR] = "native"
  yield
  if old is None:
    os.environ.pop(layers.ENV_VAR)
  else:
    os.environ[layers.ENV_VAR] = old


@pytest.fixture(scope="module")
def vg(native_convs):
  """A tiny 28x28 VAE-GAN, its parameters, a batch and a key; the surrogate's gradient at
  two gammas, and each player's loss as a function of that player's parameters alone."""
  del native_convs
  model = models.build_vaegan((28, 28, 1), LATENT, HIDDEN, WIDTH)
  params = jax.jit(model.init)(jax.random.PRNGKey(0), jnp.zeros((1, 28, 28, 1)))["params"]
  x = jax.random.uniform(jax.random.PRNGKey(1), (BATCH, 28, 28, 1))
  rng = jax.random.PRNGKey(2)

  @functools.lru_cache(maxsize=None)
  def surrogate_grads(gamma):
    loss = L.make_vaegan_loss(model, gamma, LAYER)
    return jax.jit(jax.grad(lambda p: loss(p, {"image": x}, rng), has_aux=True))

  def own_loss(player, gamma):
    """L_player as a function of that player's parameters, the others held as constants
    (no stop_gradient anywhere): the reference for the surrogate's gradient."""
    def f(theta):
      terms = L.vaegan_terms(model, {**params, player: theta}, x, rng, LAYER)
      return L.player_losses(terms, gamma)[player]
    return f

  return types.SimpleNamespace(model=model, params=params, x=x, rng=rng,
                               surrogate_grads=surrogate_grads, own_loss=own_loss,
                               grads_1=surrogate_grads(1.0)(params),
                               grads_10=surrogate_grads(10.0)(params))


@pytest.mark.parametrize("shape", [(28, 28, 1), (32, 32, 3)])
def test_shapes_and_parameter_entries(shape):
  model = models.build_vaegan(shape, LATENT, HIDDEN, WIDTH)
  x = jnp.zeros((3, *shape))
  variables = jax.eval_shape(model.init, jax.random.PRNGKey(0), x)   # shapes only
  assert sorted(variables["params"]) == sorted(vaegan.PLAYERS)
  apply = lambda method, *a: jax.eval_shape(   # noqa: E731
      lambda v, *b: model.apply(v, *b, method=method), variables, *a)
  q = apply(model.posterior, x)
  chex.assert_shape((q.mean, q.log_var), (3, LATENT))
  chex.assert_shape(apply(model.decode, jnp.zeros((3, LATENT))), (3, *shape))
  logits, (h1, h2) = apply(model.discriminate, x)
  h, w = shape[:2]
  chex.assert_shape(logits, (3,))
  chex.assert_shape(h1, (3, h // 2, w // 2, WIDTH))
  chex.assert_shape(h2, (3, h // 4, w // 4, 2 * WIDTH))
  with pytest.raises(ValueError, match="the GAN supports 28x28 and 32x32 images"):
    models.build_vaegan((64, 64, 3), LATENT, HIDDEN, WIDTH)


def test_the_discriminator_with_features_is_the_dcgans_discriminator(vg):
  """Same parameter tree as train_gan's, same logits with or without its features."""
  d_params = vg.params["discriminator"]
  _, gan_discriminator = models.build_gan((28, 28, 1), LATENT, WIDTH)
  expected = jax.eval_shape(gan_discriminator.init, jax.random.PRNGKey(0), vg.x)["params"]
  chex.assert_trees_all_equal_shapes(d_params, expected)
  logits = gan_discriminator.apply({"params": d_params}, vg.x)
  with_features, _ = gan_discriminator.apply({"params": d_params}, vg.x, return_features=True)
  chex.assert_trees_all_close(logits, with_features, rtol=1e-6)


@pytest.mark.parametrize("variance", [1.0, 0.25])
def test_feature_nll_is_the_gaussian_negative_log_likelihood(variance):
  a, b = np.random.default_rng(0).normal(size=(2, 3, 5, 5, 6)).astype(np.float32)
  expected = 0.5 * np.sum((a - b) ** 2 / variance + np.log(2 * np.pi * variance), axis=(1, 2, 3))
  np.testing.assert_allclose(L.feature_nll(jnp.asarray(a), jnp.asarray(b), variance), expected,
                             rtol=1e-5)


def test_gan_losses_match_the_log_sigmoid_formulas():
  real, recon, prior = np.random.default_rng(1).normal(size=(3, 7)) * 3
  log_d = lambda l: -_np_softplus(-l)              # log sigmoid(l)    # noqa: E731
  log_1md = lambda l: -_np_softplus(l)             # log(1 - sigmoid(l))    # noqa: E731
  l_gan = np.mean(log_d(real)) + np.mean(log_1md(recon)) + np.mean(log_1md(prior))
  np.testing.assert_allclose(L.discriminator_loss(real, recon, prior), -l_gan, rtol=1e-5)
  np.testing.assert_allclose(L.decoder_gan_loss(recon, prior),
                             -np.mean(log_d(recon)) - np.mean(log_d(prior)), rtol=1e-5)


def test_terms_match_the_closed_form_kl_and_the_features_in_numpy(vg):
  model, x = vg.model, vg.x
  # Shift q's mean and log-variance heads so the KL is far from 0 (and from float32 noise).
  heads = {"mean": 1.5, "log_var": -1.0}
  encoder = {k: ({**v, "bias": v["bias"] + heads[k]} if k in heads else v)
             for k, v in vg.params["encoder"].items()}
  params = {**vg.params, "encoder": encoder}
  terms = L.vaegan_terms(model, params, x, vg.rng, LAYER)
  mean, log_var = model.apply({"params": params}, x, method=lambda m, v: m.encoder(v))
  mean, log_var = np.asarray(mean, np.float64), np.asarray(log_var, np.float64)
  kl = 0.5 * np.sum(mean ** 2 + np.exp(log_var) - 1.0 - log_var, axis=-1)
  np.testing.assert_allclose(terms["kl"], kl, rtol=1e-5)
  features = lambda images: np.asarray(   # noqa: E731
      model.apply({"params": params}, images, method=model.discriminate)[1][LAYER - 1])
  diff = features(x) - features(terms["recon"])
  expected = 0.5 * np.sum(diff ** 2 + np.log(2 * np.pi), axis=(1, 2, 3))
  np.testing.assert_allclose(terms["feature_nll"], expected, rtol=1e-5)
  np.testing.assert_allclose(terms["pixel_sq_error"],
                             np.sum((np.asarray(x) - np.asarray(terms["recon"])) ** 2,
                                    axis=(1, 2, 3)), rtol=1e-5)
  # Algorithm 1 at gamma = 1: the encoder's loss is KL + L_llike.
  losses = L.player_losses(terms, 1.0)
  np.testing.assert_allclose(losses["encoder"], np.mean(kl) + np.mean(expected), rtol=1e-5)


@pytest.mark.parametrize("player", vaegan.PLAYERS)
def test_each_players_gradient_is_that_of_its_own_loss(vg, player):
  # At gamma = 10 a leak of the encoder's L_llike into the decoder would add 10% to its
  # largest term; float32 sums in another order differ by ~1e-5 of entries of size ~1.
  grads, metrics = vg.grads_10
  reference = jax.jit(jax.grad(vg.own_loss(player, 10.0)))(vg.params[player])
  chex.assert_trees_all_close(grads[player], reference, rtol=1e-3, atol=1e-4)
  assert float(metrics[{"encoder": "encoder_loss", "decoder": "decoder_loss",
                        "discriminator": "d_loss"}[player]]) == pytest.approx(
      float(vg.own_loss(player, 10.0)(vg.params[player])), rel=1e-5)


def _changed(a, b) -> bool:
  return not all(np.allclose(u, v, rtol=1e-4, atol=1e-7)
                 for u, v in zip(jax.tree.leaves(a), jax.tree.leaves(b)))


def test_gamma_reaches_the_decoder_only(vg):
  """gamma weighs L_llike in the decoder's loss: the encoder's and the discriminator's
  gradients do not change with it (the discriminator gets no L_llike at all)."""
  (g1, _), (g10, _) = vg.grads_1, vg.grads_10
  chex.assert_trees_all_close(g1["encoder"], g10["encoder"], rtol=1e-5, atol=1e-7)
  chex.assert_trees_all_close(g1["discriminator"], g10["discriminator"], rtol=1e-5, atol=1e-7)
  assert _changed(g1["decoder"], g10["decoder"])
  # L_llike does depend on the discriminator's parameters: it is stopped, not absent.
  llike = lambda psi: jnp.mean(L.vaegan_terms(   # noqa: E731
      vg.model, {**vg.params, "discriminator": psi}, vg.x, vg.rng, LAYER)["feature_nll"])
  assert optax_norm(jax.grad(llike)(vg.params["discriminator"])) > 1e-3


def optax_norm(tree) -> float:
  return float(np.sqrt(sum(np.sum(np.square(v)) for v in jax.tree.leaves(tree))))


def test_the_gan_terms_do_not_reach_the_encoder(vg):
  """Scaling the discriminator's logit layer changes every GAN term and leaves Dis_l (the
  layer below it) alone: the encoder's gradient stays, the decoder's moves."""
  scaled = dict(vg.params)
  scaled["discriminator"] = {**vg.params["discriminator"],
                             "Dense_0": jax.tree.map(lambda w: 5.0 * w,
                                                     vg.params["discriminator"]["Dense_0"])}
  grads, metrics = vg.surrogate_grads(1.0)(scaled)
  (base, base_metrics) = vg.grads_1
  assert abs(float(metrics["d_loss"]) - float(base_metrics["d_loss"])) > 1e-3
  chex.assert_trees_all_close(grads["encoder"], base["encoder"], rtol=1e-5, atol=1e-7)
  assert _changed(grads["decoder"], base["decoder"])


def test_bad_settings_name_the_field():
  with pytest.raises(ValueError, match="feature_layer=3: expected one of 1, 2"):
    L.make_vaegan_loss(None, 1.0, 3)
  with pytest.raises(ValueError, match="vaegan_gamma=-1.0: expected a number >= 0"):
    L.make_vaegan_loss(None, -1.0, 2)


def test_config_refuses_a_bad_feature_layer(tmp_path):
  with pytest.raises(configuration.ConfigError,
                     match=r"config.feature_layer=3: expected an integer in \[1, 2\]"):
    configuration.parse("train_vaegan", [f"--workdir={tmp_path}", "--config.feature_layer=3"])
  with pytest.raises(configuration.ConfigError, match="config.vaegan_gamma: train_gan has no "
                                                      "such field"):
    configuration.parse("train_gan", [f"--workdir={tmp_path}", "--config.vaegan_gamma=1"])


def _optimizer(e_lr):
  rates = types.SimpleNamespace(e_learning_rate=e_lr, g_learning_rate=1e-3,
                                d_learning_rate=2e-3)
  return train_vaegan.make_optimizer(rates)


def test_one_step_updates_each_player_with_its_own_adam_and_splits_over_devices(vg):
  batch = {"image": vg.x, "index": jnp.arange(BATCH)}
  loss = L.make_vaegan_loss(vg.model, 1.0, LAYER)
  optimizer = _optimizer(0.0)     # the encoder's Adam at rate 0: only it stands still
  state = train_state.create_train_state(vg.params, optimizer, jax.random.PRNGKey(3))
  step = lambda axis_name=None: train_step.make_train_step(loss, optimizer, axis_name)  # noqa: E731
  new, metrics = jax.jit(step())(state, batch)
  chex.assert_tree_all_finite((new, metrics))
  chex.assert_trees_all_equal(new.params["encoder"], state.params["encoder"])
  assert _changed(new.params["decoder"], state.params["decoder"])
  assert _changed(new.params["discriminator"], state.params["discriminator"])
  # vmap with an axis name stands in for pmap: each half-batch keeps its examples' indices.
  halves = jax.tree.map(lambda v: v.reshape(2, BATCH // 2, *v.shape[1:]), batch)
  split = jax.jit(jax.vmap(step("batch"), in_axes=(None, 0), axis_name="batch"))
  states, split_metrics = split(state, halves)
  for replica in range(2):
    chex.assert_trees_all_close(jax.tree.map(lambda v, r=replica: v[r], states), new,
                                rtol=1e-4, atol=1e-6)
  chex.assert_trees_all_close(jax.tree.map(lambda v: v[0], split_metrics), metrics,
                              rtol=1e-4, atol=1e-5)


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
  """mnist.npz holding the ten-class synthetic blobs: 64 train, 32 test images."""
  return write_synthetic_mnist(tmp_path_factory.mktemp("vaegan_blobs"), 64, 32, seed=1)


def test_train_vaegan_end_to_end_writes_every_file_and_resumes(data_dir, tmp_path,
                                                              monkeypatch):
  monkeypatch.delenv(layers.ENV_VAR, raising=False)   # the default convolutions
  workdir = str(tmp_path / "vaegan")
  # The smoke config: 2 epochs at batch 16, latent 4, width 4, 2 steps per chunk.
  argv = [f"--workdir={workdir}", f"--config.data_dir={data_dir}",
          "--config=experiments/configs/train_vaegan.py:smoke", "--config.feature_layer=1",
          "--config.vaegan_gamma=0.5"]
  results = run_experiment(train_vaegan, argv)
  for name in ("config.json", "metrics.jsonl", "samples.png", "reconstructions.png",
               "curves.png", "results.json", "results.md"):
    assert os.path.getsize(os.path.join(workdir, name)) > 0, name
  assert sorted(os.listdir(os.path.join(workdir, "checkpoints"))) == ["4", "8"]
  stored = json.load(open(os.path.join(workdir, "results.json")))
  for key in (*train_vaegan.TRAIN_KEYS, "test_kl", "test_feature_nll", "test_pixel_sq_error",
              "test_d_real", "test_d_fake", "sample_fd", "sample_score", "sample_modes",
              "classifier_test_accuracy", "examples_per_s", "wall_s", "train_s"):
    assert np.isfinite(stored[key]), key
  assert stored["steps"] == 8 and stored["epochs"] == 2
  assert stored["num_params"] == sum(stored[f"{p}_num_params"] for p in vaegan.PLAYERS)
  config = json.load(open(os.path.join(workdir, "config.json")))
  assert config["feature_layer"] == 1 and config["vaegan_gamma"] == 0.5
  records = [json.loads(line) for line in open(os.path.join(workdir, "metrics.jsonl"))]
  assert [r["step"] for r in records if "d_loss" in r] == [2, 4, 6, 8]
  assert [r["epoch"] for r in records if "test_kl" in r] == [1, 2]

  # A rerun resumes at the last checkpoint: no new chunks, the same final networks.
  again = run_experiment(train_vaegan, argv)
  assert len(open(os.path.join(workdir, "metrics.jsonl")).read().splitlines()) == len(records)
  assert again["params_digest"] == results["params_digest"]
  assert again["test_pixel_sq_error"] == results["test_pixel_sq_error"]
