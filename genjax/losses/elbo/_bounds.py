"""The ELBO as a pure loss: its per-example terms (``make_elbo_terms``, ``elbo_metrics``),
the closed-form or sampled KL (``analytic_kl``), the KL weight's warm-up
(``beta_schedule``), free bits (``free_bits_kl``) and the (beta-weighted, K-sample,
STL) loss ``make_elbo_loss``.

  ELBO(x) = E_{q(z|x)}[ log p(x|z) ] - KL( q(z|x) || p(z) )   <=  log p(x)

(Kingma & Welling 2014, Eq. 3; beta-VAE: Higgins et al. 2017 weights the KL by beta.)
"""

from __future__ import annotations

from typing import Any, Callable

import chex
import flax.linen as nn
import jax
import jax.numpy as jnp

from genjax import distributions as D
from genjax.likelihoods import Likelihood
from genjax.losses.elbo._samples import sample_terms
from genjax.losses.elbo._variants import KL_ESTIMATORS
from genjax.models import protocol
from genjax.types import Batch, LossFn, Metrics

TermsFn = Callable[[Any, Batch, jax.Array], dict[str, jax.Array]]


def _check_kl(kl: str) -> None:
  if kl not in KL_ESTIMATORS:
    raise ValueError(f"kl={kl!r}: expected one of {', '.join(KL_ESTIMATORS)}")


def analytic_kl(q: Any, p: Any, per_dim: bool = False) -> jax.Array:
  """Closed-form KL(q(z|x) || p(z)) ([batch], or [batch, latent] with ``per_dim``) for
  ``kl="analytic"``; a ValueError naming the fix when the pair has none."""
  if not D.has_closed_form_kl(q, p):
    raise ValueError(
        f"kl='analytic' needs a closed-form KL(q(z|x) || p(z)), and KL({type(q).__name__} || "
        f"{type(p).__name__}) has none (e.g. a VampPrior or a flow posterior): use kl='mc' "
        "(variants elbo_mc, elbo_k=K, iwae=K, composed e.g. elbo_mc+beta=B; and, but for a "
        "flow posterior, elbo_stl, iwae_dreg=K)")
  if per_dim and not q.factorized:
    raise ValueError(f"a per-dimension KL (free bits) needs a posterior and a prior that "
                     f"factorize over latent dimensions; {type(q).__name__} does not")
  return D.kl_divergence(q, p, per_dim=per_dim)


def make_elbo_terms(model: nn.Module, likelihood: Likelihood, kl: str = "analytic") -> TermsFn:
  """Per-example ELBO terms with one reparameterized sample z ~ q(z|x).

  Returns ``terms(params, batch, rng) -> {"log_px": [batch], "kl": [batch]}`` with
  log_px = log p(x|z), z = mu + sigma * eps (a one-sample estimate of E_q log p(x|z)),
  and kl = KL(q(z|x) || p(z)) in closed form (``analytic``; a ValueError at the first
  call when the pair has none) or its one-sample estimate log q(z|x) - log p(z) at the
  same z (``mc``). A conditional model gets ``batch["condition"]`` (q(z|x, c), p(x|z, c)).
  """
  _check_kl(kl)

  def terms(params: Any, batch: Batch, rng: jax.Array) -> dict[str, jax.Array]:
    x, condition = batch["image"], batch.get("condition")
    chex.assert_rank(x, 4)
    q = protocol.posterior(model, params, x, condition)
    p = protocol.prior(model, params)
    if kl == "analytic":
      z = q.sample(rng)
      kl_term = analytic_kl(q, p)
    else:
      z, log_q = q.sample_and_log_prob(rng)
      kl_term = log_q - p.log_prob(z)
    out = protocol.decode(model, params, z, condition)
    return {"log_px": likelihood.log_prob(x, out), "kl": kl_term}

  return terms


def beta_schedule(step: jax.Array, beta: float, warmup_steps: int) -> jax.Array:
  """KL weight at ``step``: beta * min(1, step / warmup_steps) (linear warm-up from 0;
  Bowman et al. 2016, Sonderby et al. 2016); constant ``beta`` when warmup_steps == 0."""
  if warmup_steps <= 0:
    return jnp.asarray(beta, jnp.float32)
  return beta * jnp.minimum(1.0, jnp.asarray(step, jnp.float32) / warmup_steps)


