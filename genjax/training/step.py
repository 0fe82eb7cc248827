"""The pure train step: ``make_train_step(loss_fn, optimizer) -> step(state, batch)``."""

from __future__ import annotations

import jax
import optax

from genjax.training import parallel
from genjax.training.state import StepFn, TrainState
from genjax.types import Batch, LossFn, Metrics


def make_train_step(loss_fn: LossFn, optimizer: optax.GradientTransformation,
                    axis_name: str | None = None) -> StepFn:
  """Returns the pure ``step(state, batch) -> (state, metrics)``.

  The loss's key is ``fold_in(state.rng, state.step)``; when the batch carries each
  example's position in the global batch (``batch["index"]``, set by the fit loop) the
  loss gets one key per example, ``fold_in(key, index)``, so its noise does not depend on
  the placement. The batch it sees carries ``batch["step"] = state.step`` so schedules
  (e.g. KL warm-up) stay pure functions of their inputs. Under ``jax.pmap`` pass the
  mapped ``axis_name``: gradients and metrics are then averaged over devices with
  ``lax.pmean``. Metrics are the loss's plus ``grad_norm`` (L2 norm of the gradient).
  """

  def step(state: TrainState, batch: Batch) -> tuple[TrainState, Metrics]:
    rng = jax.random.fold_in(state.rng, state.step)
    if "index" in batch:
      rng = parallel.per_example_keys(rng, batch["index"])
    grad_fn = jax.value_and_grad(loss_fn, has_aux=True)
    (_, metrics), grads = grad_fn(state.params, {**batch, "step": state.step}, rng)
    if axis_name is not None:
      # Each device saw batch / n examples: the mean over devices is the global-batch mean.
      grads, metrics = jax.lax.pmean((grads, metrics), axis_name)
    updates, opt_state = optimizer.update(grads, state.opt_state, state.params)
    params = optax.apply_updates(state.params, updates)
    metrics = {**metrics, "grad_norm": optax.global_norm(grads)}
    return state.replace(step=state.step + 1, params=params, opt_state=opt_state), metrics

  return step
