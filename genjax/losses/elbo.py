"""The ELBO family as pure losses: the ELBO, its variants, IWAE and gradient estimators.

Every objective here is built from a model and returns a pure function of
``(params, batch, rng)``. Terms are computed per example (``[batch]``), summed over
pixels and latent dimensions, and only then averaged over the batch: a mean over
pixels would rescale the likelihood against the KL and would no longer be an ELBO.
All values are in nats per example.

  ELBO(x) = E_{q(z|x)}[ log p(x|z) ] - KL( q(z|x) || p(z) )   <=  log p(x)

(Kingma & Welling 2014, Auto-Encoding Variational Bayes, Eq. 3; beta-VAE:
Higgins et al. 2017 weights the KL by beta.) With K importance samples
z_k ~ q(z|x) and log-weights log w_k = log p(x|z_k) + log p(z_k) - log q(z_k|x):

  ELBO_K(x) = 1/K sum_k log w_k                 (the "VAE k=K" baseline)
  IWAE_K(x) = log 1/K sum_k w_k                 (Burda et al. 2016, Eq. 8)
  ELBO = ELBO_1 = IWAE_1 <= IWAE_K <= IWAE_{K+1} <= log p(x)

The model is any latent-variable model of ``genjax.models.protocol``: q(z|x) is
``posterior``, p(z) is ``prior`` (N(0, I), a VampPrior mixture, ...), p(x|z) is
``likelihood`` of ``decode``. The closed-form KL (``kl="analytic"``) is used where
``distributions.kl_divergence`` has one for the (posterior, prior) pair; otherwise it is
refused and ``kl="mc"`` estimates the KL at the samples. Samples and their log q(z|x) come
from ``q.sample_and_log_prob`` (for a closed-form density: sample, then log_prob), so a
normalizing-flow posterior, whose density is known only at its own samples
(log q(z_K) = log q_0(z_0) - sum_k log |det dz_k/dz_{k-1}|), trains with every Monte Carlo
form; STL and DReG evaluate log q at stopped parameters at given z, which a flow cannot,
and are refused for it (a ValueError at the first call).

Gradient estimators are written as surrogate losses whose value is the objective and
whose gradient is the estimator: plain reparameterization, "sticking the landing"
(STL) and doubly reparameterized gradients (DReG). The encoder's parameters are the
entries the model declares (``model.encoder_params``, ``protocol.encoder_mask``); STL
and DReG stop gradients to q's parameters inside log q(z|x). A conditional model
(``models.CVAE``) takes ``batch["condition"]``: every ELBO variant then bounds
log p(x|c) unchanged.

Variants by name: ``parse_variant("iwae=5+beta_warmup=1000") -> Objective`` and
``make_loss(model, likelihood, objective)``. Every name is one ``Variant`` in the registry
``VARIANTS`` (its form, e.g. "iwae=K", its value's type, a one-line doc with the paper,
and the ``Objective`` fields it sets); ``VARIANT_FORMS`` lists the forms for help texts.
Parts joined by "+" compose: their fields merge, two parts that set one field to
different values are refused, and so are combinations the losses do not compute
(``unsupported``: free bits or STL with IWAE, DReG without IWAE). A new variant is one
entry, e.g. ``register(Variant("stl_k", "the K-sample ELBO with STL (Roeder et al. 2017)",
lambda k: {"kind": "elbo", "kl": "mc", "num_samples": k, "estimator": "stl"},
positive_int("K")))``, and then composes with every other ("stl_k=5+beta=0.5").

The other losses sit beside this module: ``losses.autoencoder`` (the (denoising)
autoencoder's reconstruction loss), ``losses.semi_supervised`` (the classifier's
cross-entropy and the semi-supervised M2 objective of Kingma et al. 2014) and
``losses.gan`` (minimax, non-saturating and hinge GAN losses with the R1 gradient
penalty); the likelihoods p(x|z) are in ``genjax.likelihoods``.
"""

from __future__ import annotations

import dataclasses
import re
from typing import Any, Callable

import chex
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from genjax import distributions as D
from genjax.likelihoods import Likelihood
from genjax.models import protocol
from genjax.types import Batch, LossFn, Metrics

TermsFn = Callable[[Any, Batch, jax.Array], dict[str, jax.Array]]

