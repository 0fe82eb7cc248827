"""Log-densities, KL divergences and reparameterized sampling: pure functions, and the
distribution objects built on them.

Conventions: a diagonal Gaussian is given by its ``mean`` and ``log_var``
(log of the variance, elementwise). Every log-density and KL sums over the last
``event_ndims`` axes (the event) and keeps the leading (batch / sample) axes, so
``gaussian_log_prob(x, mu, lv, event_ndims=3)`` on ``x: [batch, H, W, C]`` returns
``[batch]``. All values are in nats.

The objects (``DiagonalGaussian``, ``StandardNormal``, ``MixtureOfDiagonalGaussians``,
``FullCovarianceGaussian``, the flows ``PlanarFlow`` and ``InverseAutoregressiveFlow``, and
the chains of stochastic layers ``HierarchicalPosterior`` and ``HierarchicalPrior``)
are what a latent-variable model's ``posterior`` and ``prior`` return
(``genjax.models.protocol``). Every posterior has ``sample_and_log_prob(rng, num_samples)``,
which the losses draw z ~ q(z|x) through: for a closed-form density it is ``sample`` then
``log_prob``; a flow's density is known only at its own samples.
Their event is the last axis (the latent vector); they are ``flax.struct`` pytrees, so
``jax.lax.stop_gradient(dist)`` stops every parameter and they pass through ``jit``.
``kl_divergence(q, p)`` is the closed form where one exists and a Monte Carlo estimate
otherwise.
"""

from __future__ import annotations

import itertools
import math
from typing import Any, Callable, ClassVar

import flax.struct
import jax
import jax.numpy as jnp

LOG_2PI = math.log(2.0 * math.pi)


def _sum_event(x: jax.Array, event_ndims: int) -> jax.Array:
  """Sums over the last ``event_ndims`` axes."""
  if event_ndims == 0:
    return x
  return jnp.sum(x, axis=tuple(range(-event_ndims, 0)))


def gaussian_log_prob(x: jax.Array, mean: jax.Array, log_var: jax.Array,
                      event_ndims: int = 1) -> jax.Array:
  """log N(x; mean, diag(exp(log_var))).

  log p(x) = sum_i -1/2 [ log(2 pi) + log_var_i + (x_i - mean_i)^2 / exp(log_var_i) ]
  """
  elementwise = -0.5 * (LOG_2PI + log_var + jnp.square(x - mean) * jnp.exp(-log_var))
  return _sum_event(elementwise, event_ndims)


def standard_normal_log_prob(x: jax.Array, event_ndims: int = 1) -> jax.Array:
  """log N(x; 0, I) = sum_i -1/2 [ log(2 pi) + x_i^2 ]."""
  return _sum_event(-0.5 * (LOG_2PI + jnp.square(x)), event_ndims)


def bernoulli_log_prob(x: jax.Array, logits: jax.Array, event_ndims: int = 1) -> jax.Array:
  """log Bernoulli(x; sigmoid(logits)) for x in [0, 1].

  log p(x) = sum_i x_i log sigmoid(l_i) + (1 - x_i) log sigmoid(-l_i)
           = sum_i x_i l_i - softplus(l_i)            (numerically stable form)

  For x in {0, 1} this is a log-probability; for grey levels in [0, 1] it is the
  (negative) binary cross-entropy, not a normalized density.
  """
  return _sum_event(x * logits - jax.nn.softplus(logits), event_ndims)


def kl_diag_gaussian_standard_normal(mean: jax.Array, log_var: jax.Array,
                                     event_ndims: int = 1) -> jax.Array:
  """KL( N(mean, diag(exp(log_var))) || N(0, I) ), closed form.

  KL = 1/2 sum_i [ mean_i^2 + exp(log_var_i) - 1 - log_var_i ]
  (Kingma & Welling 2014, Auto-Encoding Variational Bayes, Appendix B.)
  """
  return _sum_event(0.5 * (jnp.square(mean) + jnp.exp(log_var) - 1.0 - log_var), event_ndims)


