"""Generative adversarial networks: the minimax, non-saturating and hinge losses, top-k
generator updates and the R1 gradient penalty.

Functions of the discriminator's logits l = D(x) (before the sigmoid), so every log is a
log-sigmoid:  -log sigmoid(l) = softplus(-l),  -log(1 - sigmoid(l)) = softplus(l).
"""

from __future__ import annotations

from typing import Any, Callable

import jax
import jax.numpy as jnp

GAN_LOSSES = ("minimax", "non_saturating", "hinge")


def _check_gan_loss(kind: str) -> None:
  if kind not in GAN_LOSSES:
    raise ValueError(f"gan_loss={kind!r}: expected one of {', '.join(GAN_LOSSES)}")


def gan_discriminator_loss(real_logits: jax.Array, fake_logits: jax.Array,
                           kind: str) -> jax.Array:
  """The discriminator's loss, a scalar: means over the real and the fake batch.

  real_logits: [batch] = D(x) on data; fake_logits: [batch'] = D(G(z)) on samples.
    minimax, non_saturating:  E_x[-log sigmoid(D(x))] + E_z[-log(1 - sigmoid(D(G(z))))]
                              (the negated value function of Goodfellow et al. 2014, Eq. 1;
                              both generator losses share this discriminator)
    hinge:                    E_x[relu(1 - D(x))] + E_z[relu(1 + D(G(z)))]
                              (Lim & Ye 2017; Miyato et al. 2018, Eq. 16)
  """
  _check_gan_loss(kind)
  if kind == "hinge":
    return jnp.mean(jax.nn.relu(1.0 - real_logits)) + jnp.mean(jax.nn.relu(1.0 + fake_logits))
  return jnp.mean(jax.nn.softplus(-real_logits)) + jnp.mean(jax.nn.softplus(fake_logits))


def gan_generator_loss(fake_logits: jax.Array, kind: str,
                       weights: jax.Array | None = None) -> jax.Array:
  """The generator's loss, a scalar mean over fake_logits: [batch] = D(G(z)).

    minimax:         E_z[log(1 - sigmoid(D(G(z))))]   (Goodfellow et al. 2014, Eq. 1; its
                                                       gradient vanishes when D wins)
    non_saturating:  E_z[-log sigmoid(D(G(z)))]       (Goodfellow et al. 2014, Sec. 3)
    hinge:           E_z[-D(G(z))]                    (Lim & Ye 2017; Miyato et al. 2018)

  With ``weights`` [batch] (e.g. ``top_k_weights``) the mean becomes the weighted sum
  sum_i weights_i * loss_i.
  """
  _check_gan_loss(kind)
  if kind == "minimax":
    per_example = -jax.nn.softplus(fake_logits)
  elif kind == "non_saturating":
    per_example = jax.nn.softplus(-fake_logits)
  else:
    per_example = -fake_logits
  if weights is None:
    return jnp.mean(per_example)
  return jnp.sum(weights * per_example)


def top_k_weights(fake_logits: jax.Array, k: jax.Array | int,
                  axis_name: str | None = None) -> jax.Array:
  """Weights [batch] that keep the k samples the discriminator rates most real: 1/k on
  each of them, 0 on the rest (top-k training, Sinha et al. 2020, "Top-k Training of GANs:
  Improving GAN Performance by Throwing Away Bad Samples", Algorithm 1).

  fake_logits: [batch] = D(G(z)); k in 1..batch, may be traced (a schedule's value). Ties
  are broken by position, so exactly k samples are kept. No gradient flows through the
  choice. Under ``jax.pmap`` with ``axis_name`` the k are chosen from the global batch
  (every device's logits gathered, in device order) and each device's weights are scaled
  by the device count, so the pmean of the per-device weighted losses is the global
  batch's top-k mean: the same numbers on any split of the batch.
  """
  logits = jax.lax.stop_gradient(fake_logits)
  local = logits.shape[0]
  if axis_name is None:
    everyone, offset, devices = logits, 0, 1
  else:
    everyone = jax.lax.all_gather(logits, axis_name).reshape(-1)
    devices = everyone.shape[0] // local
    offset = jax.lax.axis_index(axis_name) * local
  # Each own sample's rank (0 = the largest logit) by counting who beats it, a tie going to
  # the earlier position: a [local, batch] comparison, cheaper than a sort at GAN batch sizes.
  own = jax.lax.dynamic_slice_in_dim(everyone, offset, local)
  position = jnp.arange(everyone.shape[0])
  own_position = offset + jnp.arange(local)
  beats = (everyone[None, :] > own[:, None]) | (
      (everyone[None, :] == own[:, None]) & (position[None, :] < own_position[:, None]))
  own_rank = jnp.sum(beats, axis=1)
  return (own_rank < k).astype(fake_logits.dtype) * (devices / jnp.asarray(k, fake_logits.dtype))


def r1_penalty(discriminator_apply: Callable[[Any, jax.Array], jax.Array], d_params: Any,
               real_images: jax.Array, gamma: float) -> jax.Array:
  """R1(psi) = gamma / 2 * E_x ||grad_x D_psi(x)||^2 on real data, a scalar
  (Mescheder et al. 2018, Which Training Methods for GANs do actually Converge?, Eq. 9).

  ``discriminator_apply(d_params, x) -> logits [batch]``; real_images: [batch, H, W, C];
  the squared norm sums over pixels, the expectation is the batch mean. Each logit must
  depend on its own image only (no batch statistics), so the gradient of their sum is
  every image's own input gradient.
  """
  grad_x = jax.grad(lambda x: jnp.sum(discriminator_apply(d_params, x)))(real_images)
  squared_norm = jnp.sum(jnp.square(grad_x).reshape(real_images.shape[0], -1), axis=-1)
  return 0.5 * gamma * jnp.mean(squared_norm)