KL_ESTIMATORS = ("analytic", "mc")
ESTIMATORS = ("reparam", "stl", "dreg")


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


def log_mean_exp(log_w: jax.Array, axis: int = 0) -> jax.Array:
  """log (1/K) sum_k exp(log_w_k), computed stably with logsumexp."""
  return jax.scipy.special.logsumexp(log_w, axis=axis) - jnp.log(log_w.shape[axis])


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


def elbo_metrics(terms: dict[str, jax.Array]) -> dict[str, jax.Array]:
  """Per-example recon / kl / elbo from ``make_elbo_terms`` output (for evaluation)."""
  return {"recon": -terms["log_px"], "kl": terms["kl"], "elbo": terms["log_px"] - terms["kl"]}


@dataclasses.dataclass(frozen=True)
class Objective:
  """A training objective and its gradient estimator, named by a variant string.

  ``kind`` elbo (``make_elbo_loss``) or iwae (``make_iwae_loss``); ``num_samples`` K;
  ``kl`` analytic or mc; ``estimator`` reparam, stl (ELBO) or dreg (IWAE); ``beta`` the KL
  weight, reached linearly over ``warmup_steps``; ``free_bits`` the per-dimension KL floor
  in nats (ELBO only). ``name`` is the variant string it was parsed from."""
  name: str
  kind: str = "elbo"          # elbo | iwae
  num_samples: int = 1
  kl: str = "analytic"
  estimator: str = "reparam"
  beta: float = 1.0
  warmup_steps: int = 0
  free_bits: float = 0.0


OBJECTIVE_FIELDS = tuple(f.name for f in dataclasses.fields(Objective) if f.name != "name")


@dataclasses.dataclass(frozen=True)
class Value:
  """The value a variant takes after "=": its placeholder in help texts (``metavar``), its
  type (``cast``: int or float), the smallest value allowed and how to say so."""
  metavar: str
  cast: type
  minimum: float
  description: str

  def parse(self, text: str) -> int | float:
    """The value of ``text``; a ValueError when it is no finite ``cast`` >= ``minimum``."""
    number = self.cast(text)
    if not np.isfinite(number) or number < self.minimum:
      raise ValueError(f"{self.metavar}={text!r}: expected {self.description}")
    return number


def positive_int(metavar: str) -> Value:
  """A value 1, 2, ...: a number of samples or steps."""
  return Value(metavar, int, 1, "positive integers")


def non_negative(metavar: str) -> Value:
  """A finite float >= 0: a weight or a number of nats."""
  return Value(metavar, float, 0.0, "non-negative numbers")


@dataclasses.dataclass(frozen=True)
class Variant:
  """One entry of the variant registry.

  ``name`` (lower-case, digits, "_"), ``doc`` (one line, with the paper), ``value`` (None
  for a bare name such as "elbo"; else the ``Value`` after "=", e.g. ``positive_int("K")``)
  and ``sets``: value -> the ``Objective`` fields it sets (the value is None for a bare
  name). A field a variant leaves out keeps its default unless another part sets it."""
  name: str
  doc: str
  sets: Callable[[Any], dict[str, Any]]
  value: Value | None = None

  @property
  def form(self) -> str:
    """How it is written: "elbo", "iwae=K"."""
    return self.name if self.value is None else f"{self.name}={self.value.metavar}"


def register(variant: Variant, registry: dict[str, Variant] | None = None) -> Variant:
  """Adds ``variant`` to ``registry`` (default ``VARIANTS``, whose ``VARIANT_FORMS`` it
  refreshes); a ValueError for a name already there or one that is not an identifier."""
  target = VARIANTS if registry is None else registry
  if not re.fullmatch(r"[a-z][a-z0-9_]*", variant.name):
    raise ValueError(f"variant name {variant.name!r}: use lower-case letters, digits and _")
  if variant.name in target:
    raise ValueError(f"variant {variant.name!r} is already registered: "
                     f"{target[variant.name].doc}")
  target[variant.name] = variant
  if registry is None:
    global VARIANT_FORMS
    VARIANT_FORMS = variant_forms()
  return variant


def variant_forms(registry: dict[str, Variant] | None = None) -> tuple[str, ...]:
  """The forms of the registered variants, in registration order: ("elbo", ..., "iwae=K")."""
  return tuple(v.form for v in (VARIANTS if registry is None else registry).values())