def kl_diag_gaussians(mean_q: jax.Array, log_var_q: jax.Array, mean_p: jax.Array,
                      log_var_p: jax.Array, event_ndims: int = 1) -> jax.Array:
  """KL( N(mean_q, diag(var_q)) || N(mean_p, diag(var_p)) ), closed form.

  KL = 1/2 sum_i [ log var_p_i - log var_q_i + (var_q_i + (mean_q_i - mean_p_i)^2) / var_p_i - 1 ]
  """
  elementwise = 0.5 * (log_var_p - log_var_q
                       + (jnp.exp(log_var_q) + jnp.square(mean_q - mean_p)) * jnp.exp(-log_var_p)
                       - 1.0)
  return _sum_event(elementwise, event_ndims)


def per_example_normal(rng: jax.Array, shape: tuple[int, ...], dtype=jnp.float32) -> jax.Array:
  """Standard normal noise of ``shape`` = [batch, ...] from one key or one key per example.

  ``rng`` is a key (uint32[2]) or a batch of keys (uint32[batch, 2]). With a batch of
  keys, row b is drawn from key b alone, so an example's noise does not depend on how the
  batch is split across devices (see ``genjax.training.parallel``).
  """
  if rng.ndim == 1:
    return jax.random.normal(rng, shape, dtype)
  return jax.vmap(lambda k: jax.random.normal(k, shape[1:], dtype))(rng)


def fold_in_keys(rng: jax.Array, value: int | jax.Array) -> jax.Array:
  """``fold_in(rng, value)`` for one key (uint32[2]) or for each of a batch of keys
  ([batch, 2]): derives independent streams without breaking per-example keys."""
  if rng.ndim == 1:
    return jax.random.fold_in(rng, value)
  return jax.vmap(jax.random.fold_in, in_axes=(0, None))(rng, value)


def reparameterize(rng: jax.Array, mean: jax.Array, log_var: jax.Array,
                   num_samples: int | None = None) -> jax.Array:
  """Reparameterized samples z = mean + sigma * eps, eps ~ N(0, I), sigma = exp(log_var / 2).

  Gradients flow to ``mean`` and ``log_var`` through the deterministic map
  (Kingma & Welling 2014, Sec. 2.4). With ``num_samples=None`` the result has the
  shape of ``mean``; otherwise ``[num_samples, *mean.shape]``. ``rng`` is one key or one
  key per example (``[batch, 2]``, see ``per_example_normal``).
  """
  if num_samples is None:
    eps = per_example_normal(rng, mean.shape, mean.dtype)
  else:
    eps = jnp.moveaxis(per_example_normal(rng, (mean.shape[0], num_samples, *mean.shape[1:]),
                                          mean.dtype), 1, 0)
  return mean + jnp.exp(0.5 * log_var) * eps


def kl_monte_carlo(z: jax.Array, mean: jax.Array, log_var: jax.Array,
                   event_ndims: int = 1) -> jax.Array:
  """Single-sample Monte Carlo estimate of KL(q || N(0, I)) at given samples z ~ q.

  KL_hat = log q(z) - log p(z), q = N(mean, diag(exp(log_var))), p = N(0, I).
  Unbiased: E_q[KL_hat] = KL. Average over samples for a lower-variance estimate.
  """
  return (gaussian_log_prob(z, mean, log_var, event_ndims)
          - standard_normal_log_prob(z, event_ndims))


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


def kl_full_covariance_standard_normal(mean: jax.Array, scale_tril: jax.Array) -> jax.Array:
  """KL( N(mean, L L^T) || N(0, I) ), closed form: mean [..., d], scale_tril [..., d, d] -> [...].

  KL = 1/2 [ tr(Sigma) + mean^T mean - d - log det Sigma ],  tr(Sigma) = sum_ij L_ij^2,
  log det Sigma = 2 sum_d log L_dd  (e.g. Bishop 2006, PRML, Eq. 2.123 / Appendix B).
  """
  trace = jnp.sum(jnp.square(scale_tril), axis=(-2, -1))
  log_det = 2.0 * jnp.sum(jnp.log(jnp.diagonal(scale_tril, axis1=-2, axis2=-1)), -1)
  return 0.5 * (trace + jnp.sum(jnp.square(mean), -1) - mean.shape[-1] - log_det)


