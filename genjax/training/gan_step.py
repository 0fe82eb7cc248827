"""A GAN's two-player train state and its pure step (D, then G), which the same fit loop
runs."""

from __future__ import annotations

from typing import Any, Callable

import flax
import flax.linen as nn
import jax
import jax.numpy as jnp
import optax

from genjax import distributions
from genjax.losses import gan as gan_losses
from genjax.training import parallel
from genjax.types import Batch, Metrics


@flax.struct.dataclass
class GANTrainState:
  """Both players of a GAN, their optimizer states and the run's key: one pytree, so
  ``fit``, ``genjax.training.parallel`` and ``genjax.training.checkpoint`` take it as they
  take ``TrainState``.

  ``rng`` is a raw uint32[2] key; step t draws its noise from ``fold_in(rng, t)``.
  ``g_ema``: an exponential moving average of the generator's parameters (None when off),
  the generator to sample from (Yazici et al. 2019; Karras et al. 2018).
  """
  step: jax.Array
  g_params: Any
  d_params: Any
  g_opt_state: Any
  d_opt_state: Any
  rng: jax.Array
  g_ema: Any = None

  @property
  def params(self) -> dict[str, Any]:
    """``{"generator": the generator to sample with (``sampling_params``), "discriminator":
    d_params}``: what ``evaluate`` gets and what the run's parameter count counts."""
    return {"generator": self.sampling_params, "discriminator": self.d_params}

  @property
  def sampling_params(self) -> Any:
    """The generator to draw samples with: the moving average when kept, else g_params."""
    return self.g_params if self.g_ema is None else self.g_ema


GANStepFn = Callable[[GANTrainState, Batch], tuple[GANTrainState, Metrics]]


def create_gan_train_state(g_params: Any, d_params: Any,
                           g_optimizer: optax.GradientTransformation,
                           d_optimizer: optax.GradientTransformation,
                           rng: jax.Array, g_ema: bool = False) -> GANTrainState:
  """Both players' states; with ``g_ema`` the moving average starts at ``g_params``."""
  return GANTrainState(step=jnp.zeros((), jnp.int32), g_params=g_params, d_params=d_params,
                       g_opt_state=g_optimizer.init(g_params),
                       d_opt_state=d_optimizer.init(d_params), rng=rng,
                       g_ema=jax.tree.map(jnp.copy, g_params) if g_ema else None)


