"""training/step.py: the step lowers the loss and reports its metrics."""

from tests import training_helpers
from tests.training_helpers import BATCH, _fit, _fresh_state

setup = training_helpers.setup   # the shared fixture (module-scoped: one per test module)


def test_training_lowers_the_loss(setup):
  state, logs = _fit(setup, _fresh_state(setup), epochs=8)
  assert int(state.step) == 8 * (64 // BATCH)
  assert logs[-1]["loss"] < 0.7 * logs[0]["loss"], (logs[0]["loss"], logs[-1]["loss"])
  assert {"step", "epoch", "loss", "recon", "kl", "elbo", "examples_per_s", "grad_norm"} <= set(logs[0])
