"""The fit loop and evaluation over a whole data set.

The data set lives on the device(s). Each epoch draws one permutation; each compiled
call runs ``steps_per_chunk`` steps with ``lax.scan`` (gather the batch, preprocess it
with per-example keys, take a step) and returns the chunk's mean metrics, so Python runs
once per chunk and reads metrics once per chunk. The state is donated to the call.
``genjax.training.parallel`` places the chunk on one device, pmaps it, or shards it.
"""

from __future__ import annotations

import functools
import time
from typing import Any, Callable, Iterator

import jax
import jax.numpy as jnp
import numpy as np

from genjax.training import parallel
from genjax.training.state import Preprocess, StepFn, TrainState
from genjax.types import Batch, Metrics


def identity_preprocess(batch: Batch, rng: jax.Array) -> Batch:
  del rng
  return batch


def largest_divisor_at_most(n: int, limit: int) -> int:
  """The largest divisor of ``n`` that is <= ``limit`` (chunks tile an epoch exactly)."""
  return max(d for d in range(1, min(n, max(limit, 1)) + 1) if n % d == 0)


def steps_per_epoch(num_examples: int, batch_size: int) -> int:
  """Steps in one pass over ``num_examples``: ``num_examples // batch_size`` (``fit`` drops
  the remainder; every schedule counted in epochs uses this)."""
  steps = num_examples // batch_size
  if steps == 0:
    raise ValueError(f"batch_size={batch_size} is larger than the {num_examples} "
                     "training examples")
  return steps


@functools.partial(jax.jit, static_argnums=2)
def epoch_permutation(shuffle_rng: jax.Array, epoch: jax.Array, num_examples: int) -> jax.Array:
  """The order of examples in ``epoch``: a permutation drawn from fold_in(rng, epoch)."""
  return jax.random.permutation(jax.random.fold_in(shuffle_rng, epoch), num_examples)


def fit(state: TrainState, step: StepFn, train_data: Batch, *, batch_size: int,
        num_epochs: int, data_rng: jax.Array, preprocess: Preprocess = identity_preprocess,
        steps_per_chunk: int | None = None, placement: parallel.Placement | None = None
        ) -> Iterator[tuple[TrainState, dict[str, float]]]:
  """Trains from ``state.step`` to ``num_epochs`` epochs; yields after every chunk.

  Each yield is ``(state, log)`` where ``log`` holds host floats: the chunk's mean
  metrics plus ``step``, ``epoch`` (fractional: epochs completed), ``epoch_end``
  (1.0 when this chunk ends an epoch) and ``examples_per_s`` of that chunk. The state
  yielded is the live one; the caller may evaluate or checkpoint it before resuming the
  generator (it is donated to the next chunk afterwards; the ``state`` passed in is
  copied first, so it stays valid).

  ``placement`` (default: one device) places the fused chunk (``genjax.training.parallel``); the
  state yielded is then one device's copy. Under pmap, ``step`` must be built with
  ``axis_name=placement.axis_name``.

  An epoch is ``N // batch_size`` steps (the remainder is dropped, a new permutation
  each epoch); ``steps_per_chunk`` is rounded down to a divisor of that so chunks tile
  epochs exactly and the loop compiles once. Resuming from a checkpointed state lands
  on the same examples, keys and parameters as an uninterrupted run.

  Raises ``Diverged`` (a ``FloatingPointError``) instead of yielding a chunk whose
  metrics are not all finite.
  """
  num_examples = len(next(iter(train_data.values())))
  epoch_steps = steps_per_epoch(num_examples, batch_size)
  placement = placement or parallel.make_placement("none")
  parallel.check_batch_size(placement, batch_size)
  chunk_len = largest_divisor_at_most(epoch_steps, steps_per_chunk or epoch_steps)
  chunk_fn = parallel.make_chunk_fn(step, batch_size, chunk_len, preprocess, placement)
  shuffle_rng, batch_rng = jax.random.split(data_rng)
  # Placing host data on a multi-process mesh is itself a collective (an equality check).
  parallel.sync_processes("fit")
  train_data = parallel.replicate(placement, train_data)
  batch_rng = parallel.replicate(placement, batch_rng) if placement.kind == "sharded" else batch_rng
  # Chunks donate their input: replicate() copies, so the caller's state stays intact.
  state = parallel.replicate(placement, state)
  start = int(np.max(jax.device_get(parallel.local(placement, state).step)))  # replicas move together
  if start % chunk_len:
    raise ValueError(f"state.step={start} is not at a chunk boundary ({chunk_len} steps)")
  for global_step in range(start, num_epochs * epoch_steps, chunk_len):
    epoch, first = divmod(global_step, epoch_steps)
    if first == 0 or global_step == start:
      perm = epoch_permutation(shuffle_rng, jax.device_put(np.int32(epoch)), num_examples)
      if placement.kind != "none":
        perm = parallel.replicate(placement, jax.device_get(perm))
    args = (state, train_data, perm, *_scalars(placement, first, global_step), batch_rng)
    tic = time.perf_counter()
    if global_step == start and jax.process_count() > 1:
      # Compile, then meet: the first collective must not wait on a peer still compiling.
      chunk_fn = chunk_fn.lower(*args).compile()
      parallel.sync_processes("first chunk")
    state, metrics = chunk_fn(*args)
    log = {k: float(v) for k, v in jax.device_get(parallel.local(placement, metrics)).items()}
    dt = time.perf_counter() - tic
    end = global_step + chunk_len
    log.update(step=end, epoch=end / epoch_steps, epoch_end=float(end % epoch_steps == 0),
               examples_per_s=chunk_len * batch_size / dt, seconds=dt)
    _check_finite(log, first_step=global_step + 1)
    yield parallel.local(placement, state), log


