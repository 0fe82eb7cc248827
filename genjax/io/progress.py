"""Progress on the terminal: tqdm bars while stderr is a terminal, plain lines otherwise.

Library code asks ``bar(...)`` for a bar and gets a no-op (``NoBar``) when bars are off,
so what it computes never depends on the terminal. Bars are off when stderr is not a
terminal (a log file, a pipe, a batch scheduler: redrawn bars would fill it), after
``set_enabled(False)`` (launch.py's request for no bars), and in every process but process 0.
Training then reports one line per epoch instead (``TrainProgress``).
"""

from __future__ import annotations

import datetime
import sys
import time
from typing import Any, Mapping

import jax
import tqdm

EVAL_DELAY_S = 3.0   # an evaluation's bar appears only once it has run this long

_enabled = True   # the process-wide switch (``set_enabled``)


def set_enabled(enabled: bool) -> None:
  """Turns bars on (where stderr is a terminal) or off for this process."""
  global _enabled
  _enabled = enabled


def bars_on() -> bool:
  """True when bars are enabled, stderr is a terminal and this is process 0."""
  isatty = getattr(sys.stderr, "isatty", lambda: False)
  return _enabled and isatty() and jax.process_index() == 0


class NoBar:
  """What ``bar`` returns when bars are off: tqdm's methods that callers use, doing nothing."""

  def update(self, n: float = 1) -> None:
    del n

  def set_postfix_str(self, text: str = "", refresh: bool = True) -> None:
    del text, refresh

  def close(self) -> None:
    pass

  def __enter__(self) -> "NoBar":
    return self

  def __exit__(self, *exc: Any) -> None:
    self.close()


def bar(total: int, desc: str, unit: str = "it", initial: int = 0, delay: float = 0.0,
        leave: bool = False) -> tqdm.tqdm | NoBar:
  """A tqdm bar on stderr of ``total`` units, or a ``NoBar`` when bars are off.

  ``delay`` seconds pass before it is drawn (e.g. ``EVAL_DELAY_S``), so short work shows
  none; with ``leave`` its last state stays on screen when it closes. Use as a context
  manager, or ``close()`` it.
  """
  if not bars_on():
    return NoBar()
  return tqdm.tqdm(total=total, desc=desc, unit=unit, initial=initial, delay=delay,
                   file=sys.stderr, dynamic_ncols=True, leave=leave)


def note(text: str) -> None:
  """One line on stderr from process 0 (through tqdm, so an open bar is not torn)."""
  if jax.process_index() == 0:
    tqdm.tqdm.write(text, file=sys.stderr)
    sys.stderr.flush()


def clock(seconds: float) -> str:
  """``H:MM:SS`` of a duration."""
  return str(datetime.timedelta(seconds=round(seconds)))


class TrainProgress:
  """Training's progress, advanced once per fused chunk with the fit loop's log.

  With bars on: a bar of steps (its rate and ETA from tqdm) showing the epoch, the chunk's
  loss and examples/s. With bars off: one line per epoch, ``NAME epoch E/EPOCHS step
  S/STEPS loss L EX ex/s elapsed H:MM:SS``, where L is the mean of the epoch's chunk losses
  and EX its examples/s (both over the chunks this invocation ran).
  """

  def __init__(self, name: str, epochs: int, steps_per_epoch: int, start_step: int):
    self._name, self._epochs = name or "train", epochs
    self._total, self._step = epochs * steps_per_epoch, start_step
    self._bar = bar(self._total, self._name, unit="step", initial=start_step, leave=True)
    self._start = time.perf_counter()
    self._losses, self._examples, self._seconds = [], 0.0, 0.0

  def update(self, log: Mapping[str, float]) -> None:
    """Advances by the chunk that ``log`` (``genjax.training.loop.fit``'s) describes."""
    self._bar.update(int(log["step"]) - self._step)
    self._step = int(log["step"])
    self._bar.set_postfix_str(f"epoch {log['epoch']:.2f} loss {log['loss']:.3f} "
                              f"{log['examples_per_s']:.0f} ex/s", refresh=False)
    self._losses.append(log["loss"])
    self._examples += log["examples_per_s"] * log["seconds"]
    self._seconds += log["seconds"]
    if log["epoch_end"]:
      if isinstance(self._bar, NoBar):
        note(self.epoch_line(round(log["epoch"])))
      self._losses, self._examples, self._seconds = [], 0.0, 0.0

  def epoch_line(self, epoch: int) -> str:
    loss = sum(self._losses) / max(len(self._losses), 1)
    rate = self._examples / self._seconds if self._seconds else float("nan")
    return (f"{self._name} epoch {epoch}/{self._epochs} step {self._step}/{self._total} "
            f"loss {loss:.3f} {rate:.0f} ex/s elapsed "
            f"{clock(time.perf_counter() - self._start)}")

  def close(self) -> None:
    self._bar.close()
