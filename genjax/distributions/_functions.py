"""Log-densities, closed-form KL divergences and reparameterized sampling as pure functions
of arrays: what the distribution objects of ``genjax.distributions`` are built on.

Conventions: a diagonal Gaussian is given by its ``mean`` and ``log_var`` (log of the
variance, elementwise). Every log-density and KL sums over the last ``event_ndims`` axes
(the event) and keeps the leading (batch / sample) axes, so
``gaussian_log_prob(x, mu, lv, event_ndims=3)`` on ``x: [batch, H, W, C]`` returns
``[batch]``. All values are in nats. Keys are one key (uint32[2]) or one per example
([batch, 2]): ``per_example_normal``, ``fold_in_keys``, ``reparameterize``.
"""

from __future__ import annotations

import math

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


def kl_full_covariance_standard_normal(mean: jax.Array, scale_tril: jax.Array) -> jax.Array:
  """KL( N(mean, L L^T) || N(0, I) ), closed form: mean [..., d], scale_tril [..., d, d] -> [...].

  KL = 1/2 [ tr(Sigma) + mean^T mean - d - log det Sigma ],  tr(Sigma) = sum_ij L_ij^2,
  log det Sigma = 2 sum_d log L_dd  (e.g. Bishop 2006, PRML, Eq. 2.123 / Appendix B).
  """
  trace = jnp.sum(jnp.square(scale_tril), axis=(-2, -1))
  log_det = 2.0 * jnp.sum(jnp.log(jnp.diagonal(scale_tril, axis1=-2, axis2=-1)), -1)
  return 0.5 * (trace + jnp.sum(jnp.square(mean), -1) - mean.shape[-1] - log_det)


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
