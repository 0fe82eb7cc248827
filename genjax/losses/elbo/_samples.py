"""K reparameterized samples z_k ~ q(z|x) and the terms of their log-weights
log w_k = log p(x|z_k) + log p(z_k) - log q(z_k|x): what the ELBO (``_bounds``) and IWAE
(``_iwae``) losses are computed from."""

from __future__ import annotations

from typing import Any

import chex
import flax.linen as nn
import jax
import jax.numpy as jnp

from genjax.likelihoods import Likelihood
from genjax.models import protocol


def _decode_log_prob(model: nn.Module, likelihood: Likelihood, params: Any, x: jax.Array,
                     z: jax.Array, condition: jax.Array | None = None) -> jax.Array:
  """log p(x|z_k) for z: [K, batch, latent] -> [K, batch] (condition: [batch, C])."""
  k, b = z.shape[:2]
  if condition is not None:
    condition = jnp.broadcast_to(condition, (k, *condition.shape)).reshape(k * b, -1)
  out = protocol.decode(model, params, z.reshape(k * b, -1), condition)
  return likelihood.log_prob(x[None], out.reshape(k, b, *out.shape[1:]))


def sample_terms(model: nn.Module, likelihood: Likelihood, params: Any, x: jax.Array,
                 rng: jax.Array, num_samples: int, stop_q: bool = False,
                 condition: jax.Array | None = None, per_dim: bool = False,
                 prior_params: Any = None) -> dict[str, Any]:
  """K reparameterized samples z_k ~ q(z|x) and the terms of their log-weights.

  z and log q(z|x) come from ``q.sample_and_log_prob`` (a flow's density is known only at
  its own samples); with ``stop_q``, from ``q.sample`` and ``log_prob`` at stopped q.

  Returns ``log_px, log_pz, log_q: [K, batch]``, ``log_w = log_px + log_pz - log_q``,
  ``z: [K, batch, latent]`` and the distributions ``posterior`` (q(z|x), with gradients)
  and ``prior``. ``stop_q`` evaluates log q(z|x) with q's parameters behind stop_gradient
  (z itself still depends on them): the STL "path derivative" of Roeder et al. 2017,
  Eq. 8. ``per_dim`` adds ``kl_per_dim: [K, batch, latent]``, the one-sample estimate
  log q(z_d|x) - log p(z_d) (it needs q and p ``factorized``, so that it sums to
  log q - log p). ``prior_params`` (default ``params``) are the parameters p(z) is
  computed from (DReG stops them). ``condition: [batch, C]`` conditions q and p(x|z).
  """
  chex.assert_rank(x, 4)
  q = protocol.posterior(model, params, x, condition)
  p = protocol.prior(model, params if prior_params is None else prior_params)
  if stop_q:
    z = q.sample(rng, num_samples)
    q_eval = jax.lax.stop_gradient(q)
    log_q = q_eval.log_prob(z)          # a flow refuses: log q at given z, not its own
  else:
    q_eval = q
    z, log_q = q.sample_and_log_prob(rng, num_samples)
  log_pz = p.log_prob(z)
  log_px = _decode_log_prob(model, likelihood, params, x, z, condition)
  out = {"log_px": log_px, "log_pz": log_pz, "log_q": log_q, "log_w": log_px + log_pz - log_q,
         "z": z, "posterior": q, "prior": p}
  if per_dim:
    if not (q.factorized and p.factorized):
      raise ValueError(f"a per-dimension KL (free bits) needs a posterior and a prior that "
                       "factorize over latent dimensions; "
                       f"{type(p if q.factorized else q).__name__} does not")
    out["kl_per_dim"] = q_eval.log_prob_per_dim(z) - p.log_prob_per_dim(z)
  return out
