"""The importance weighted bound as a pure loss (``make_iwae_loss``, Burda et al. 2016),
with annealed weights and the doubly reparameterized gradient (DReG, Tucker et al. 2019),
and ``log_mean_exp``.

  IWAE_K(x) = log 1/K sum_k w_k,  log w_k = log p(x|z_k) + log p(z_k) - log q(z_k|x)
  ELBO = IWAE_1 <= IWAE_K <= IWAE_{K+1} <= log p(x)
"""

from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from genjax.likelihoods import Likelihood
from genjax.losses.elbo._bounds import beta_schedule
from genjax.losses.elbo._samples import _decode_log_prob, sample_terms
from genjax.models import protocol
from genjax.types import Batch, LossFn, Metrics


def log_mean_exp(log_w: jax.Array, axis: int = 0) -> jax.Array:
  """log (1/K) sum_k exp(log_w_k), computed stably with logsumexp."""
  return jax.scipy.special.logsumexp(log_w, axis=axis) - jnp.log(log_w.shape[axis])


def _annealed_log_w(t: dict[str, Any], beta_t: jax.Array) -> jax.Array:
  """log w_k = log p(x|z_k) + beta_t (log p(z_k) - log q(z_k|x)): [K, batch].

  Written as log_w + (beta_t - 1)(log p - log q), which is log_w exactly (bit for bit, value
  and gradient) when beta_t = 1, so that the end of a warm-up is plain IWAE."""
  return t["log_w"] + (beta_t - 1.0) * (t["log_pz"] - t["log_q"])


def _dreg_objective(model: nn.Module, likelihood: Likelihood, params: Any, x: jax.Array,
                    rng: jax.Array, num_samples: int, condition: jax.Array | None,
                    beta_t: jax.Array | None) -> tuple[jax.Array, dict[str, Any]]:
  """The DReG surrogate of the (annealed) IWAE bound: value IWAE_K^beta, gradient DReG.

  ``beta_t=None`` is beta = 1 (the surrogate of Tucker et al. 2019, Eq. 7, op for op).
  Returns the batch-mean objective and ``sample_terms``' output (the encoder pass)."""
  # Encoder term: z live, log q at stopped q, decoder and prior stopped.
  t = sample_terms(model, likelihood, protocol.stop_gradient_except_encoder(model, params),
                   x, rng, num_samples, stop_q=True, condition=condition,
                   prior_params=jax.lax.stop_gradient(params))
  log_w = t["log_w"] if beta_t is None else _annealed_log_w(t, beta_t)
  bound = log_mean_exp(log_w)
  weights = jax.lax.stop_gradient(jax.nn.softmax(log_w, axis=0))       # w~: [K, batch]
  # d/dphi: sum_k [(1 - beta) w~_k + beta w~_k^2] dlog w_k/dz_k dz_k/dphi (w~_k^2 at beta = 1).
  encoder_weights = weights ** 2 if beta_t is None else (
      (1.0 - beta_t) * weights + beta_t * weights ** 2)
  # Decoder and prior term: the same samples, stopped, so no path reaches q.
  z = jax.lax.stop_gradient(t["z"])
  log_px = _decode_log_prob(model, likelihood, params, x, z, condition)
  log_pz = protocol.prior(model, params).log_prob(z)
  if beta_t is None:
    log_w_dec = log_px + log_pz - jax.lax.stop_gradient(t["log_q"])
  else:   # only its gradient counts: d log p(x|z_k) + beta_t d log p(z_k)
    log_w_dec = log_px + beta_t * log_pz
  surrogate = jnp.sum(encoder_weights * log_w + weights * log_w_dec, axis=0)
  objective = jnp.mean(jax.lax.stop_gradient(bound) + surrogate
                       - jax.lax.stop_gradient(surrogate))
  return objective, t


