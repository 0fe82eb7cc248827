"""Generative adversarial networks: the minimax, non-saturating and hinge losses, and the
R1 gradient penalty.

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


def gan_generator_loss(fake_logits: jax.Array, kind: str) -> jax.Array:
  """The generator's loss, a scalar mean over fake_logits: [batch] = D(G(z)).

    minimax:         E_z[log(1 - sigmoid(D(G(z))))]   (Goodfellow et al. 2014, Eq. 1; its
                                                       gradient vanishes when D wins)
    non_saturating:  E_z[-log sigmoid(D(G(z)))]       (Goodfellow et al. 2014, Sec. 3)
    hinge:           E_z[-D(G(z))]                    (Lim & Ye 2017; Miyato et al. 2018)
  """
  _check_gan_loss(kind)
  if kind == "minimax":
    return -jnp.mean(jax.nn.softplus(fake_logits))
  if kind == "non_saturating":
    return jnp.mean(jax.nn.softplus(-fake_logits))
  return -jnp.mean(fake_logits)


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
