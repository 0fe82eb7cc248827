"""The VQ-VAE's train state (parameters, optimizer state and the EMA codebook statistics)
and its pure step, which the same fit loop runs."""

from __future__ import annotations

from typing import Any, Callable

import flax
import jax
import jax.numpy as jnp
import optax

from genjax.losses import vq
from genjax.training import parallel
from genjax.training.state import freeze
from genjax.types import Batch, Metrics


@flax.struct.dataclass
class VQTrainState:
  """Everything a VQ-VAE run needs to continue: one pytree, so ``fit``,
  ``genjax.training.parallel`` and ``genjax.training.checkpoint`` take it as they take
  ``TrainState``.

  ``ema`` = {"counts": N [K], "sums": m [K, D]} are the exponential moving averages of
  ``losses.vq.ema_codebook_update``: state beyond the parameters, checkpointed with them.
  With ``codebook_update="loss"`` the step leaves them at their initial values.
  ``rng`` is a raw uint32[2] key; step t uses ``fold_in(rng, t)``.
  """
  step: jax.Array
  params: Any
  opt_state: Any
  ema: dict[str, jax.Array]
  rng: jax.Array


VQStepFn = Callable[[VQTrainState, Batch], tuple[VQTrainState, Metrics]]


def make_optimizer(optimizer: optax.GradientTransformation, params: Any,
                   codebook_update: str) -> optax.GradientTransformation:
  """``optimizer`` for every parameter, except the codebook under ``codebook_update="ema"``
  (left unchanged by it: the EMA sets it)."""
  if codebook_update == "loss":
    return optimizer
  mask = {name: jax.tree.map(lambda _: name == "codebook", value)  # noqa: B023 (used at once)
          for name, value in params.items()}
  return freeze(optimizer, mask)


def create_vq_train_state(params: Any, optimizer: optax.GradientTransformation,
                          rng: jax.Array) -> VQTrainState:
  return VQTrainState(step=jnp.zeros((), jnp.int32), params=params,
                      opt_state=optimizer.init(params), ema=vq.init_ema(params["codebook"]),
                      rng=rng)


def make_vq_train_step(loss_fn: Callable, optimizer: optax.GradientTransformation,
                       codebook_update: str, ema_decay: float = 0.99,
                       axis_name: str | None = None) -> VQStepFn:
  """Returns the pure ``step(state, batch) -> (state, metrics)`` of a VQ-VAE.

  ``loss_fn(params, batch, rng) -> (loss, (metrics, stats))`` is ``losses.vq``'s
  ``make_vqvae_loss``; the key is ``fold_in(state.rng, state.step)`` (per example when the
  batch carries ``batch["index"]``). The optimizer (``make_optimizer``) updates the
  parameters from the loss's gradient. With ``codebook_update="ema"`` the codebook then
  becomes ``ema_codebook_update(state.ema, n, sums, ema_decay)`` of this step's batch
  statistics (the codes and encoder outputs before the update). Under ``jax.pmap`` pass
  the mapped ``axis_name``: gradients and metrics are averaged over devices (``pmean``)
  and the batch statistics summed (``psum``), so the update is the global batch's on any
  number of devices. Metrics: the loss's, ``perplexity`` of the global batch's codes and
  ``grad_norm``.
  """
  if codebook_update not in vq.CODEBOOK_UPDATES:
    raise ValueError(f"codebook_update={codebook_update!r}: expected one of "
                     f"{', '.join(vq.CODEBOOK_UPDATES)}")

  def step(state: VQTrainState, batch: Batch) -> tuple[VQTrainState, Metrics]:
    rng = jax.random.fold_in(state.rng, state.step)
    if "index" in batch:
      rng = parallel.per_example_keys(rng, batch["index"])
    grad_fn = jax.grad(loss_fn, has_aux=True)
    grads, (metrics, stats) = grad_fn(state.params, batch, rng)
    if axis_name is not None:
      # Each device saw batch / n examples: the mean over devices is the global-batch mean,
      # and the sum of the devices' code counts and sums is the global batch's.
      grads, metrics = jax.lax.pmean((grads, metrics), axis_name)
      stats = jax.lax.psum(stats, axis_name)
    updates, opt_state = optimizer.update(grads, state.opt_state, state.params)
    params = optax.apply_updates(state.params, updates)
    ema = state.ema
    if codebook_update == "ema":
      ema, codebook = vq.ema_codebook_update(ema, stats["counts"], stats["sums"], ema_decay)
      params = {**params, "codebook": codebook}
    usage = stats["counts"] / jnp.sum(stats["counts"])
    metrics = {**metrics, "perplexity": vq.perplexity(usage),
               "grad_norm": optax.global_norm(grads)}
    return state.replace(step=state.step + 1, params=params, opt_state=opt_state,
                         ema=ema), metrics

  return step