# The library's own variants, in the order help texts list them. A new variant is one entry
# here (or a ``register`` call where it is used) and a row in tests/test_losses_variants.py.
BUILTIN_VARIANTS: tuple[Variant, ...] = (
    Variant("elbo", "the ELBO with the closed-form KL (Kingma & Welling 2014, Sec. 2.3)",
            lambda _: {"kind": "elbo", "kl": "analytic"}),
    Variant("elbo_mc", "the ELBO with the one-sample Monte Carlo KL (Kingma & Welling 2014)",
            lambda _: {"kind": "elbo", "kl": "mc"}),
    Variant("elbo_stl", "the sticking-the-landing gradient, MC KL (Roeder et al. 2017)",
            lambda _: {"kl": "mc", "estimator": "stl"}),
    Variant("elbo_k", "the ELBO averaged over K samples ('VAE k=K', Burda et al. 2016)",
            lambda k: {"kind": "elbo", "kl": "mc", "num_samples": k}, positive_int("K")),
    Variant("beta", "the KL weighted by B (beta-VAE, Higgins et al. 2017)",
            lambda b: {"beta": b}, non_negative("B")),
    Variant("beta_warmup", "the KL weight raised linearly from 0 over STEPS steps "
            "(Bowman et al. 2016, Sonderby et al. 2016)",
            lambda s: {"warmup_steps": s}, positive_int("STEPS")),
    Variant("free_bits", "a per-dimension KL floor of NATS (Kingma et al. 2016, App. C.8)",
            lambda n: {"free_bits": n}, non_negative("NATS")),
    Variant("iwae", "the K-sample importance weighted bound (Burda et al. 2016)",
            lambda k: {"kind": "iwae", "kl": "mc", "num_samples": k}, positive_int("K")),
    Variant("iwae_dreg", "IWAE with doubly reparameterized gradients (Tucker et al. 2019)",
            lambda k: {"kind": "iwae", "kl": "mc", "num_samples": k, "estimator": "dreg"},
            positive_int("K")),
)
VARIANTS: dict[str, Variant] = {}              # name -> Variant: BUILTIN_VARIANTS, then register()
VARIANT_FORMS: tuple[str, ...] = ()            # ("elbo", ..., "iwae=K"); register() refreshes it
for _variant in BUILTIN_VARIANTS:
  register(_variant)
del _variant


def _bad_variant(part: str, text: str, registry: dict[str, Variant]) -> ValueError:
  """The one-line error for a part that is no registered form, listing every form."""
  metavars: dict[str, list[str]] = {}          # "positive integers" -> ["K", "STEPS"]
  for v in registry.values():
    if v.value is not None and v.value.metavar not in metavars.get(v.value.description, []):
      metavars.setdefault(v.value.description, []).append(v.value.metavar)
  values = "; ".join(f"{', '.join(m)}: {d}" for d, m in metavars.items())
  where = repr(part) if part == text.strip() else f"{part!r} in {text!r}"
  return ValueError(f"bad variant {where}: expected one of "
                    f"{', '.join(variant_forms(registry))} ({values}), or several joined "
                    "by '+', e.g. iwae=5+beta_warmup=1000")


def _parse_part(part: str, text: str, registry: dict[str, Variant]) -> tuple[str, dict]:
  """(name, the Objective fields it sets) of one part such as "iwae=5"."""
  name, sep, value = part.partition("=")
  variant = registry.get(name)
  if variant is None or bool(sep) != (variant.value is not None):
    raise _bad_variant(part, text, registry)
  try:
    number = variant.value.parse(value) if sep else None
  except ValueError:
    raise _bad_variant(part, text, registry) from None
  fields = variant.sets(number)
  unknown = sorted(set(fields) - set(OBJECTIVE_FIELDS))
  if unknown:
    raise ValueError(f"variant {name!r} sets {', '.join(unknown)}, which Objective has "
                     f"not (its fields: {', '.join(OBJECTIVE_FIELDS)})")
  return name, fields


