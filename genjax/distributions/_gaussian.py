"""The Gaussian distribution objects: ``DiagonalGaussian`` (q(z|x), or a learned prior),
``StandardNormal`` (the VAE's prior p(z)) and ``FullCovarianceGaussian`` (a posterior with
a Cholesky factor), and their closed-form KLs, registered with ``_kl``.
"""

from __future__ import annotations

from typing import Any, ClassVar

import flax.struct
import jax
import jax.numpy as jnp

from genjax.distributions._functions import (LOG_2PI, gaussian_log_prob,
                                             kl_diag_gaussian_standard_normal,
                                             kl_diag_gaussians,
                                             kl_full_covariance_standard_normal,
                                             reparameterize, standard_normal_log_prob)
from genjax.distributions._kl import _closed_form_kl, register_closed_form_kl


# --- Distribution objects ------------------------------------------------------------------
#
# Each has ``log_prob(z)`` (summed over the event, the last axis of z; leading axes of z
# broadcast against the distribution's batch axes), ``log_prob_per_dim(z)`` (the log-density
# of each coordinate's marginal, same shape as z), ``sample`` and the class constant
# ``factorized``: whether the density is the product of its marginals, so that
# ``log_prob == sum(log_prob_per_dim, -1)``.


@flax.struct.dataclass
class DiagonalGaussian:
  """N(mean, diag(exp(log_var))) over the last axis; mean, log_var: [..., dim].

  Typically q(z|x) with mean, log_var: [batch, latent_dim].
  """
  mean: jax.Array
  log_var: jax.Array
  factorized: ClassVar[bool] = True

  def sample(self, rng: jax.Array, num_samples: int | None = None) -> jax.Array:
    """Reparameterized z = mean + exp(log_var / 2) * eps (``reparameterize``).

    rng: one key, or one key per example ([batch, 2], row b drawn from key b alone).
    Returns the shape of ``mean``, or [num_samples, *mean.shape].
    """
    return reparameterize(rng, self.mean, self.log_var, num_samples)

  def log_prob(self, z: jax.Array) -> jax.Array:
    """log N(z; mean, diag(var)), summed over the last axis: z [..., dim] -> [...]."""
    return gaussian_log_prob(z, self.mean, self.log_var)

  def sample_and_log_prob(self, rng: jax.Array,
                          num_samples: int | None = None) -> tuple[jax.Array, jax.Array]:
    """(z, log q(z)): ``sample`` then ``log_prob`` at those samples, op for op. Every
    posterior has this method; the losses draw z ~ q(z|x) through it, because a flow's
    density is known only at its own samples."""
    z = self.sample(rng, num_samples)
    return z, self.log_prob(z)

  def log_prob_per_dim(self, z: jax.Array) -> jax.Array:
    """log N(z_d; mean_d, var_d) for each dimension: z [..., dim] -> [..., dim]."""
    return gaussian_log_prob(z, self.mean, self.log_var, event_ndims=0)

  def kl(self, other: Any) -> jax.Array:
    """Closed-form KL(self || other) summed over the last axis; see ``kl_divergence``."""
    return _closed_form_kl(self, other, per_dim=False)

  def kl_per_dim(self, other: Any) -> jax.Array:
    """Closed-form KL(self_d || other_d) per dimension: [..., dim]."""
    return _closed_form_kl(self, other, per_dim=True)


@flax.struct.dataclass
class StandardNormal:
  """N(0, I_dim): the VAE's prior p(z). ``dim`` is static (not a pytree leaf)."""
  dim: int = flax.struct.field(pytree_node=False)
  factorized: ClassVar[bool] = True

  def sample(self, rng: jax.Array, num: int) -> jax.Array:
    """[num, dim] draws, ``jax.random.normal(rng, (num, dim))`` exactly."""
    return jax.random.normal(rng, (num, self.dim))

  def log_prob(self, z: jax.Array) -> jax.Array:
    """sum_d -1/2 [log(2 pi) + z_d^2]: z [..., dim] -> [...]."""
    return standard_normal_log_prob(z)

  def log_prob_per_dim(self, z: jax.Array) -> jax.Array:
    """-1/2 [log(2 pi) + z_d^2]: z [..., dim] -> [..., dim]."""
    return standard_normal_log_prob(z, event_ndims=0)