# --- Normalizing flows on a diagonal Gaussian base -----------------------------------------
#
# z_0 ~ q_0 = N(mu, diag(sigma^2)) (reparameterized), z_k = f_k(z_{k-1}), and
#   log q(z_K) = log q_0(z_0) - sum_k log |det dz_k / dz_{k-1}|
# (Rezende & Mohamed 2015, Eq. 7). The density is known only at the flow's own samples:
# ``sample_and_log_prob`` returns both; ``log_prob`` at an arbitrary z would need the
# inverse flow, which planar flows have in no closed form, so it is refused: such a
# posterior trains with a Monte Carlo KL (elbo_mc, elbo_k=K, iwae=K), not with the
# closed form, STL or DReG (which evaluate log q at stopped parameters at given z).


def planar_u_hat(u: jax.Array, w: jax.Array) -> jax.Array:
  """u^ = u + [m(w^T u) - w^T u] w / |w|^2, m(a) = -1 + softplus(a): w^T u^ >= -1, so that
  f(z) = z + u^ tanh(w^T z + b) is invertible (Rezende & Mohamed 2015, Appendix A.1).
  u, w: [..., dim] -> [..., dim]."""
  wu = jnp.sum(w * u, -1, keepdims=True)
  return u + (jax.nn.softplus(wu) - 1.0 - wu) * w / jnp.sum(jnp.square(w), -1, keepdims=True)


def planar_step(z: jax.Array, u: jax.Array, w: jax.Array,
                b: jax.Array) -> tuple[jax.Array, jax.Array]:
  """One planar flow f(z) = z + u^ tanh(w^T z + b) and log |det df/dz|
  = log |1 + u^T psi(z)|, psi(z) = (1 - tanh^2(w^T z + b)) w (Rezende & Mohamed 2015,
  Eqs. 10-12, with u^ = ``planar_u_hat(u, w)``). z: [..., dim]; u, w: [..., dim] and b: [...]
  broadcast against z. Returns (f(z): [..., dim], log_det: [...])."""
  u_hat = planar_u_hat(u, w)
  a = jnp.tanh(jnp.sum(w * z, -1) + b)                                   # [...]
  log_det = jnp.log(jnp.abs(1.0 + (1.0 - jnp.square(a)) * jnp.sum(w * u_hat, -1)))
  return z + u_hat * a[..., None], log_det


class _Flow:
  """What every flow posterior shares beyond its ``forward`` (z_0 -> z_K, log-det) and its
  ``base``: the density only at its own samples, the flowed base mean as a point summary."""
  factorized: ClassVar[bool] = False

  @property
  def mean(self) -> jax.Array:
    """The flow of the base mean, f(mu): a point summary (E_q[z] has no closed form)."""
    return self.forward(self.base.mean)[0]

  def sample_and_log_prob(self, rng, num_samples=None):
    return _flow_sample_and_log_prob(self, rng, num_samples)

  def sample(self, rng: jax.Array, num_samples: int | None = None) -> jax.Array:
    """Reparameterized z_K (see ``sample_and_log_prob``)."""
    return self.sample_and_log_prob(rng, num_samples)[0]

  def log_prob(self, z: jax.Array) -> jax.Array:
    raise _flow_density_error(self)

  def log_prob_per_dim(self, z: jax.Array) -> jax.Array:
    raise _flow_density_error(self)


@flax.struct.dataclass
class PlanarFlow(_Flow):
  """q(z|x): K planar flows (Rezende & Mohamed 2015) on a ``DiagonalGaussian`` base.

  base: batch [batch], event [dim]; u, w: [batch, K, dim] and b: [batch, K], amortized
  (computed by the encoder from x). Density only at its own samples
  (``sample_and_log_prob``).
  """
  base: DiagonalGaussian
  u: jax.Array
  w: jax.Array
  b: jax.Array

  def forward(self, z0: jax.Array) -> tuple[jax.Array, jax.Array]:
    """z_K = f_K o ... o f_1(z_0) and sum_k log |det dz_k/dz_{k-1}|: z0 [..., batch, dim]."""
    z, total = z0, jnp.zeros(z0.shape[:-1], z0.dtype)
    for k in range(self.u.shape[-2]):
      z, log_det = planar_step(z, self.u[..., k, :], self.w[..., k, :], self.b[..., k])
      total = total + log_det
    return z, total


