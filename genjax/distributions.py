"""Log-densities, KL divergences and reparameterized sampling: pure functions, and the
distribution objects built on them.

Conventions: a diagonal Gaussian is given by its ``mean`` and ``log_var``
(log of the variance, elementwise). Every log-density and KL sums over the last
``event_ndims`` axes (the event) and keeps the leading (batch / sample) axes, so
``gaussian_log_prob(x, mu, lv, event_ndims=3)`` on ``x: [batch, H, W, C]`` returns
``[batch]``. All values are in nats.

The objects (``DiagonalGaussian``, ``StandardNormal``, ``MixtureOfDiagonalGaussians``) are
what a latent-variable model's ``posterior`` and ``prior`` return (``genjax.models.protocol``).
Their event is the last axis (the latent vector); they are ``flax.struct`` pytrees, so
``jax.lax.stop_gradient(dist)`` stops every parameter and they pass through ``jit``.
``kl_divergence(q, p)`` is the closed form where one exists and a Monte Carlo estimate
otherwise.
"""

from __future__ import annotations

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


Distribution = DiagonalGaussian | StandardNormal | MixtureOfDiagonalGaussians


def _kl_gaussian_standard_normal(q: DiagonalGaussian, p: StandardNormal,
                                 per_dim: bool) -> jax.Array:
  return kl_diag_gaussian_standard_normal(q.mean, q.log_var, event_ndims=0 if per_dim else 1)


def _kl_gaussians(q: DiagonalGaussian, p: DiagonalGaussian, per_dim: bool) -> jax.Array:
  return kl_diag_gaussians(q.mean, q.log_var, p.mean, p.log_var, event_ndims=0 if per_dim else 1)


# (type(q), type(p)) -> closed-form KL(q || p); a pair not listed has none.
_CLOSED_FORM_KL: dict[tuple[type, type], Callable[..., jax.Array]] = {
    (DiagonalGaussian, StandardNormal): _kl_gaussian_standard_normal,
    (DiagonalGaussian, DiagonalGaussian): _kl_gaussians,
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
    KL = 1/2 sum_d [ log var_p,d - log var_q,d + (var_q,d + (mu_q,d - mu_p,d)^2) / var_p,d - 1 ].
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
