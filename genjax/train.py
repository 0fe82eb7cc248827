"""The train state, the pure train step, and the fit loop (and a GAN's two-player
state and step, which the same loop runs).

The data set lives on the device(s). Each epoch draws one permutation; each compiled
call runs ``steps_per_chunk`` steps with ``lax.scan`` (gather the batch, preprocess it
with per-example keys, take a step) and returns the chunk's mean metrics, so Python runs
once per chunk and reads metrics once per chunk. The state is donated to the call.
``genjax.parallel`` places the chunk on one device, pmaps it, or shards it.
"""

from __future__ import annotations

import functools
import time
from typing import Any, Callable, Iterator

import flax
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax

from genjax import distributions, objectives, parallel
from genjax.objectives import Batch, LossFn, Metrics

Preprocess = Callable[[Batch, jax.Array], Batch]
StepFn = Callable[["TrainState", Batch], tuple["TrainState", Metrics]]


@flax.struct.dataclass
class TrainState:
  """Everything a run needs to continue: a pytree, checkpointed as is.

  ``rng`` is a raw uint32[2] key; step t uses ``fold_in(rng, t)``, so a resumed run
  draws the same noise as an uninterrupted one.
  """
  step: jax.Array
  params: Any
  opt_state: Any
  rng: jax.Array


def create_train_state(params: Any, optimizer: optax.GradientTransformation,
                       rng: jax.Array) -> TrainState:
  return TrainState(step=jnp.zeros((), jnp.int32), params=params,
                    opt_state=optimizer.init(params), rng=rng)


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


def freeze(optimizer: optax.GradientTransformation, params: Any,
           frozen: tuple[str, ...]) -> optax.GradientTransformation:
  """``optimizer`` for every top-level entry of ``params`` but those in ``frozen``, whose
  updates are zero (e.g. a linear probe on a pre-trained ``"encoder"``)."""
  labels = {k: jax.tree.map(lambda _, k=k: "frozen" if k in frozen else "trained", v)
            for k, v in params.items()}
  return optax.multi_transform({"trained": optimizer, "frozen": optax.set_to_zero()}, labels)


def identity_preprocess(batch: Batch, rng: jax.Array) -> Batch:
  del rng
  return batch


def largest_divisor_at_most(n: int, limit: int) -> int:
  """The largest divisor of ``n`` that is <= ``limit`` (chunks tile an epoch exactly)."""
  return max(d for d in range(1, min(n, max(limit, 1)) + 1) if n % d == 0)


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

  ``placement`` (default: one device) places the fused chunk (``genjax.parallel``); the
  state yielded is then one device's copy. Under pmap, ``step`` must be built with
  ``axis_name=placement.axis_name``.

  An epoch is ``N // batch_size`` steps (the remainder is dropped, a new permutation
  each epoch); ``steps_per_chunk`` is rounded down to a divisor of that so chunks tile
  epochs exactly and the loop compiles once. Resuming from a checkpointed state lands
  on the same examples, keys and parameters as an uninterrupted run.
  """
  num_examples = len(next(iter(train_data.values())))
  steps_per_epoch = num_examples // batch_size
  if steps_per_epoch == 0:
    raise ValueError(f"batch_size={batch_size} is larger than the {num_examples} "
                     "training examples")
  placement = placement or parallel.make_placement("none")
  parallel.check_batch_size(placement, batch_size)
  chunk_len = largest_divisor_at_most(steps_per_epoch, steps_per_chunk or steps_per_epoch)
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
  for global_step in range(start, num_epochs * steps_per_epoch, chunk_len):
    epoch, first = divmod(global_step, steps_per_epoch)
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
    log.update(step=end, epoch=end / steps_per_epoch, epoch_end=float(end % steps_per_epoch == 0),
               examples_per_s=chunk_len * batch_size / dt, seconds=dt)
    _check_finite(log)
    yield parallel.local(placement, state), log


def _scalars(placement: parallel.Placement, *values: int) -> tuple[jax.Array, ...]:
  """Explicit transfers of the chunk's scalar arguments (sharded: replicated on the mesh)."""
  arrays = tuple(np.int32(v) for v in values)
  return parallel.replicate(placement, arrays) if placement.kind == "sharded" else jax.device_put(arrays)


def _check_finite(log: dict[str, float]) -> None:
  bad = [k for k, v in log.items() if not np.isfinite(v)]
  if bad:
    raise FloatingPointError(f"non-finite metrics at step {log['step']}: "
                             + ", ".join(f"{k}={log[k]}" for k in bad))


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

  @jax.jit
  def evaluate(params, batches: Batch, mask: jax.Array, rng: jax.Array) -> Metrics:
    def one(args):
      b, batch, m = args
      model_rng, data_rng = jax.random.split(jax.random.fold_in(rng, b))
      values = metrics_fn(params, preprocess(batch, data_rng), model_rng)
      return jax.tree.map(lambda v: jnp.sum(v * m, axis=-1), values)

    sums = jax.lax.map(one, (jnp.arange(mask.shape[0]), batches, mask))
    return jax.tree.map(lambda s: jnp.sum(s, axis=0) / jnp.sum(mask), sums)

  return evaluate


# --- Generative adversarial networks --------------------------------------------------------


@flax.struct.dataclass
class GANTrainState:
  """Both players of a GAN, their optimizer states and the run's key: one pytree, so
  ``fit``, ``genjax.parallel`` and ``genjax.checkpoint`` take it as they take ``TrainState``.

  ``rng`` is a raw uint32[2] key; step t draws its noise from ``fold_in(rng, t)``.
  """
  step: jax.Array
  g_params: Any
  d_params: Any
  g_opt_state: Any
  d_opt_state: Any
  rng: jax.Array

  @property
  def params(self) -> dict[str, Any]:
    """``{"generator": g_params, "discriminator": d_params}`` (what ``evaluate`` gets)."""
    return {"generator": self.g_params, "discriminator": self.d_params}


