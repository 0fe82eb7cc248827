"""Learning-rate schedules that papers' protocols state, as optax schedules (step -> rate).

``iwae_learning_rate``: Burda, Grosse & Salakhutdinov 2016 (Importance Weighted
Autoencoders), Sec. 5: "we used Adam ... The learning rate was 0.001 * 10^(-i/7) for 3^i
passes over the data, for i = 0, ..., 7": 3,280 passes in all. A run shorter than that
(this machine's budget) follows the same schedule and stops early; a longer one keeps the
last rate.
"""

from __future__ import annotations

import optax

IWAE_STAGES = 8                                           # i = 0, ..., 7
IWAE_PASSES = sum(3 ** i for i in range(IWAE_STAGES))     # 3,280


def iwae_learning_rate(learning_rate: float, steps_per_epoch: int) -> optax.Schedule:
  """learning_rate * 10^(-i/7) during passes [sum_{j<i} 3^j, sum_{j<=i} 3^j), i = 0..7
  (the paper's learning_rate is 1e-3); ``steps_per_epoch`` optimizer steps make a pass."""
  if steps_per_epoch < 1:
    raise ValueError(f"steps_per_epoch={steps_per_epoch} must be >= 1")
  boundaries = {steps_per_epoch * sum(3 ** j for j in range(i)): 10.0 ** (-1.0 / 7.0)
                for i in range(1, IWAE_STAGES)}
  return optax.piecewise_constant_schedule(learning_rate, boundaries)
