"""training/checkpoint.py: Orbax save / restore of a train-state pytree."""

import logging

import chex
import jax
import jax.numpy as jnp
import optax
import pytest

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


def _three_checkpoints(tmp_path):
  manager = checkpoint.make_manager(str(tmp_path))
  for step in (1, 2, 3):
    checkpoint.save(manager, _state(step).replace(step=jnp.int32(step)), step)
  return tmp_path / "checkpoints"


def _files(directory):
  """{relative path: bytes} of every file under ``directory``."""
  return {str(p.relative_to(directory)): p.read_bytes()
          for p in sorted(directory.rglob("*")) if p.is_file()}


def _damage(step_dir, how):
  arrays = [p for p in step_dir.rglob("*") if p.is_file() and p.parent.name == "d"]
  assert arrays, step_dir          # Orbax's OCDBT layout: the array data under .../d/
  for path in arrays:
    if how == "garbage":
      path.write_bytes(b"not an array" * 7)
    elif how == "truncated":
      path.write_bytes(path.read_bytes()[:5])
    elif how == "deleted":
      path.unlink()
  if how == "emptied":                       # the step directory is there, its item is not
    for path in sorted(step_dir.rglob("*"), reverse=True):
      path.rmdir() if path.is_dir() else path.unlink()


@pytest.mark.parametrize("how", ["garbage", "truncated", "deleted", "emptied"])
def test_a_damaged_latest_checkpoint_falls_back_to_the_newest_intact_one(tmp_path, how,
                                                                       caplog):
  directory = _three_checkpoints(tmp_path)
  _damage(directory / "3", how)
  before = _files(directory)
  with caplog.at_level(logging.WARNING):
    restored, step = checkpoint.restore_latest(checkpoint.make_manager(str(tmp_path)),
                                               _state(0))
  assert step == 2
  chex.assert_trees_all_equal(restored, _state(2).replace(step=jnp.int32(2)))
  assert f"checkpoint {directory / '3'} cannot be restored" in caplog.text
  assert f"resuming from checkpoint {directory / '2'}" in caplog.text
  assert _files(directory) == before       # nothing deleted or rewritten


def test_a_checkpoint_without_its_commit_marker_still_restores(tmp_path):
  """Orbax 0.12 on a local disk commits a step by renaming its temporary directory, so a
  step directory is complete without commit_success.txt (only object stores need it)."""
  directory = _three_checkpoints(tmp_path)
  (directory / "3" / "commit_success.txt").unlink()
  restored, step = checkpoint.restore_latest(checkpoint.make_manager(str(tmp_path)), _state(0))
  assert step == 3
  chex.assert_trees_all_equal(restored, _state(3).replace(step=jnp.int32(3)))


def test_when_no_checkpoint_restores_the_error_names_every_step_directory(tmp_path):
  directory = _three_checkpoints(tmp_path)
  for step in (1, 2, 3):
    _damage(directory / str(step), "garbage")
  before = _files(directory)
  with pytest.raises(checkpoint.DamagedCheckpointsError) as e:
    checkpoint.restore_latest(checkpoint.make_manager(str(tmp_path)), _state(0))
  message = str(e.value)
  assert "\n" not in message and message.startswith(f"no checkpoint in {directory} restores")
  assert (f"remove the damaged step directories ({directory / '3'} {directory / '2'} "
          f"{directory / '1'}) to start the run over, or use a new workdir") in message
  assert isinstance(e.value, ValueError)   # launch.py reports it in one line
  assert _files(directory) == before
  with pytest.raises(checkpoint.DamagedCheckpointsError, match="remove the damaged step"):
    checkpoint.check_restorable(str(tmp_path))   # the same refusal, before a run writes


def test_check_restorable_passes_while_one_checkpoint_is_intact(tmp_path):
  directory = _three_checkpoints(tmp_path)
  checkpoint.check_restorable(str(tmp_path))
  _damage(directory / "3", "garbage")
  _damage(directory / "2", "truncated")
  checkpoint.check_restorable(str(tmp_path))
  _damage(directory / "1", "deleted")
  with pytest.raises(checkpoint.DamagedCheckpointsError, match="step 3: "):
    checkpoint.check_restorable(str(tmp_path))