def make_iwae_loss(model: nn.Module, likelihood: Likelihood, num_samples: int,
                   estimator: str = "reparam", beta: float = 1.0,
                   warmup_steps: int = 0) -> LossFn:
  """The negative IWAE bound with K samples (Burda et al. 2016, Eq. 8), mean over the batch.

  IWAE_K(x) = log 1/K sum_k w_k, log w_k = log p(x|z_k) + log p(z_k) - log q(z_k|x),
  computed with logsumexp. Its reparameterized gradient weights each sample's gradient by
  the normalized weight w~_k = w_k / sum_j w_j (Burda et al. 2016, Eq. 14).

  KL weight and warm-up: with beta_t = ``beta_schedule(step, beta, warmup_steps)`` (the
  step read from ``batch["step"]``, 0 when absent) the loss is -IWAE_K^beta with annealed
  importance weights
    log w_k = log p(x|z_k) + beta_t (log p(z_k) - log q(z_k|x)),
  i.e. w_k = p(x|z_k) (p(z_k) / q(z_k|x))^beta_t. beta_t = 1 is IWAE exactly; beta_t = 0 is
  the reconstruction term log 1/K sum_k p(x|z_k) (for K = 1 the ELBO's E_q log p(x|z));
  for K = 1 it is the beta-weighted ELBO with the sampled KL. With beta = 1 and no warm-up
  the loss is computed as before, op for op.

  ``estimator="dreg"`` (Tucker et al. 2019, Doubly Reparameterized Gradient Estimators for
  Monte Carlo Objectives, Eq. 7) keeps that gradient for the model's parameters theta
  (decoder and prior) but gives the encoder phi
    sum_k w~_k^2 d log w_k / d z_k * d z_k / d phi,
  i.e. the surrogate sum_k sg(w~_k^2) log w_k with log q evaluated at stopped q
  parameters and theta stopped (decoder and prior: a prior that shares the encoder's
  weights, as the VampPrior does, is stopped entirely here), plus
  sum_k sg(w~_k) [log p(x|z_k) + log p(z_k)] at stopped z for theta (sg = stop_gradient;
  the encoder's share of a prior then gets its ordinary w~_k-weighted gradient). The
  loss's value is unchanged; only its gradient changes. It costs a second decoder pass.

  DReG with annealed weights: log w_k depends on phi at fixed z through -beta_t log q, so
  the score term of the reparameterized gradient is -beta_t sum_k w~_k d log q(z_k)/d phi.
  The reparameterization identity E_q[f(z) d log q(z)/d phi] = E[d f/d z dz/d phi] with
  f = w~_k and d w~_k / d log w_k = w~_k - w~_k^2 turns it into a pathwise term, and the
  encoder's gradient becomes
    sum_k [(1 - beta_t) w~_k + beta_t w~_k^2] d log w_k / d z_k * d z_k / d phi
  (w~_k the annealed normalized weights; w~_k^2 at beta_t = 1, Tucker et al.'s estimator;
  1 at K = 1, the STL gradient of the beta-ELBO). The decoder and prior get
  sum_k w~_k [d log p(x|z_k) + beta_t d log p(z_k)] as with the reparameterized estimator.

  Metrics, in nats per example: ``loss`` (-IWAE_K^beta), ``iwae`` (the true bound, beta = 1),
  ``elbo`` (mean_k log w_k at beta = 1: the K-sample ELBO), ``recon`` and ``kl`` (sampled,
  averaged over k) and ``beta`` (beta_t).
  """
  if estimator not in ("reparam", "dreg"):
    raise ValueError(f"estimator={estimator!r} for IWAE: expected reparam or dreg "
                     "(STL is biased for IWAE: Tucker et al. 2019)")
  annealed = beta != 1.0 or warmup_steps > 0

  def loss_fn(params: Any, batch: Batch, rng: jax.Array) -> tuple[jax.Array, Metrics]:
    x, condition = batch["image"], batch.get("condition")
    beta_t = beta_schedule(batch.get("step", 0), beta, warmup_steps)
    if estimator == "reparam":
      t = sample_terms(model, likelihood, params, x, rng, num_samples, condition=condition)
      log_w = _annealed_log_w(t, beta_t) if annealed else t["log_w"]
      objective = jnp.mean(log_mean_exp(log_w))
    else:
      objective, t = _dreg_objective(model, likelihood, params, x, rng, num_samples,
                                     condition, beta_t if annealed else None)
    loss = -objective
    elbo = jnp.mean(t["log_w"])
    kl = jnp.mean(t["log_q"] - t["log_pz"])
    return loss, {"loss": loss, "iwae": jnp.mean(log_mean_exp(t["log_w"])), "elbo": elbo,
                  "kl": kl, "recon": -(elbo + kl), "beta": beta_t}

  return loss_fn
