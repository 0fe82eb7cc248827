"""What a run writes into its workdir: config, metrics, results.

``config.json`` (every resolved flag), ``metrics.jsonl`` (one JSON object per log
point; also mirrored to TensorBoard event files under ``tensorboard/``), and
``results.json`` / ``results.md`` (the final numbers, flat, and as a table). In a
multi-process run only process 0 writes (``is_primary``); the others check and read.
"""

from __future__ import annotations

import json
import os
from typing import Any, Collection, Mapping

import jax

CONFIG = "config.json"
METRICS = "metrics.jsonl"
RESULTS_JSON = "results.json"
RESULTS_MD = "results.md"

def is_primary() -> bool:
  """True in the process that writes files (process 0; the only one in a 1-process run)."""
  return jax.process_index() == 0


def check_or_write_config(workdir: str, config: Mapping[str, Any],
                          may_change: Collection[str] = ()) -> None:
  """Writes ``config.json``; in an existing run, refuses a config that changes the math.

  A rerun in the same workdir resumes, so every key but those in ``may_change`` (settings
  that do not change the math, e.g. the number of epochs or the placement) must match the
  stored config; otherwise the error names each differing key and nothing is overwritten.
  """
  os.makedirs(workdir, exist_ok=True)
  path = os.path.join(workdir, CONFIG)
  if os.path.exists(path):
    with open(path) as f:
      old = json.load(f)
    diff = [k for k in sorted(set(old) | set(config))
            if k not in may_change and old.get(k) != _jsonable(config.get(k))]
    if diff:
      changes = ", ".join(f"{k}={old.get(k)!r} there, {config.get(k)!r} now" for k in diff)
      raise ValueError(f"workdir={workdir} holds a run with a different configuration "
                       f"({changes}); resume with the same configuration or use a new workdir")
  if not is_primary():
    return
  with open(path, "w") as f:
    json.dump(_jsonable(dict(config)), f, indent=2, sort_keys=True)


def _jsonable(value: Any) -> Any:
  return json.loads(json.dumps(value, default=str))


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
    self._file.write(json.dumps(_jsonable(dict(record)), sort_keys=True) + "\n")
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
  """Writes ``results.json`` (flat) and ``results.md``; process 0 only.

  ``results.md`` is the title, ``table`` (markdown lines; by default a two-column table
  of every result) and the notes.
  """
  if not is_primary():
    return
  with open(os.path.join(workdir, RESULTS_JSON), "w") as f:
    json.dump(_jsonable(dict(results)), f, indent=2)
  if table is None:
    table = ["| metric | value |", "|---|---|"]
    for key, value in results.items():
      shown = f"{value:.4g}" if isinstance(value, float) else str(value)
      table.append(f"| {key} | {shown} |")
  lines = [f"# {title}", "", *table]
  if notes:
    lines += ["", notes]
  with open(os.path.join(workdir, RESULTS_MD), "w") as f:
    f.write("\n".join(lines) + "\n")
