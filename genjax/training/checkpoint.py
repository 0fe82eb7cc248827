"""Orbax checkpoints of the train state: save, restore the latest, resume.

A run's checkpoints live in ``<workdir>/checkpoints/<step>/``. A rerun with the same
workdir restores the latest one into the freshly initialised state (same tree
structure, shapes and dtypes) and continues from its step. The state saved is one
device's copy (``parallel.local``); in a multi-process run only process 0 writes and
every process can restore, each through a manager of its own (no cross-process barrier).
"""

from __future__ import annotations

import os
from typing import TypeVar

import jax
import orbax.checkpoint as ocp

State = TypeVar("State")


def make_manager(workdir: str, max_to_keep: int | None = 3) -> ocp.CheckpointManager:
  """A synchronous CheckpointManager on ``<workdir>/checkpoints``."""
  me = jax.process_index()
  directory = os.path.abspath(os.path.join(workdir, "checkpoints"))
  if me == 0:
    os.makedirs(directory, exist_ok=True)
  options = ocp.CheckpointManagerOptions(
      max_to_keep=max_to_keep, create=False, cleanup_tmp_directories=me == 0,
      enable_async_checkpointing=False,
      multiprocessing_options=ocp.options.MultiprocessingOptions(primary_host=me,
                                                                 active_processes={me}))
  return ocp.CheckpointManager(directory, options=options)


def save(manager: ocp.CheckpointManager, state: State, step: int) -> None:
  """Writes ``state`` as checkpoint ``step`` (a no-op if that step is already saved, and
  in every process but process 0)."""
  if jax.process_index() != 0 or step in manager.all_steps():
    return
  # Host copies: device arrays local to one process cannot be written in a multi-host run.
  manager.save(step, args=ocp.args.StandardSave(jax.device_get(state)))
  manager.wait_until_finished()


def restore_latest(manager: ocp.CheckpointManager, state: State) -> tuple[State, int | None]:
  """Restores the latest checkpoint into the structure of ``state``.

  Returns ``(restored_state, step)`` with host (NumPy) leaves, or ``(state, None)`` when
  there is none.
  """
  step = manager.latest_step()
  if step is None:
    return state, None
  restored = manager.restore(step, args=ocp.args.StandardRestore(jax.device_get(state)))
  return restored, step
