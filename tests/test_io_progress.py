"""io/progress.py: bars only where stderr is a terminal; otherwise one line per epoch."""

import io
import re
import sys

import pytest

from genjax.io import progress


class _Terminal(io.StringIO):
  def isatty(self):
    return True


@pytest.fixture
def enabled_after():
  """Bars enabled again after the test."""
  yield
  progress.set_enabled(True)


def _stderr(monkeypatch, stream):
  """stderr replaced in the test's own body (pytest restores its capture between phases)."""
  monkeypatch.setattr(sys, "stderr", stream)
  return stream


def _log(step, epoch, loss, epoch_end):
  return {"step": step, "epoch": epoch, "loss": loss, "epoch_end": float(epoch_end),
          "examples_per_s": 100.0, "seconds": 0.5}


def test_a_bar_is_drawn_on_a_terminal_and_nothing_when_disabled(monkeypatch, enabled_after):
  terminal = _stderr(monkeypatch, _Terminal())
  with progress.bar(4, "log p(x)", unit="batch") as shown:
    shown.update(4)
  assert "log p(x):   0%" in terminal.getvalue() and " 0/4 " in terminal.getvalue()
  assert shown.n == 4
  progress.set_enabled(False)
  assert isinstance(progress.bar(4, "quiet"), progress.NoBar)


def test_no_bar_when_stderr_is_not_a_terminal(monkeypatch):
  _stderr(monkeypatch, io.StringIO())
  assert not progress.bars_on()
  shown = progress.bar(3, "x")
  shown.update(3)
  shown.close()
  assert isinstance(shown, progress.NoBar) and sys.stderr.getvalue() == ""


def test_training_without_bars_prints_one_line_per_epoch(monkeypatch):
  _stderr(monkeypatch, io.StringIO())
  shown = progress.TrainProgress("vae", epochs=3, steps_per_epoch=4, start_step=4)
  for log in (_log(6, 1.5, 3.0, False), _log(8, 2.0, 1.0, True), _log(10, 2.5, 5.0, False)):
    shown.update(log)
  shown.close()
  lines = sys.stderr.getvalue().splitlines()
  assert len(lines) == 1   # epoch 3 has not ended
  assert lines[0].startswith("vae epoch 2/3 step 8/12 loss 2.000 100 ex/s ")   # epoch means
  assert re.fullmatch(r".* ex/s \w+ \d+:\d\d:\d\d", lines[0])   # then the wall clock


def test_training_bar_counts_steps_from_the_resumed_one(monkeypatch):
  terminal = _stderr(monkeypatch, _Terminal())
  shown = progress.TrainProgress("vae", epochs=2, steps_per_epoch=4, start_step=4)
  shown.update(_log(8, 2.0, 1.5, True))
  shown.close()
  out = terminal.getvalue()
  first, last = out.strip("\r\n").split("\r")
  assert first.startswith("vae:  50%") and " 4/8 " in first   # drawn from the resumed step
  assert last.startswith("vae: 100%") and " 8/8 " in last     # left on screen when closed
  assert last.endswith(", epoch 2.00 loss 1.500 100 ex/s]") and "epoch 2/2" not in out