def made_masks(dim: int, hidden: int, reverse: bool) -> tuple[jax.Array, jax.Array]:
  """MADE masks (Germain et al. 2015): input->hidden [dim, hidden] and hidden->output
  [hidden, dim], so that output d depends only on inputs before d in the order (1..dim,
  or dim..1 when ``reverse``: IAF reverses the order between steps)."""
  degrees_in = jnp.arange(1, dim + 1)
  if reverse:
    degrees_in = degrees_in[::-1]
  degrees_hidden = jnp.arange(hidden) % max(dim - 1, 1) + 1
  in_mask = (degrees_hidden[None, :] >= degrees_in[:, None]).astype(jnp.float32)
  out_mask = (degrees_in[None, :] > degrees_hidden[:, None]).astype(jnp.float32)
  return in_mask, out_mask


def iaf_step(z: jax.Array, context: jax.Array, weights: dict[str, jax.Array],
             reverse: bool) -> tuple[jax.Array, jax.Array]:
  """One IAF step with a one-hidden-layer MADE (Kingma et al. 2016, IAF, Alg. 1, Eqs. 13-14):

    [m, s] = MADE(z, h),  sigma = sigmoid(s),  z' = sigma * z + (1 - sigma) * m,
    log |det dz'/dz| = sum_d log sigma_d  (the Jacobian is triangular in the MADE order).

  z: [..., batch, dim]; context h: [batch, H] from the encoder. ``weights``: w_in [dim, Hid],
  c_in [H, Hid], b_in [Hid], w_m / w_s [Hid, dim], c_m / c_s [H, dim], b_m / b_s [dim]
  (s's bias starts positive, so sigma starts near 1: the paper's "forget gate" init).
  Returns (z': [..., batch, dim], log_det: [..., batch]).
  """
  in_mask, out_mask = made_masks(z.shape[-1], weights["w_in"].shape[-1], reverse)
  hidden = jax.nn.elu(z @ (weights["w_in"] * in_mask) + context @ weights["c_in"]
                      + weights["b_in"])
  m = hidden @ (weights["w_m"] * out_mask) + context @ weights["c_m"] + weights["b_m"]
  s = hidden @ (weights["w_s"] * out_mask) + context @ weights["c_s"] + weights["b_s"]
  return jax.nn.sigmoid(s) * z + jax.nn.sigmoid(-s) * m, jnp.sum(jax.nn.log_sigmoid(s), -1)


@flax.struct.dataclass
class InverseAutoregressiveFlow(_Flow):
  """q(z|x): IAF steps (Kingma et al. 2016) on a ``DiagonalGaussian`` base.

  base: batch [batch], event [dim]; context: [batch, H], the encoder's h(x); steps: one
  ``iaf_step`` weight dict per step (shared across examples), the order reversed every
  other step. Density only at its own samples (``sample_and_log_prob``).
  """
  base: DiagonalGaussian
  context: jax.Array
  steps: tuple[dict[str, jax.Array], ...]

  def forward(self, z0: jax.Array) -> tuple[jax.Array, jax.Array]:
    """z_K and sum_k log |det dz_k/dz_{k-1}| = sum_k sum_d log sigma_k,d: z0 [..., batch, dim]."""
    z, total = z0, jnp.zeros(z0.shape[:-1], z0.dtype)
    for k, weights in enumerate(self.steps):
      z, log_det = iaf_step(z, self.context, weights, reverse=k % 2 == 1)
      total = total + log_det
    return z, total


FLOWS = (PlanarFlow, InverseAutoregressiveFlow)


def _flow_sample_and_log_prob(flow: Any, rng: jax.Array,
                              num_samples: int | None) -> tuple[jax.Array, jax.Array]:
  """z_K = f(z_0), z_0 ~ base (reparameterized), and
  log q(z_K) = log q_0(z_0) - sum_k log |det dz_k/dz_{k-1}| (Rezende & Mohamed 2015, Eq. 7).

  Returns z: [batch, dim] (or [num_samples, batch, dim]) and log q: [batch] (or [num, batch]).
  """
  z0 = flow.base.sample(rng, num_samples)
  z, log_det = flow.forward(z0)
  return z, flow.base.log_prob(z0) - log_det