GANStepFn = Callable[[GANTrainState, Batch], tuple[GANTrainState, Metrics]]


def create_gan_train_state(g_params: Any, d_params: Any,
                           g_optimizer: optax.GradientTransformation,
                           d_optimizer: optax.GradientTransformation,
                           rng: jax.Array) -> GANTrainState:
  return GANTrainState(step=jnp.zeros((), jnp.int32), g_params=g_params, d_params=d_params,
                       g_opt_state=g_optimizer.init(g_params),
                       d_opt_state=d_optimizer.init(d_params), rng=rng)


def make_gan_train_step(generator: nn.Module, discriminator: nn.Module,
                        g_optimizer: optax.GradientTransformation,
                        d_optimizer: optax.GradientTransformation, loss_kind: str,
                        r1_gamma: float, latent_dim: int,
                        axis_name: str | None = None) -> GANStepFn:
  """Returns the pure ``step(state, batch) -> (state, metrics)`` of a GAN.

  One step updates D, then G (Goodfellow et al. 2014, Algorithm 1 with k = 1):
    D: psi <- psi - opt_D(grad_psi [L_D(D(x), D(G(z))) + R1(psi)]),  z ~ N(0, I)
    G: theta <- theta - opt_G(grad_theta L_G(D_psi'(G(z')))),        fresh z' ~ N(0, I)
  with x = ``batch["image"]`` (pixels in [0, 1]), L_D and L_G the ``loss_kind`` losses of
  ``objectives`` and R1 the gradient penalty on real data (skipped when ``r1_gamma`` is 0).
  G trains against the updated D. Noise comes from ``fold_in(state.rng, state.step)``,
  per example when the batch carries ``batch["index"]`` (as in ``make_train_step``), so
  it does not depend on the placement; under ``jax.pmap`` pass ``axis_name`` to average
  gradients and metrics over devices.

  Metrics: ``d_loss``, ``g_loss``, ``r1``, ``d_real`` = mean sigmoid(D(x)), ``d_fake`` =
  mean sigmoid(D(G(z))) (both before D's update), ``d_grad_norm``, ``g_grad_norm`` and
  ``loss`` = d_loss + g_loss (the fit loop's logged, finiteness-checked number).
  """
  objectives.gan_generator_loss(jnp.zeros(1), loss_kind)   # a bad kind fails here, once

  def g_apply(g_params, z):
    return generator.apply({"params": g_params}, z)

  def d_apply(d_params, x):
    return discriminator.apply({"params": d_params}, x)

  def d_loss_fn(d_params, real, fake):
    real_logits, fake_logits = d_apply(d_params, real), d_apply(d_params, fake)
    d_loss = objectives.gan_discriminator_loss(real_logits, fake_logits, loss_kind)
    r1 = (objectives.r1_penalty(d_apply, d_params, real, r1_gamma) if r1_gamma
          else jnp.zeros(()))
    return d_loss + r1, {"d_loss": d_loss, "r1": r1,
                         "d_real": jnp.mean(jax.nn.sigmoid(real_logits)),
                         "d_fake": jnp.mean(jax.nn.sigmoid(fake_logits))}

  def g_loss_fn(g_params, d_params, z):
    g_loss = objectives.gan_generator_loss(d_apply(d_params, g_apply(g_params, z)), loss_kind)
    return g_loss, {"g_loss": g_loss}

  def step(state: GANTrainState, batch: Batch) -> tuple[GANTrainState, Metrics]:
    real = batch["image"]
    rng = jax.random.fold_in(state.rng, state.step)
    if "index" in batch:
      rng = parallel.per_example_keys(rng, batch["index"])
    noise_shape = (real.shape[0], latent_dim)
    z_d = distributions.per_example_normal(distributions.fold_in_keys(rng, 0), noise_shape)
    z_g = distributions.per_example_normal(distributions.fold_in_keys(rng, 1), noise_shape)

    fake = jax.lax.stop_gradient(g_apply(state.g_params, z_d))
    d_grads, d_metrics = jax.grad(d_loss_fn, has_aux=True)(state.d_params, real, fake)
    if axis_name is not None:
      # Each device saw batch / n examples: the mean over devices is the global-batch mean.
      d_grads = jax.lax.pmean(d_grads, axis_name)
    d_updates, d_opt_state = d_optimizer.update(d_grads, state.d_opt_state, state.d_params)
    d_params = optax.apply_updates(state.d_params, d_updates)

    g_grads, g_metrics = jax.grad(g_loss_fn, has_aux=True)(state.g_params, d_params, z_g)
    if axis_name is not None:
      g_grads = jax.lax.pmean(g_grads, axis_name)
    g_updates, g_opt_state = g_optimizer.update(g_grads, state.g_opt_state, state.g_params)
    g_params = optax.apply_updates(state.g_params, g_updates)

    metrics = {**d_metrics, **g_metrics}
    if axis_name is not None:
      metrics = jax.lax.pmean(metrics, axis_name)
    metrics.update(loss=metrics["d_loss"] + metrics["g_loss"],
                   d_grad_norm=optax.global_norm(d_grads),
                   g_grad_norm=optax.global_norm(g_grads))
    return state.replace(step=state.step + 1, g_params=g_params, d_params=d_params,
                         g_opt_state=g_opt_state, d_opt_state=d_opt_state), metrics

  return step
