"""Learning-curve extrapolation against curves built from known lines."""

import numpy as np
import pytest

from genjax.metrics import curves


def test_a_log_linear_curve_is_fitted_exactly_and_extrapolated_to_its_target():
  passes = np.array([1, 2, 5, 10, 20])
  nll = 110.0 - 4.0 * np.log(passes)                 # falls 4 nats per e-fold of passes
  a, b = curves.log_linear_fit(passes, nll)
  np.testing.assert_allclose((a, b), (110.0, -4.0), rtol=1e-9)
  target = 86.76
  np.testing.assert_allclose(curves.passes_to_reach(passes, nll, target),
                             np.exp((110.0 - target) / 4.0), rtol=1e-9)
  # Only the last points count: an early bend does not move the answer.
  bent = nll.copy()
  bent[:2] += 30.0
  np.testing.assert_allclose(curves.passes_to_reach(passes, bent, target, fit_last=3),
                             np.exp((110.0 - target) / 4.0), rtol=1e-9)


def test_a_target_not_ahead_gives_none_and_bad_curves_are_refused():
  passes = [1, 2, 4]
  assert curves.passes_to_reach(passes, [100, 99, 98], 120.0) is None   # behind, already
  assert curves.passes_to_reach(passes, [98, 99, 100], 90.0) is None    # moving away
  assert curves.passes_to_reach(passes, [99, 99, 99], 90.0) is None     # flat
  with pytest.raises(ValueError, match="distinct passes > 0"):
    curves.log_linear_fit([0, 1], [1.0, 2.0])
  with pytest.raises(ValueError, match=">= 2 points"):
    curves.log_linear_fit([3], [1.0])
