"""training/checkpoint.py: Orbax save / restore of a train-state pytree."""

import chex
import jax
import jax.numpy as jnp
import optax

from genjax.training import checkpoint
from genjax.training import state as train_state


def _state(seed):
  params = {"w": jax.random.normal(jax.random.PRNGKey(seed), (3, 2)), "b": jnp.zeros(2)}
  return train_state.create_train_state(params, optax.adam(1e-3), jax.random.PRNGKey(seed))


def test_empty_workdir_restores_nothing(tmp_path):
  state = _state(0)
  restored, step = checkpoint.restore_latest(checkpoint.make_manager(str(tmp_path)), state)
  assert step is None and restored is state


def test_latest_checkpoint_round_trips_with_dtypes(tmp_path):
  manager = checkpoint.make_manager(str(tmp_path), max_to_keep=2)
  for step, seed in [(1, 1), (2, 2), (3, 3)]:
    checkpoint.save(manager, _state(seed).replace(step=jnp.int32(step)), step)
  assert manager.all_steps() == [2, 3]
  restored, step = checkpoint.restore_latest(checkpoint.make_manager(str(tmp_path)), _state(0))
  assert step == 3
  expected = _state(3).replace(step=jnp.int32(3))
  chex.assert_trees_all_equal(restored, expected)
  chex.assert_trees_all_equal_dtypes(restored, expected)
