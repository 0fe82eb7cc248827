"""``MixtureOfDiagonalGaussians``: a mixture prior p(z) (the VampPrior), with no closed-form
KL (``kl_divergence`` estimates it at samples)."""

from __future__ import annotations

import math
from typing import ClassVar

import flax.struct
import jax
import jax.numpy as jnp

from genjax.distributions._functions import gaussian_log_prob


@flax.struct.dataclass
class MixtureOfDiagonalGaussians:
  """p(z) = sum_m pi_m N(z; means_m, diag(exp(log_vars_m))); means, log_vars: [M, dim].

  pi = softmax(logits), or uniform 1/M when ``logits`` is None: the VampPrior of Tomczak
  & Welling 2018 (VAE with a VampPrior, Eq. 9) is the uniform mixture of the encoder's
  Gaussians at M pseudo-inputs. No closed-form KL: ``kl_divergence`` estimates it by
  Monte Carlo. Not ``factorized``: ``log_prob_per_dim`` are the marginals' densities
  (each a 1-D mixture), which do not sum to ``log_prob``.
  """
  means: jax.Array
  log_vars: jax.Array
  logits: jax.Array | None = None
  factorized: ClassVar[bool] = False

  def log_weights(self) -> jax.Array:
    """log pi: [M]."""
    if self.logits is None:
      return jnp.full(self.means.shape[:1], -math.log(self.means.shape[0]), self.means.dtype)
    return jax.nn.log_softmax(self.logits)

  def log_prob(self, z: jax.Array) -> jax.Array:
    """log p(z) = logsumexp_m [log pi_m + log N(z; mu_m, var_m)]: z [..., dim] -> [...]."""
    per_component = gaussian_log_prob(z[..., None, :], self.means, self.log_vars)  # [..., M]
    return jax.scipy.special.logsumexp(per_component + self.log_weights(), axis=-1)

  def log_prob_per_dim(self, z: jax.Array) -> jax.Array:
    """log p(z_d) of each marginal, logsumexp_m [log pi_m + log N(z_d; mu_md, var_md)]:
    z [..., dim] -> [..., dim]."""
    per_component = gaussian_log_prob(z[..., None, :], self.means, self.log_vars,
                                      event_ndims=0)                           # [..., M, dim]
    return jax.scipy.special.logsumexp(per_component + self.log_weights()[:, None], axis=-2)

  def sample(self, rng: jax.Array, num: int) -> jax.Array:
    """[num, dim] draws: a component m ~ Cat(pi), then z ~ N(mu_m, var_m).

    Not reparameterized (the component is discrete): for prior samples, not for gradients.
    """
    component_rng, noise_rng = jax.random.split(rng)
    m = jax.random.categorical(component_rng, self.log_weights(), shape=(num,))
    eps = jax.random.normal(noise_rng, (num, self.means.shape[-1]), self.means.dtype)
    return self.means[m] + jnp.exp(0.5 * self.log_vars[m]) * eps
