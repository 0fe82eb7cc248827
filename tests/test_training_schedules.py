"""Papers' learning-rate schedules against their stated formula."""

import numpy as np
import pytest

from genjax.training import schedules


def test_the_iwae_schedule_is_the_papers_stages():
  """0.001 * 10^(-i/7) for 3^i passes, i = 0..7 (Burda et al. 2016, Sec. 5)."""
  steps = 7                                   # per pass
  schedule = schedules.iwae_learning_rate(1e-3, steps)
  start = 0
  for i in range(8):
    length = 3 ** i * steps
    expected = 1e-3 * 10 ** (-i / 7)
    for t in (start, start + length // 2, start + length - 1):
      np.testing.assert_allclose(float(schedule(t)), expected, rtol=1e-5, err_msg=(i, t))
    start += length
  assert start == schedules.IWAE_PASSES * steps == 3280 * steps
  np.testing.assert_allclose(float(schedule(start + 10_000)), 1e-4, rtol=1e-5)  # i = 7 kept


def test_the_iwae_schedule_needs_steps():
  with pytest.raises(ValueError, match="steps_per_epoch=0"):
    schedules.iwae_learning_rate(1e-3, 0)
