"""Learning curves: where a curve is heading, read from its last points.

``passes_to_reach`` answers "at how many passes over the data would this run reach the
paper's number?" by the straight line through the curve's last points against log(passes)
(a learning curve of test NLL is close to straight on a log axis late in training; the
answer is an extrapolation, reported as such, not a measurement).
"""

from __future__ import annotations

from typing import Sequence

import numpy as np


def log_linear_fit(passes: Sequence[float], values: Sequence[float]) -> tuple[float, float]:
  """(a, b) of the least-squares line value = a + b * log(passes); passes > 0, >= 2 points."""
  p = np.asarray(passes, np.float64)
  y = np.asarray(values, np.float64)
  if p.shape != y.shape or p.size < 2 or np.any(p <= 0) or np.ptp(p) == 0:
    raise ValueError(f"log_linear_fit: needs >= 2 points at distinct passes > 0 (got passes "
                     f"{list(passes)}, values {list(values)})")
  b, a = np.polyfit(np.log(p), y, 1)
  return float(a), float(b)


def passes_to_reach(passes: Sequence[float], values: Sequence[float], target: float,
                    fit_last: int = 3) -> float | None:
  """Passes at which the log-linear fit of the last ``fit_last`` points reaches ``target``,
  when the target lies ahead of the last point along that line; else None (the line moves
  away from it, is flat, or has passed it already)."""
  a, b = log_linear_fit(list(passes)[-fit_last:], list(values)[-fit_last:])
  if abs(b) <= 1e-12 * max(1.0, abs(a)) or (target - values[-1]) * b <= 0:
    return None
  return float(np.exp((target - a) / b))
