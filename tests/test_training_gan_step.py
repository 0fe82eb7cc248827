"""training/gan_step.py: the two-player step, on one device and split over two, and its
checkpoint."""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from genjax import models
from genjax.data import sources
from genjax.training import checkpoint, gan_step

LATENT, WIDTH, BATCH = 4, 4, 8


@pytest.fixture(scope="module")
def gan():
  """Tiny 28x28 networks, their initial state, a jitted step and one batch (R1 is
  exercised by the end-to-end run)."""
  generator, discriminator = models.build_gan((28, 28, 1), LATENT, WIDTH)
  g_params = jax.jit(generator.init)(jax.random.PRNGKey(0), jnp.zeros((1, LATENT)))["params"]
  d_params = jax.jit(discriminator.init)(jax.random.PRNGKey(1),
                                         jnp.zeros((1, 28, 28, 1)))["params"]
  g_opt, d_opt = optax.adam(1e-3, 0.5), optax.adam(2e-3, 0.5)
  state = gan_step.create_gan_train_state(g_params, d_params, g_opt, d_opt, jax.random.PRNGKey(2))
  step_fn = lambda axis_name=None: gan_step.make_gan_train_step(   # noqa: E731
      generator, discriminator, g_opt, d_opt, "non_saturating", 0.0, LATENT, axis_name)
  batch = {"image": jnp.asarray(sources.synthetic(BATCH, 1).train_images),
           "index": jnp.arange(BATCH)}
  new_state, metrics = jax.jit(step_fn())(state, batch)
  return {"state": state, "new_state": new_state, "metrics": metrics, "step_fn": step_fn,
          "batch": batch, "players": (generator, discriminator, g_opt, d_opt)}


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


def test_the_generators_moving_average_follows_its_formula(gan):
  """With g_ema kept, one step gives g_ema = d * g_0 + (1 - d) * g_1 (g_0 the initial
  generator, g_1 the updated one) and leaves both players' updates as without it."""
  state = gan["state"]
  with_ema = state.replace(g_ema=jax.tree.map(jnp.copy, state.g_params))
  decay = 0.9
  step = gan_step.make_gan_train_step(*gan["players"], "non_saturating", 0.0, LATENT,
                                      g_ema_decay=decay)
  new, _ = jax.jit(step)(with_ema, gan["batch"])
  chex.assert_trees_all_close((new.g_params, new.d_params),
                              (gan["new_state"].g_params, gan["new_state"].d_params),
                              rtol=1e-5, atol=1e-7)
  expected = jax.tree.map(lambda a, b: decay * a + (1 - decay) * b, state.g_params,
                          new.g_params)
  chex.assert_trees_all_close(new.g_ema, expected, rtol=1e-5, atol=1e-7)
  assert new.params["generator"] is new.g_ema
  assert new.sampling_params is new.g_ema and gan["new_state"].sampling_params is (
      gan["new_state"].g_params)


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


def test_top_k_of_the_whole_batch_is_the_plain_step_and_splits_over_devices(gan):
  """Keeping the whole batch (fraction 1) is the plain step; keeping half gives the same
  step on one device and split over two (k counts over the global batch)."""
  def top_k_step(fraction, axis_name=None):
    return gan_step.make_gan_train_step(*gan["players"], "non_saturating", 0.0, LATENT,
                                        axis_name, g_top_k=lambda step: fraction)
  whole, metrics = jax.jit(top_k_step(1.0))(gan["state"], gan["batch"])
  chex.assert_trees_all_close(whole, gan["new_state"], rtol=1e-5, atol=1e-7)
  assert metrics["g_top_k"] == 1.0
  half, metrics = jax.jit(top_k_step(0.5))(gan["state"], gan["batch"])
  assert metrics["g_top_k"] == 0.5
  assert not np.allclose(half.g_params["Dense_0"]["kernel"],
                         gan["new_state"].g_params["Dense_0"]["kernel"])
  chex.assert_trees_all_close(half.d_params, gan["new_state"].d_params, rtol=1e-5, atol=1e-7)
  halves = jax.tree.map(lambda v: v.reshape(2, BATCH // 2, *v.shape[1:]), gan["batch"])
  split = jax.jit(jax.vmap(top_k_step(0.5, "batch"), in_axes=(None, 0), axis_name="batch"))
  states, _ = split(gan["state"], halves)
  chex.assert_trees_all_close(jax.tree.map(lambda x: x[1], states), half, rtol=1e-4, atol=1e-6)


def test_top_k_schedule_shrinks_by_its_factor_each_epoch_to_its_floor():
  schedule = gan_step.top_k_schedule(10, 0.5, 0.8)
  np.testing.assert_allclose([schedule(s) for s in (0, 9, 10, 25, 30, 1000)],
                             [1.0, 1.0, 0.8, 0.64, 0.512, 0.5], rtol=1e-6)
  with pytest.raises(ValueError, match=r"minimum=0.0, decay=0.9\): expected .* in \(0, 1\]"):
    gan_step.top_k_schedule(10, 0.0, 0.9)


def test_gan_state_checkpoint_round_trips_both_networks_and_optimizers(gan, tmp_path):
  manager = checkpoint.make_manager(str(tmp_path))
  checkpoint.save(manager, gan["new_state"], 1)
  restored, step = checkpoint.restore_latest(checkpoint.make_manager(str(tmp_path)), gan["state"])
  assert step == 1 and isinstance(restored, gan_step.GANTrainState)
  chex.assert_trees_all_equal(restored, jax.device_get(gan["new_state"]))
  chex.assert_trees_all_equal_dtypes(restored, gan["new_state"])
