"""Orbax checkpoints of the train state: save, restore the latest, resume.

A run's checkpoints live in ``<workdir>/checkpoints/<step>/``. A rerun with the same
workdir restores the latest one into the freshly initialised state (same tree
structure, shapes and dtypes) and continues from its step.
"""

from __future__ import annotations

import os
from typing import TypeVar

import jax
import orbax.checkpoint as ocp

State = TypeVar("State")


def make_manager(workdir: str, max_to_keep: int | None = 3) -> ocp.CheckpointManager:
  """A synchronous CheckpointManager on ``<workdir>/checkpoints``."""
  options = ocp.CheckpointManagerOptions(
      max_to_keep=max_to_keep, create=True, cleanup_tmp_directories=True,
      enable_async_checkpointing=False)
  return ocp.CheckpointManager(os.path.abspath(os.path.join(workdir, "checkpoints")),
                               options=options)


def save(manager: ocp.CheckpointManager, state: State, step: int) -> None:
  """Writes ``state`` as checkpoint ``step`` (a no-op if that step is already saved)."""
  if step in manager.all_steps():
    return
  manager.save(step, args=ocp.args.StandardSave(state))
  manager.wait_until_finished()


def restore_latest(manager: ocp.CheckpointManager, state: State) -> tuple[State, int | None]:
  """Restores the latest checkpoint into the structure of ``state``.

  Returns ``(restored_state, step)``, or ``(state, None)`` when there is none.
  """
  step = manager.latest_step()
  if step is None:
    return state, None
  target = jax.tree.map(ocp.utils.to_shape_dtype_struct, state)
  restored = manager.restore(step, args=ocp.args.StandardRestore(target))
  return restored, step
