"""What a run writes into its workdir: config, metrics, results.

``config.json`` (every resolved flag), ``metrics.jsonl`` (one JSON object per log
point; also mirrored to TensorBoard event files under ``tensorboard/``), and
``results.json`` / ``results.md`` (the final numbers, flat, and as a table). In a
multi-process run only process 0 writes (``is_primary``); the others check and read.

Every JSON file a run writes goes through ``strict_json`` here, so each is strict JSON
(RFC 8259) that any parser reads: a figure that is not a finite number (NaN, +-Infinity)
is written as ``null``, and the object holding it gains ``<key>_note`` saying why,
unless the writer gave that reason itself.
"""

from __future__ import annotations

import json
import math
import os
from typing import Any, Collection, Mapping

import jax
import numpy as np

CONFIG = "config.json"
METRICS = "metrics.jsonl"
RESULTS_JSON = "results.json"
RESULTS_MD = "results.md"

def is_primary() -> bool:
  """True in the process that writes files (process 0; the only one in a 1-process run)."""
  return jax.process_index() == 0


def check_or_write_config(workdir: str, config: Mapping[str, Any],
                          may_change: Collection[str] = (),
                          added: Mapping[str, Any] | None = None) -> None:
  """Writes ``config.json``; in an existing run, refuses a config that changes the math.

  A rerun in the same workdir resumes, so every key but those in ``may_change`` (settings
  that do not change the math, e.g. the number of epochs or the placement) must match the
  stored config; otherwise the error names each differing key and nothing is overwritten.
  ``added`` maps keys introduced after older runs were written to the value that computes
  what those runs computed: a stored config without such a key matches that value (so a
  run from before the key existed still resumes).
  A ``workdir`` that is (or lies under) a file, or a ``config.json`` that is not a JSON
  object, is a one-line ValueError, also before anything is written.
  """
  check_workdir(workdir)
  path = os.path.join(workdir, CONFIG)
  new = strict_json(dict(config))
  if os.path.exists(path):
    old = _read_config(path)
    old = {**{k: v for k, v in strict_json(dict(added or {})).items() if k in new}, **old}
    diff = [k for k in sorted(set(old) | set(new))
            if k not in may_change and old.get(k) != new.get(k)]
    if diff:
      changes = ", ".join(f"{k}={old.get(k)!r} there, {config.get(k)!r} now" for k in diff)
      raise ValueError(f"workdir={workdir} holds a run with a different configuration "
                       f"({changes}); resume with the same configuration or use a new workdir")
  os.makedirs(workdir, exist_ok=True)
  if not is_primary():
    return
  write_json(path, new, sort_keys=True)


def check_workdir(workdir: str) -> None:
  """A one-line ValueError when ``workdir`` cannot be a run's directory: it, or the nearest
  of its parents that exists, is not a directory. Writes nothing.

  Checked before a run writes anything, so that a mistyped path never half-starts a run.
  """
  path = os.path.abspath(workdir)
  while not os.path.exists(path) and os.path.dirname(path) != path:
    path = os.path.dirname(path)
  if not os.path.isdir(path):
    where = "is" if path == os.path.abspath(workdir) else f"lies under {path}, which is"
    raise ValueError(f"workdir={workdir} {where} an existing file, not a directory: expected "
                     "a directory (new or holding a run to resume)")


def _read_config(path: str) -> dict[str, Any]:
  try:
    with open(path) as f:
      old = json.load(f)
  except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
    raise ValueError(f"{path} is not readable JSON ({e}); expected the config.json of an "
                     "earlier run: move it away or use a new workdir") from None
  if not isinstance(old, dict):
    raise ValueError(f"{path} holds a JSON {type(old).__name__}, expected the object of an "
                     "earlier run's config.json: move it away or use a new workdir")
  return old


def strict_json(value: Any) -> Any:
  """``value`` as data that ``json.dumps(..., allow_nan=False)`` accepts.

  Mappings become dicts with string keys, tuples and arrays lists, NumPy / JAX scalars
  Python numbers, other objects their ``str``. A float that is not finite becomes None,
  and the nearest enclosing mapping gains ``<key>_note`` naming what it was, unless it has
  that key already (the writer's own reason, e.g. why a figure is missing). A reader then
  sees ``null`` where a figure could not be had, never NaN or Infinity, which strict JSON
  parsers (and most tools other than Python's) refuse.
  """
  return _strict(value)[0]


