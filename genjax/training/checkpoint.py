"""Orbax checkpoints of the train state: save, restore the latest, resume.

A run's checkpoints live in ``<workdir>/checkpoints/<step>/``. A rerun with the same
workdir restores the latest one that is intact into the freshly initialised state (same
tree structure, shapes and dtypes) and continues from its step. The state saved is one
device's copy (``parallel.local``); in a multi-process run only process 0 writes and
every process can restore, each through a manager of its own (no cross-process barrier).
"""

from __future__ import annotations

import os
from typing import TypeVar

from absl import logging
import jax
import orbax.checkpoint as ocp

State = TypeVar("State")
ITEM = "default"   # the directory of a step's one item, the train state (Orbax's name)


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
  # One item, the train state. Named up front, because a manager left to infer it infers it
  # from the first step it reads and keeps that: a damaged step with no item would make
  # every older, intact step unreadable too.
  return ocp.CheckpointManager(directory, options=options,
                               item_handlers=ocp.StandardCheckpointHandler())


def save(manager: ocp.CheckpointManager, state: State, step: int) -> None:
  """Writes ``state`` as checkpoint ``step`` (a no-op if that step is already saved, and
  in every process but process 0)."""
  if jax.process_index() != 0 or step in manager.all_steps():
    return
  # Host copies: device arrays local to one process cannot be written in a multi-host run.
  manager.save(step, args=ocp.args.StandardSave(jax.device_get(state)))
  manager.wait_until_finished()


class DamagedCheckpointsError(ValueError):
  """Every checkpoint of a run failed to restore; the message names the step directories."""


def restore_latest(manager: ocp.CheckpointManager, state: State) -> tuple[State, int | None]:
  """Restores the newest intact checkpoint into the structure of ``state``.

  Returns ``(restored_state, step)`` with host (NumPy) leaves, or ``(state, None)`` when
  there is none. A checkpoint that fails to restore (e.g. an array file truncated, deleted
  or overwritten) is skipped with a warning naming its directory, and the next older one
  is tried: a rerun loses the work since that one, not the whole run. When every one
  fails, ``DamagedCheckpointsError`` (one line) names the step directories to remove:
  the run is never silently started over, and nothing here deletes a checkpoint.
  """
  target = jax.device_get(state)
  failures = []
  for step in sorted(manager.all_steps(), reverse=True):
    problem = _unreadable(_step_dir(manager, step))
    if problem is None:
      try:
        restored = manager.restore(step, args=ocp.args.StandardRestore(target))
      except Exception as e:  # pylint: disable=broad-except  # any damage, any library error
        problem = _first_line(e)
    if problem is None:
      if failures:
        logging.warning("resuming from checkpoint %s, the newest that restores",
                        _step_dir(manager, step))
      return restored, step
    failures.append((step, problem))
    logging.warning("checkpoint %s cannot be restored (%s); trying an older one. Remove that "
                    "directory once you no longer need it: its step is not saved again while "
                    "it is there.", _step_dir(manager, step), problem)
  if not failures:
    return state, None
  raise _all_damaged(str(manager.directory), failures)


def check_restorable(workdir: str) -> None:
  """Refuses (``DamagedCheckpointsError``) a workdir with a ``checkpoints/`` directory, at
  any depth, whose every step fails ``_unreadable``: the run would be refused once it
  restores, so it is refused before it writes anything. Reads the newest intact step of
  each; a workdir without checkpoints passes at once."""
  for root, dirs, _ in os.walk(os.path.abspath(workdir)):
    if os.path.basename(root) != "checkpoints":
      continue
    dirs[:] = []                                   # step directories hold no runs
    failures = []
    for step in sorted((int(d) for d in os.listdir(root) if d.isdigit()), reverse=True):
      problem = _unreadable(os.path.join(root, str(step)))
      if problem is None:
        break
      failures.append((step, problem))
    else:
      if failures:
        raise _all_damaged(root, failures)


def _all_damaged(directory: str, failures: list[tuple[int, str]]) -> DamagedCheckpointsError:
  dirs = " ".join(os.path.join(directory, str(s)) for s, _ in failures)
  return DamagedCheckpointsError(
      f"no checkpoint in {directory} restores (step {failures[0][0]}: {failures[0][1]}); "
      f"remove the damaged step directories ({dirs}) to start the run over, or use a new "
      "workdir")


def _step_dir(manager: ocp.CheckpointManager, step: int) -> str:
  return os.path.join(str(manager.directory), str(step))


def _unreadable(step_dir: str) -> str | None:
  """Why checkpoint ``step_dir`` cannot be read, or None: it lacks the train state's item
  directory, or an entry of the item's OCDBT store (Orbax's layout:
  ``<item>/manifest.ocdbt``, the arrays under ``d/``) fails to read.

  Reads the entries one at a time. Orbax's restore reads them concurrently, and when one
  read fails the others, finishing after the restore gave up, print "Event loop is
  closed" tracebacks that say nothing about the checkpoint; a damaged file is found here
  first, quietly. An item stored without OCDBT is left to the restore.
  """
  item = os.path.join(step_dir, ITEM)
  if not os.path.isdir(item):
    return f"it has no {ITEM}/ directory, where the train state is stored"
  if not os.path.exists(os.path.join(item, "manifest.ocdbt")):
    return None
  import tensorstore as ts  # pylint: disable=import-outside-toplevel  # Orbax's own store
  try:
    store = ts.KvStore.open({"driver": "ocdbt", "base": f"file://{item}/"}).result()
    for key in store.list().result():
      store.read(key).result()
  except Exception as e:  # pylint: disable=broad-except  # tensorstore's errors vary
    return _first_line(e)
  return None


def _first_line(error: Exception, limit: int = 300) -> str:
  """``type: message``: its first line, without tensorstore's spec dump, cut to ``limit``."""
  lines = str(error).strip().splitlines()
  text = f"{type(error).__name__}: {lines[0].split(' [tensorstore_spec')[0] if lines else ''}"
  return text if len(text) <= limit else text[:limit] + "..."