def free_bits_kl(kl_per_dim: jax.Array, free_bits: float) -> jax.Array:
  """KL with a per-dimension floor ("free bits", Kingma et al. 2016, IAF, Appendix C.8).

  kl_per_dim: [..., batch, latent_dim] per-example, per-dimension KL (or its estimate).
  Returns the scalar sum_d max(free_bits, mean_batch KL_d): dimensions whose batch-mean
  KL is below the floor get no gradient pushing them further toward the prior.
  """
  per_dim = jnp.mean(kl_per_dim.reshape(-1, kl_per_dim.shape[-1]), axis=0)
  return jnp.sum(jnp.maximum(per_dim, free_bits))


def make_elbo_loss(model: nn.Module, likelihood: Likelihood, kl: str = "analytic",
                   beta: float = 1.0, num_samples: int = 1, estimator: str = "reparam",
                   warmup_steps: int = 0, free_bits: float = 0.0) -> LossFn:
  """The negative (beta-weighted) ELBO as a pure loss, averaged over K samples.

  loss = mean_batch[ 1/K sum_k -log p(x|z_k) ] + beta_t * KL_term     (sum over pixels and
  latents inside each example, mean over the batch; beta = 1, K = 1 is the ELBO of Kingma
  & Welling 2014; K > 1 is the "VAE k=K" baseline of Burda et al. 2016, Table 1).

  KL_term: ``analytic`` is the closed-form mean_batch KL(q(z|x) || p(z)) (refused with a
  ValueError at the first call when the pair has none, e.g. a VampPrior); ``mc`` is
  mean_{k,batch}[log q(z_k|x) - log p(z_k)] at the same samples. ``free_bits > 0`` floors
  each dimension's batch-mean KL (``free_bits_kl``; needs a factorized prior). beta_t =
  ``beta_schedule(step, beta, warmup_steps)`` with the step read from ``batch["step"]``
  (0 when absent).

  ``estimator``: ``reparam`` differentiates everything; ``stl`` ("sticking the landing",
  Roeder et al. 2017) drops the score term by stopping gradients to q's parameters inside
  log q(z|x); its expected gradient is unchanged, and it is exactly zero at q = p(z|x).
  STL needs the sampled form of the KL (``kl="mc"``).

  Metrics, in nats per example: ``recon`` = -E log p(x|z), ``kl`` (unclamped), ``elbo`` =
  -(recon + kl) whatever beta is, ``beta`` and ``loss``.
  """
  _check_kl(kl)
  if estimator not in ("reparam", "stl"):
    raise ValueError(f"estimator={estimator!r} for the ELBO: expected reparam or stl "
                     "(dreg is an IWAE estimator)")
  if estimator == "stl" and kl != "mc":
    raise ValueError("estimator='stl' needs kl='mc': STL drops the score term of the "
                     "sampled log q(z|x), which the closed-form KL does not have")

  def loss_fn(params: Any, batch: Batch, rng: jax.Array) -> tuple[jax.Array, Metrics]:
    t = sample_terms(model, likelihood, params, batch["image"], rng, num_samples,
                     stop_q=estimator == "stl", condition=batch.get("condition"),
                     per_dim=kl == "mc" and free_bits > 0)
    recon = -jnp.mean(t["log_px"])
    if kl == "analytic" and free_bits > 0:
      kl_per_dim = analytic_kl(t["posterior"], t["prior"], per_dim=True)   # [batch, latent]
      kl_value = jnp.sum(kl_per_dim, -1).mean()
    elif kl == "analytic":   # a full covariance's KL is not the sum of its marginals'
      kl_per_dim, kl_value = None, analytic_kl(t["posterior"], t["prior"]).mean()
    else:
      kl_per_dim = t.get("kl_per_dim")                          # [K, batch, latent] or None
      kl_value = jnp.mean(t["log_q"] - t["log_pz"])
    kl_term = free_bits_kl(kl_per_dim, free_bits) if free_bits > 0 else kl_value
    beta_t = beta_schedule(batch.get("step", 0), beta, warmup_steps)
    loss = recon + beta_t * kl_term
    return loss, {"loss": loss, "recon": recon, "kl": kl_value, "elbo": -(recon + kl_value),
                  "beta": beta_t}

  return loss_fn


def elbo_metrics(terms: dict[str, jax.Array]) -> dict[str, jax.Array]:
  """Per-example recon / kl / elbo from ``make_elbo_terms`` output (for evaluation)."""
  return {"recon": -terms["log_px"], "kl": terms["kl"], "elbo": terms["log_px"] - terms["kl"]}