def _strict(value: Any) -> tuple[Any, list[float]]:
  """(strict value, the non-finite floats replaced outside nested mappings)."""
  if isinstance(value, (np.ndarray, jax.Array, np.generic)):
    value = np.asarray(value).tolist()
  if value is None or isinstance(value, (bool, int, str)):
    return value, []
  if isinstance(value, float):
    return (value, []) if math.isfinite(value) else (None, [value])
  if isinstance(value, Mapping):
    out = {}
    for key, item in value.items():
      key = str(key)
      out[key], bad = _strict(item)
      note = f"{key}_note"
      if bad and note not in value:
        out[note] = _null_note(key, bad, whole=out[key] is None)
    return out, []
  if isinstance(value, (list, tuple)):
    items = [_strict(item) for item in value]
    return [i[0] for i in items], [b for i in items for b in i[1]]
  return str(value), []


def _null_note(key: str, bad: list[float], whole: bool) -> str:
  shown = ", ".join(sorted({repr(b) for b in bad}))
  if whole:
    return f"{key} was not a finite number ({shown}); written as null"
  some = (f"{len(bad)} values of {key} were not finite numbers" if len(bad) > 1
          else f"a value of {key} was not a finite number")
  return f"{some} ({shown}); written as null"


def to_json(value: Any, **kwargs: Any) -> str:
  """``strict_json(value)`` serialized with ``allow_nan=False`` (``kwargs`` go to
  ``json.dumps``): the one serializer of every JSON file a run writes."""
  return json.dumps(strict_json(value), allow_nan=False, **kwargs)


def write_json(path: str, value: Any, indent: int | None = 2, sort_keys: bool = False) -> None:
  """Writes ``value`` to ``path`` as strict JSON (``to_json``)."""
  text = to_json(value, indent=indent, sort_keys=sort_keys)
  with open(path, "w") as f:
    f.write(text + "\n")


class MetricsWriter:
  """Appends one JSON object per log point to ``metrics.jsonl`` and to TensorBoard."""

  def __init__(self, workdir: str, tensorboard: bool = True):
    self._primary = is_primary()
    self._file = open(os.path.join(workdir, METRICS), "a") if self._primary else None
    self._tb = None
    if tensorboard and self._primary:
      from tensorboardX import SummaryWriter  # pylint: disable=import-outside-toplevel
      self._tb = SummaryWriter(os.path.join(workdir, "tensorboard"))

  def write(self, record: Mapping[str, Any]) -> None:
    if not self._primary:
      return
    self._file.write(to_json(dict(record), sort_keys=True) + "\n")
    self._file.flush()
    if self._tb is not None:
      step = int(record["step"])
      for key, value in record.items():
        if key != "step" and isinstance(value, (int, float)):
          self._tb.add_scalar(key, value, step)

  def close(self) -> None:
    if self._file is not None:
      self._file.close()
    if self._tb is not None:
      self._tb.close()


def read_metrics(workdir: str) -> list[dict[str, Any]]:
  """The records of ``metrics.jsonl`` ([] before the first is written)."""
  path = os.path.join(workdir, METRICS)
  if not os.path.exists(path):
    return []
  with open(path) as f:
    return [json.loads(line) for line in f if line.strip()]


def write_results(workdir: str, results: Mapping[str, Any], title: str,
                  notes: str = "", table: list[str] | None = None) -> None:
  """Writes ``results.json`` (flat, strict: ``strict_json``) and ``results.md``; process 0
  only.

  ``results.md`` is the title, ``table`` (markdown lines; by default a two-column table
  of every stored result, a null one shown as n/a) and the notes.
  """
  if not is_primary():
    return
  stored = strict_json(dict(results))
  write_json(os.path.join(workdir, RESULTS_JSON), stored)
  if table is None:
    table = ["| metric | value |", "|---|---|"]
    for key, value in stored.items():
      shown = (f"{value:.4g}" if isinstance(value, float) else "n/a" if value is None
               else str(value))
      table.append(f"| {key} | {shown} |")
  lines = [f"# {title}", "", *table]
  if notes:
    lines += ["", notes]
  with open(os.path.join(workdir, RESULTS_MD), "w") as f:
    f.write("\n".join(lines) + "\n")