def make_gan_train_step(generator: nn.Module, discriminator: nn.Module,
                        g_optimizer: optax.GradientTransformation,
                        d_optimizer: optax.GradientTransformation, loss_kind: str,
                        r1_gamma: float, latent_dim: int,
                        axis_name: str | None = None, g_ema_decay: float = 0.0,
                        g_top_k: optax.Schedule | None = None) -> GANStepFn:
  """Returns the pure ``step(state, batch) -> (state, metrics)`` of a GAN.

  One step updates D, then G (Goodfellow et al. 2014, Algorithm 1 with k = 1):
    D: psi <- psi - opt_D(grad_psi [L_D(D(x), D(G(z))) + R1(psi)]),  z ~ N(0, I)
    G: theta <- theta - opt_G(grad_theta L_G(D_psi'(G(z')))),        fresh z' ~ N(0, I)
  with x = ``batch["image"]`` (pixels in [0, 1]), L_D and L_G the ``loss_kind`` losses of
  ``losses.gan`` and R1 the gradient penalty on real data (skipped when ``r1_gamma`` is 0).
  G trains against the updated D. With ``g_top_k`` (step -> fraction f in (0, 1], e.g.
  ``top_k_schedule``), G's loss is the mean over only the k = max(1, floor(f * batch))
  samples the updated D rates most real (``losses.gan.top_k_weights``; the global batch's
  under pmap). Noise comes from ``fold_in(state.rng, state.step)``,
  per example when the batch carries ``batch["index"]`` (as in ``make_train_step``), so
  it does not depend on the placement; under ``jax.pmap`` pass ``axis_name`` to average
  gradients and metrics over devices.

  Metrics: ``d_loss``, ``g_loss``, ``r1``, ``d_real`` = mean sigmoid(D(x)), ``d_fake`` =
  mean sigmoid(D(G(z))) (both before D's update), ``d_grad_norm``, ``g_grad_norm`` and
  ``loss`` = d_loss + g_loss (the fit loop's logged, finiteness-checked number).
  When the state keeps ``g_ema``, each step also moves it toward the updated generator:
  g_ema <- g_ema_decay * g_ema + (1 - g_ema_decay) * theta.
  """
  gan_losses.gan_generator_loss(jnp.zeros(1), loss_kind)   # a bad kind fails here, once

  def g_apply(g_params, z):
    return generator.apply({"params": g_params}, z)

  def d_apply(d_params, x):
    return discriminator.apply({"params": d_params}, x)

  def d_loss_fn(d_params, real, fake):
    real_logits, fake_logits = d_apply(d_params, real), d_apply(d_params, fake)
    d_loss = gan_losses.gan_discriminator_loss(real_logits, fake_logits, loss_kind)
    r1 = (gan_losses.r1_penalty(d_apply, d_params, real, r1_gamma) if r1_gamma
          else jnp.zeros(()))
    return d_loss + r1, {"d_loss": d_loss, "r1": r1,
                         "d_real": jnp.mean(jax.nn.sigmoid(real_logits)),
                         "d_fake": jnp.mean(jax.nn.sigmoid(fake_logits))}

  def g_loss_fn(g_params, d_params, z, k):
    fake_logits = d_apply(d_params, g_apply(g_params, z))
    weights = None if k is None else gan_losses.top_k_weights(fake_logits, k, axis_name)
    g_loss = gan_losses.gan_generator_loss(fake_logits, loss_kind, weights)
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

    k = kept = None
    if g_top_k is not None:
      batch_size = real.shape[0] * (1 if axis_name is None else jax.lax.psum(1, axis_name))
      k = jnp.maximum(1.0, jnp.floor(g_top_k(state.step) * batch_size))
      kept = k / batch_size
    g_grads, g_metrics = jax.grad(g_loss_fn, has_aux=True)(state.g_params, d_params, z_g, k)
    if axis_name is not None:
      g_grads = jax.lax.pmean(g_grads, axis_name)
    g_updates, g_opt_state = g_optimizer.update(g_grads, state.g_opt_state, state.g_params)
    g_params = optax.apply_updates(state.g_params, g_updates)
    g_ema = state.g_ema
    if g_ema is not None:
      g_ema = jax.tree.map(lambda e, p: g_ema_decay * e + (1.0 - g_ema_decay) * p, g_ema,
                           g_params)

    metrics = {**d_metrics, **g_metrics}
    if axis_name is not None:
      metrics = jax.lax.pmean(metrics, axis_name)
    metrics.update(loss=metrics["d_loss"] + metrics["g_loss"],
                   d_grad_norm=optax.global_norm(d_grads),
                   g_grad_norm=optax.global_norm(g_grads))
    if kept is not None:
      metrics["g_top_k"] = kept
    return state.replace(step=state.step + 1, g_params=g_params, d_params=d_params,
                         g_opt_state=g_opt_state, d_opt_state=d_opt_state,
                         g_ema=g_ema), metrics

  return step


def top_k_schedule(steps_per_epoch: int, minimum: float, decay: float) -> optax.Schedule:
  """step -> the fraction of G's batch kept by top-k training: decay^epoch, never below
  ``minimum`` (Sinha et al. 2020, Sec. 3: k starts at the whole batch and shrinks by a
  factor gamma = ``decay`` per epoch to nu = ``minimum`` of it); epoch = step //
  steps_per_epoch."""
  if steps_per_epoch < 1 or not 0.0 < minimum <= 1.0 or not 0.0 < decay <= 1.0:
    raise ValueError(f"top_k_schedule(steps_per_epoch={steps_per_epoch}, minimum={minimum}, "
                     f"decay={decay}): expected steps_per_epoch >= 1 and minimum, decay in "
                     "(0, 1]")
  return optax.exponential_decay(1.0, steps_per_epoch, decay, staircase=True,
                                 end_value=minimum)