def unsupported(objective: Objective, by: Callable[[str], str] | None = None) -> str | None:
  """Why the losses cannot compute ``objective`` (one line), or None when they can.

  ``by(field)`` names what set a field (a variant part); default "field=value"."""
  by = by or (lambda f: f"{f}={getattr(objective, f)!r}")
  o = objective
  if o.kind not in ("elbo", "iwae") or o.kl not in KL_ESTIMATORS or (
      o.estimator not in ESTIMATORS):
    return (f"{by('kind')}, {by('kl')}, {by('estimator')}: expected kind elbo or iwae, kl "
            f"{' or '.join(KL_ESTIMATORS)}, estimator {', '.join(ESTIMATORS)}")
  if o.kind == "iwae" and o.estimator == "stl":
    return (f"{by('estimator')} with {by('kind')}: STL is biased for IWAE (Tucker et al. "
            "2019); use iwae_dreg=K for a lower-variance IWAE gradient")
  if o.kind == "elbo" and o.estimator == "dreg":
    return (f"{by('estimator')} with {by('kind')}: DReG is an estimator of the IWAE "
            "gradient; use iwae_dreg=K (or elbo_stl for the ELBO)")
  if o.kind == "iwae" and o.free_bits > 0:
    return (f"{by('free_bits')} with {by('kind')}: free bits floors the ELBO's KL term, "
            "which the IWAE bound has not; use elbo_k=K+free_bits=NATS")
  if o.kind == "iwae" and o.kl != "mc":
    return f"{by('kl')} with {by('kind')}: IWAE has no closed-form KL term; set kl='mc'"
  if o.estimator == "stl" and o.kl != "mc":
    return (f"{by('estimator')} with {by('kl')}: STL drops the score term of the sampled "
            "KL, which the closed-form KL has not; use elbo_stl")
  return None


def parse_variant(text: str, registry: dict[str, Variant] | None = None) -> Objective:
  """The ``Objective`` of a variant string: one registered form or several joined by "+".

  Each part ("iwae=5", "beta_warmup=1000") sets the fields its ``Variant`` declares; the
  parts' fields merge, and the rest keep ``Objective``'s defaults. A ValueError (one line,
  naming the parts) for an unknown or malformed part, a part given twice, two parts that
  set one field to different values (``iwae=5+elbo_k=3``) and a combination the losses do
  not compute (``unsupported``). The Objective's ``name`` is the stripped text.
  """
  registry = VARIANTS if registry is None else registry
  fields: dict[str, Any] = {}
  origin: dict[str, str] = {}
  seen: set[str] = set()
  for part in (p.strip() for p in text.strip().split("+")):
    name, sets = _parse_part(part, text, registry)
    if name in seen:
      raise ValueError(f"variant {text.strip()!r}: {name} is given twice")
    seen.add(name)
    for field, value in sets.items():
      if field in fields and fields[field] != value:
        raise ValueError(f"variant {text.strip()!r}: {origin[field]} sets {field}="
                         f"{fields[field]!r} but {part} sets {field}={value!r}; drop one")
      fields[field], origin[field] = value, part
  objective = Objective(text.strip(), **fields)

  def by(field: str) -> str:
    value = getattr(objective, field)
    return origin[field] if field in origin else f"the default {field}={value!r}"

  why = unsupported(objective, by)
  if why:
    raise ValueError(f"variant {text.strip()!r}: {why}")
  return objective


def parse_variants(text: str, registry: dict[str, Variant] | None = None) -> list[Objective]:
  """Comma-separated variants; each parsed by ``parse_variant``; no duplicate names."""
  variants = [parse_variant(v, registry) for v in text.split(",")]
  names = [v.name for v in variants]
  if len(set(names)) != len(names):
    raise ValueError(f"duplicate variant in {text!r}")
  return variants


def make_loss(model: nn.Module, likelihood: Likelihood, objective: Objective) -> LossFn:
  """The pure loss for ``objective``: ``make_elbo_loss`` or ``make_iwae_loss`` (with beta
  and its warm-up); a ValueError when ``unsupported(objective)``."""
  why = unsupported(objective)
  if why:
    raise ValueError(f"objective {objective.name!r}: {why}")
  if objective.kind == "iwae":
    return make_iwae_loss(model, likelihood, objective.num_samples, objective.estimator,
                          objective.beta, objective.warmup_steps)
  return make_elbo_loss(model, likelihood, objective.kl, objective.beta, objective.num_samples,
                        objective.estimator, objective.warmup_steps, objective.free_bits)