def _flow_density_error(flow: Any) -> ValueError:
  return ValueError(
      f"{type(flow).__name__}: a flow's density is known only at its own samples "
      "(sample_and_log_prob); log q at other points (the closed-form KL, STL and DReG, "
      "which evaluate log q at stopped parameters) is not available: use a Monte Carlo KL "
      "with the reparameterized gradient (elbo_mc, elbo_k=K, iwae=K)")


# --- Hierarchies of Gaussian stochastic layers ----------------------------------------------


def _activation(name: str) -> Callable[[jax.Array], jax.Array]:
  if name not in GAUSSIAN_MLP_ACTIVATIONS:
    raise ValueError(f"activation={name!r}: expected one of "
                     f"{', '.join(GAUSSIAN_MLP_ACTIVATIONS)}")
  return GAUSSIAN_MLP_ACTIVATIONS[name]


GAUSSIAN_MLP_ACTIVATIONS: dict[str, Callable[[jax.Array], jax.Array]] = {
    "tanh": jnp.tanh, "relu": jax.nn.relu, "elu": jax.nn.elu, "gelu": jax.nn.gelu}


@flax.struct.dataclass
class GaussianMLP:
  """A conditional diagonal Gaussian N(mean(h), diag(exp(log_var(h)))) whose mean and
  log-variance come from an MLP held as arrays (not a bound module), so that a
  distribution object can apply it to its own samples outside ``Module.apply``.

  ``layers``: ({"w": [in, out], "b": [out]}, ...), the hidden layers (``activation``
  after each) and last the output layer of 2 * dim units: [mean, log_var].
  """
  layers: tuple[dict[str, jax.Array], ...]
  activation: str = flax.struct.field(pytree_node=False, default="tanh")

  def __call__(self, h: jax.Array) -> DiagonalGaussian:
    """The Gaussian given h: [..., in] -> batch [...], event [dim]."""
    act = _activation(self.activation)
    for layer in self.layers[:-1]:
      h = act(h @ layer["w"] + layer["b"])
    out = h @ self.layers[-1]["w"] + self.layers[-1]["b"]
    mean, log_var = jnp.split(out, 2, axis=-1)
    return DiagonalGaussian(mean, log_var)


def _split_layers(z: jax.Array, dims: tuple[int, ...]) -> list[jax.Array]:
  """[..., sum(dims)] -> [z_1: [..., d_1], ..., z_L: [..., d_L]]."""
  if z.shape[-1] != sum(dims):
    raise ValueError(f"z has {z.shape[-1]} entries on its last axis: expected "
                     f"sum{tuple(dims)} = {sum(dims)} (z_1, ..., z_L concatenated)")
  return jnp.split(z, list(itertools.accumulate(dims))[:-1], axis=-1)


def _layer_noise(rng: jax.Array, layer: int, like: DiagonalGaussian,
                 num_samples: int | None) -> jax.Array:
  """N(0, I) noise for stochastic layer ``layer`` (> 0) shaped like ``like``'s mean, drawn
  from ``fold_in_keys(rng, layer)`` (one key, or one per example along the batch axis)."""
  batch = like.mean.shape[0] if num_samples is None else like.mean.shape[1]
  zeros = jnp.zeros((batch, like.mean.shape[-1]), like.mean.dtype)
  return reparameterize(fold_in_keys(rng, layer), zeros, zeros, num_samples)


def _not_factorized(dist: Any) -> ValueError:
  return ValueError(
      f"{type(dist).__name__}: the marginal of each latent dimension has no closed form in "
      "a hierarchy of stochastic layers (upper layers are mixtures); per-dimension "
      "statistics (free bits, KL per dimension) need a factorized posterior and prior")