def _scalars(placement: parallel.Placement, *values: int) -> tuple[jax.Array, ...]:
  """Explicit transfers of the chunk's scalar arguments (sharded: replicated on the mesh)."""
  arrays = tuple(np.int32(v) for v in values)
  return parallel.replicate(placement, arrays) if placement.kind == "sharded" else jax.device_put(arrays)


class Diverged(FloatingPointError):
  """Training produced non-finite metrics in the chunk of steps ``first_step..step``.

  ``bad`` holds those metrics by name (the chunk's means). ``fit`` raises it before
  yielding the chunk, so the diverged state is never handed out (nor checkpointed).
  """

  def __init__(self, step: int, bad: dict[str, float], first_step: int | None = None):
    self.step, self.bad = step, dict(bad)
    self.first_step = step if first_step is None else first_step
    where = (f"at step {step}" if self.first_step == step
             else f"by step {step} (in steps {self.first_step}-{step})")
    shown = ", ".join(f"{k}={v}" for k, v in self.bad.items())
    super().__init__(f"training diverged {where}: non-finite {shown}")


def _check_finite(log: dict[str, float], first_step: int | None = None) -> None:
  """Raises ``Diverged`` when a metric of the chunk ``log`` describes is not finite."""
  bad = {k: v for k, v in log.items() if not np.isfinite(v)}
  if bad:
    raise Diverged(int(log["step"]), bad, first_step)


def pad_batches(data: Batch, batch_size: int) -> tuple[Batch, jax.Array]:
  """Reshapes a data set to ``[num_batches, batch_size, ...]`` on the device, once.

  The last batch is zero-padded; ``mask: [num_batches, batch_size]`` is 1 for real rows.
  """
  n = len(next(iter(data.values())))
  num_batches = -(-n // batch_size)
  pad = num_batches * batch_size - n
  shaped = {k: np.concatenate([np.asarray(v), np.zeros((pad, *v.shape[1:]), v.dtype)])
            .reshape(num_batches, batch_size, *v.shape[1:]) for k, v in data.items()}
  mask = (np.arange(num_batches * batch_size) < n).reshape(num_batches, batch_size)
  return jax.device_put((shaped, mask.astype(np.float32)))


def make_eval_fn(metrics_fn: Callable[[Any, Batch, jax.Array], dict[str, jax.Array]],
                 preprocess: Preprocess = identity_preprocess):
  """Means of per-example metrics over a whole data set prepared by ``pad_batches``.

  ``metrics_fn(params, batch, rng) -> {name: [..., batch]}`` (the example axis last; a
  leading axis, e.g. replicas of a vmapped model, is kept). Returns the jitted
  ``evaluate(params, batches, mask, rng) -> {name: [...]}``: padded rows are masked out,
  so every example counts once. Batch b draws its keys from fold_in(rng, b), so a
  fixed ``rng`` sees the same (e.g. binarized) test set at every evaluation.
  """

  batch_sums = _make_batch_sums(metrics_fn, preprocess)

  @jax.jit
  def evaluate(params, batches: Batch, mask: jax.Array, rng: jax.Array) -> Metrics:
    return _means(batch_sums(params, batches, mask, rng, 0), mask)

  return evaluate


def make_chunked_eval_fn(metrics_fn: Callable[[Any, Batch, jax.Array], dict[str, jax.Array]],
                         preprocess: Preprocess = identity_preprocess,
                         batches_per_call: int = 1):
  """``make_eval_fn``'s evaluation run from a host loop, ``batches_per_call`` batches per
  compiled call (rounded down to a divisor of the number of batches: one compile), so a
  long evaluation can show progress between calls.

  Returns ``evaluate(params, batches, mask, rng, advance=None) -> {name: [...]}``;
  ``advance(n)`` is called once the next ``n`` batches are done. The numbers are
  ``make_eval_fn``'s: batch b still draws its keys from fold_in(rng, b), and the per-batch
  sums are reduced once, over all batches, as there.
  """
  batch_sums = jax.jit(_make_batch_sums(metrics_fn, preprocess))
  means = jax.jit(_means)

  def evaluate(params, batches: Batch, mask: jax.Array, rng: jax.Array,
               advance: Callable[[int], Any] | None = None) -> Metrics:
    num_batches = mask.shape[0]
    size = largest_divisor_at_most(num_batches, batches_per_call)
    parts = []
    for first in range(0, num_batches, size):
      part = slice(first, first + size)
      parts.append(jax.block_until_ready(batch_sums(
          params, jax.tree.map(lambda x: x[part], batches), mask[part], rng, np.int32(first))))
      if advance is not None:
        advance(size)
    return means(jax.tree.map(lambda *s: jnp.concatenate(s), *parts), mask)

  return evaluate


def _make_batch_sums(metrics_fn, preprocess):
  """``sums(params, batches, mask, rng, first) -> {name: [num_batches, ...]}``: each batch's
  masked sum of the per-example metrics; batch i is batch ``first + i`` of the data set and
  draws its keys from fold_in(rng, first + i)."""

  def sums(params, batches: Batch, mask: jax.Array, rng: jax.Array, first) -> Metrics:
    def one(args):
      b, batch, m = args
      model_rng, data_rng = jax.random.split(jax.random.fold_in(rng, b))
      values = metrics_fn(params, preprocess(batch, data_rng), model_rng)
      return jax.tree.map(lambda v: jnp.sum(v * m, axis=-1), values)

    return jax.lax.map(one, (first + jnp.arange(mask.shape[0]), batches, mask))

  return sums


def _means(sums: Metrics, mask: jax.Array) -> Metrics:
  """Per-batch sums -> means over the real (unmasked) examples."""
  return jax.tree.map(lambda s: jnp.sum(s, axis=0) / jnp.sum(mask), sums)