@flax.struct.dataclass
class FullCovarianceGaussian:
  """N(mean, L L^T) over the last axis; mean: [..., dim], scale_tril L: [..., dim, dim]
  lower-triangular with a positive diagonal (the encoder's Cholesky factor of Sigma).

  log N(z; mu, Sigma) = -1/2 [ dim log(2 pi) + log det Sigma + |L^-1 (z - mu)|^2 ],
  log det Sigma = 2 sum_d log L_dd. Not ``factorized``: ``log_prob_per_dim`` are the
  marginals N(z_d; mu_d, Sigma_dd), which do not sum to ``log_prob``.
  """
  mean: jax.Array
  scale_tril: jax.Array
  factorized: ClassVar[bool] = False

  def sample(self, rng: jax.Array, num_samples: int | None = None) -> jax.Array:
    """Reparameterized z = mean + L eps, eps ~ N(0, I) (the noise of ``reparameterize``).

    rng: one key or one key per example ([batch, 2]); returns the shape of ``mean``, or
    [num_samples, *mean.shape].
    """
    eps = reparameterize(rng, jnp.zeros_like(self.mean), jnp.zeros_like(self.mean),
                         num_samples)
    return self.mean + jnp.einsum("...ij,...j->...i", self.scale_tril, eps)

  def log_det_covariance(self) -> jax.Array:
    """log det Sigma = 2 sum_d log L_dd: [...]."""
    return 2.0 * jnp.sum(jnp.log(jnp.diagonal(self.scale_tril, axis1=-2, axis2=-1)), -1)

  def log_prob(self, z: jax.Array) -> jax.Array:
    """log N(z; mean, L L^T): z [..., dim] -> [...] (a triangular solve, no inverse)."""
    diff = z - self.mean
    tril = jnp.broadcast_to(self.scale_tril, (*diff.shape, diff.shape[-1]))
    white = jax.scipy.linalg.solve_triangular(tril, diff[..., None], lower=True)[..., 0]
    return -0.5 * (z.shape[-1] * LOG_2PI + self.log_det_covariance()
                   + jnp.sum(jnp.square(white), -1))

  def variance(self) -> jax.Array:
    """diag(Sigma) = sum_j L_dj^2: [..., dim]."""
    return jnp.sum(jnp.square(self.scale_tril), -1)

  def log_prob_per_dim(self, z: jax.Array) -> jax.Array:
    """log N(z_d; mean_d, Sigma_dd) of each marginal: z [..., dim] -> [..., dim]."""
    return gaussian_log_prob(z, self.mean, jnp.log(self.variance()), event_ndims=0)

  def sample_and_log_prob(self, rng: jax.Array,
                          num_samples: int | None = None) -> tuple[jax.Array, jax.Array]:
    """``sample`` then ``log_prob`` at those samples (see ``DiagonalGaussian``)."""
    z = self.sample(rng, num_samples)
    return z, self.log_prob(z)

  def kl(self, other: Any) -> jax.Array:
    """Closed-form KL(self || other) summed over the event; see ``kl_divergence``."""
    return _closed_form_kl(self, other, per_dim=False)


@register_closed_form_kl(DiagonalGaussian, StandardNormal)
def _kl_gaussian_standard_normal(q: DiagonalGaussian, p: StandardNormal,
                                 per_dim: bool) -> jax.Array:
  return kl_diag_gaussian_standard_normal(q.mean, q.log_var, event_ndims=0 if per_dim else 1)


@register_closed_form_kl(DiagonalGaussian, DiagonalGaussian)
def _kl_gaussians(q: DiagonalGaussian, p: DiagonalGaussian, per_dim: bool) -> jax.Array:
  return kl_diag_gaussians(q.mean, q.log_var, p.mean, p.log_var, event_ndims=0 if per_dim else 1)


@register_closed_form_kl(FullCovarianceGaussian, StandardNormal)
def _kl_full_covariance_standard_normal(q: FullCovarianceGaussian, p: StandardNormal,
                                        per_dim: bool) -> jax.Array:
  if per_dim:   # the KL between each dimension's marginals N(mu_d, Sigma_dd) and N(0, 1)
    return kl_diag_gaussian_standard_normal(q.mean, jnp.log(q.variance()), event_ndims=0)
  return kl_full_covariance_standard_normal(q.mean, q.scale_tril)