@flax.struct.dataclass
class HierarchicalPosterior:
  """q(z_1..z_L|x) = q(z_1|x) prod_{l>1} q(z_l|z_{l-1}): a bottom-up chain of diagonal
  Gaussian stochastic layers (Burda et al. 2016, Sec. 5; L = 2 is their two-layer model).

  ``first``: q(z_1|x), batch [batch], event [d_1]; ``upper``: q(z_l|z_{l-1}) for l = 2..L
  (``GaussianMLP``). z is the concatenation [z_1, ..., z_L]: event [sum d_l]. Reparameterized
  draws (layer l's noise from ``fold_in_keys(rng, l - 1)``, so per-example keys stay
  per-example); ``log_prob`` at any z (STL and DReG evaluate it at stopped parameters).
  """
  first: DiagonalGaussian
  upper: tuple[GaussianMLP, ...]
  factorized: ClassVar[bool] = False

  @property
  def dims(self) -> tuple[int, ...]:
    return (self.first.mean.shape[-1],
            *(net.layers[-1]["b"].shape[-1] // 2 for net in self.upper))

  @property
  def mean(self) -> jax.Array:
    """The mean pass [mu_1(x), mu_2(mu_1), ...]: a point summary (E_q[z_l|x] for l > 1 has
    no closed form); the first layer's entries are E_q[z_1|x] exactly."""
    means = [self.first.mean]
    for net in self.upper:
      means.append(net(means[-1]).mean)
    return jnp.concatenate(means, -1)

  def sample_and_log_prob(self, rng: jax.Array,
                          num_samples: int | None = None) -> tuple[jax.Array, jax.Array]:
    """(z, log q(z|x)): z [batch, sum d] (or [num_samples, batch, sum d]), log q [batch]
    (or [num_samples, batch])."""
    z = self.first.sample(rng, num_samples)
    layers, log_q = [z], self.first.log_prob(z)
    for l, net in enumerate(self.upper, start=1):
      q = net(layers[-1])
      z = q.mean + jnp.exp(0.5 * q.log_var) * _layer_noise(rng, l, q, num_samples)
      layers.append(z)
      log_q = log_q + q.log_prob(z)
    return jnp.concatenate(layers, -1), log_q

  def sample(self, rng: jax.Array, num_samples: int | None = None) -> jax.Array:
    return self.sample_and_log_prob(rng, num_samples)[0]

  def log_prob(self, z: jax.Array) -> jax.Array:
    """log q(z_1|x) + sum_l log q(z_l|z_{l-1}): z [..., batch, sum d] -> [..., batch]."""
    layers = _split_layers(z, self.dims)
    total = self.first.log_prob(layers[0])
    for net, below, z_l in zip(self.upper, layers[:-1], layers[1:]):
      total = total + net(below).log_prob(z_l)
    return total

  def log_prob_per_dim(self, z: jax.Array) -> jax.Array:
    raise _not_factorized(self)


@flax.struct.dataclass
class HierarchicalPrior:
  """p(z_1..z_L) = p(z_L) prod_{l<L} p(z_l|z_{l+1}), p(z_L) = N(0, I): a top-down chain of
  diagonal Gaussian layers. ``lower``: p(z_l|z_{l+1}) for l = 1..L-1 (``GaussianMLP``,
  in that order); ``top_dim`` = d_L. z = [z_1, ..., z_L] as in ``HierarchicalPosterior``."""
  lower: tuple[GaussianMLP, ...]
  top_dim: int = flax.struct.field(pytree_node=False)
  factorized: ClassVar[bool] = False

  @property
  def dims(self) -> tuple[int, ...]:
    return (*(net.layers[-1]["b"].shape[-1] // 2 for net in self.lower), self.top_dim)

  def log_prob(self, z: jax.Array) -> jax.Array:
    """log N(z_L; 0, I) + sum_l log p(z_l|z_{l+1}): z [..., sum d] -> [...]."""
    layers = _split_layers(z, self.dims)
    total = standard_normal_log_prob(layers[-1])
    for net, z_l, above in zip(self.lower, layers[:-1], layers[1:]):
      total = total + net(above).log_prob(z_l)
    return total

  def sample(self, rng: jax.Array, num: int) -> jax.Array:
    """[num, sum d] ancestral draws: z_L ~ N(0, I) (``jax.random.normal(rng, ...)``), then
    z_l ~ p(z_l|z_{l+1}) with noise from ``fold_in(rng, L - l)``."""
    z = jax.random.normal(rng, (num, self.top_dim))
    layers = [z]
    for depth, net in enumerate(reversed(self.lower), start=1):
      p = net(layers[0])
      eps = jax.random.normal(jax.random.fold_in(rng, depth), p.mean.shape, p.mean.dtype)
      layers.insert(0, p.mean + jnp.exp(0.5 * p.log_var) * eps)
    return jnp.concatenate(layers, -1)

  def log_prob_per_dim(self, z: jax.Array) -> jax.Array:
    raise _not_factorized(self)


Distribution = (DiagonalGaussian | StandardNormal | MixtureOfDiagonalGaussians
                | FullCovarianceGaussian | PlanarFlow | InverseAutoregressiveFlow
                | HierarchicalPosterior | HierarchicalPrior)


def _kl_gaussian_standard_normal(q: DiagonalGaussian, p: StandardNormal,
                                 per_dim: bool) -> jax.Array:
  return kl_diag_gaussian_standard_normal(q.mean, q.log_var, event_ndims=0 if per_dim else 1)


def _kl_gaussians(q: DiagonalGaussian, p: DiagonalGaussian, per_dim: bool) -> jax.Array:
  return kl_diag_gaussians(q.mean, q.log_var, p.mean, p.log_var, event_ndims=0 if per_dim else 1)


def _kl_full_covariance_standard_normal(q: FullCovarianceGaussian, p: StandardNormal,
                                        per_dim: bool) -> jax.Array:
  if per_dim:   # the KL between each dimension's marginals N(mu_d, Sigma_dd) and N(0, 1)
    return kl_diag_gaussian_standard_normal(q.mean, jnp.log(q.variance()), event_ndims=0)
  return kl_full_covariance_standard_normal(q.mean, q.scale_tril)


# (type(q), type(p)) -> closed-form KL(q || p); a pair not listed has none.
_CLOSED_FORM_KL: dict[tuple[type, type], Callable[..., jax.Array]] = {
    (DiagonalGaussian, StandardNormal): _kl_gaussian_standard_normal,
    (DiagonalGaussian, DiagonalGaussian): _kl_gaussians,
    (FullCovarianceGaussian, StandardNormal): _kl_full_covariance_standard_normal,
}


def has_closed_form_kl(q: Any, p: Any) -> bool:
  """Whether KL(q || p) has a closed form here (``kl_divergence`` uses it)."""
  return (type(q), type(p)) in _CLOSED_FORM_KL


def _closed_form_kl(q: Any, p: Any, per_dim: bool) -> jax.Array:
  if not has_closed_form_kl(q, p):
    raise NotImplementedError(
        f"KL({type(q).__name__} || {type(p).__name__}) has no closed form; estimate it at "
        "samples z ~ q with kl_divergence(q, p, z)")
  return _CLOSED_FORM_KL[type(q), type(p)](q, p, per_dim)


def kl_divergence(q: Any, p: Any, z: jax.Array | None = None,
                  per_dim: bool = False) -> jax.Array:
  """KL(q || p): the closed form when the pair has one, else a Monte Carlo estimate.

  Closed forms: DiagonalGaussian || StandardNormal (Kingma & Welling 2014, Appendix B)
    KL = 1/2 sum_d [ mu_d^2 + var_d - 1 - log var_d ],
  DiagonalGaussian || DiagonalGaussian
    KL = 1/2 sum_d [ log var_p,d - log var_q,d + (var_q,d + (mu_q,d - mu_p,d)^2) / var_p,d - 1 ],
  FullCovarianceGaussian || StandardNormal
    KL = 1/2 [ tr(Sigma) + mu^T mu - d - log det Sigma ].
  Otherwise (e.g. against a ``MixtureOfDiagonalGaussians``) the estimate at the given
  samples z ~ q, KL_hat = log q(z) - log p(z), unbiased (E_q KL_hat = KL); average it
  over samples. Without a closed form, ``z`` is required. z: [..., batch, dim] -> [..., batch].

  ``per_dim=True`` returns [..., dim]: the KL between each dimension's marginals,
  KL(q(z_d) || p(z_d)) (closed form, or log q(z_d) - log p(z_d) at z). These sum to the
  KL when both q and p are ``factorized``; for a mixture prior they do not.
  """
  if has_closed_form_kl(q, p):
    return _closed_form_kl(q, p, per_dim)
  if z is None:
    raise ValueError(f"KL({type(q).__name__} || {type(p).__name__}) has no closed form: pass "
                     "samples z ~ q for the Monte Carlo estimate log q(z) - log p(z)")
  if per_dim:
    return q.log_prob_per_dim(z) - p.log_prob_per_dim(z)
  return q.log_prob(z) - p.log_prob(z)
