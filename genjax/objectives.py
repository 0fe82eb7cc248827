"""Pure losses: the ELBO family, autoencoder reconstruction, classification and M2.

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

Gradient estimators are written as surrogate losses whose value is the objective and
whose gradient is the estimator: plain reparameterization, "sticking the landing"
(STL) and doubly reparameterized gradients (DReG). The encoder's parameters are
``params["encoder"]`` (the VAE's submodule); STL and DReG stop gradients to them
inside log q(z|x). A conditional model (``models.CVAE``) takes ``batch["condition"]``:
every ELBO variant then bounds log p(x|c) unchanged.

Also here: the (denoising) autoencoder's reconstruction loss, the classifier's
cross-entropy, the semi-supervised M2 objective of Kingma et al. 2014, and the GAN
losses (minimax, non-saturating, hinge) with the R1 gradient penalty.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, Callable

import chex
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax

from genjax import data
from genjax import distributions as D

Batch = dict[str, jax.Array]
Metrics = dict[str, jax.Array]
LossFn = Callable[[Any, Batch, jax.Array], tuple[jax.Array, Metrics]]
TermsFn = Callable[[Any, Batch, jax.Array], dict[str, jax.Array]]

LIKELIHOODS = ("bernoulli", "gaussian_fixed", "gaussian_learned")
KL_ESTIMATORS = ("analytic", "mc")
ESTIMATORS = ("reparam", "stl", "dreg")
ENCODER = "encoder"


@dataclasses.dataclass(frozen=True)
class Likelihood:
  """p(x|z) given the decoder's output.

  ``params_per_channel``: decoder channels per image channel.
  ``log_prob(x, out) -> [batch]``: log p(x|z), summed over H, W, C.
  ``mean(out) -> [batch, H, W, C]``: E[x|z], for pictures.
  """
  name: str
  params_per_channel: int
  log_prob: Callable[[jax.Array, jax.Array], jax.Array]
  mean: Callable[[jax.Array], jax.Array]


def _split_mean_log_var(out: jax.Array) -> tuple[jax.Array, jax.Array]:
  channels = out.shape[-1] // 2
  return out[..., :channels], out[..., channels:]


def make_likelihood(name: str, gaussian_std: float = 0.1) -> Likelihood:
  """Bernoulli (decoder gives logits), Gaussian with fixed std, or with learned variance.

  bernoulli:        log p(x|z) = sum x log sigmoid(l) + (1 - x) log sigmoid(-l)
  gaussian_fixed:   log p(x|z) = sum log N(x; mu, gaussian_std^2)
  gaussian_learned: log p(x|z) = sum log N(x; mu, exp(log_var)), decoder gives (mu, log_var)
  """
  if name == "bernoulli":
    return Likelihood(name, 1, lambda x, out: D.bernoulli_log_prob(x, out, event_ndims=3),
                      jax.nn.sigmoid)
  if name == "gaussian_fixed":
    if gaussian_std <= 0:
      raise ValueError(f"gaussian_std={gaussian_std} must be > 0")
    log_var = 2.0 * math.log(gaussian_std)
    return Likelihood(
        name, 1, lambda x, out: D.gaussian_log_prob(x, out, jnp.full_like(out, log_var), 3),
        lambda out: out)
  if name == "gaussian_learned":
    return Likelihood(
        name, 2, lambda x, out: D.gaussian_log_prob(x, *_split_mean_log_var(out), 3),
        lambda out: _split_mean_log_var(out)[0])
  raise ValueError(f"likelihood={name!r}: expected one of {', '.join(LIKELIHOODS)}")


def encode(model: nn.Module, params: Any, x: jax.Array, condition: jax.Array | None = None):
  """``model.encode(x)``, or ``model.encode(x, condition)`` for a conditional model."""
  args = (x,) if condition is None else (x, condition)
  return model.apply({"params": params}, *args, method=model.encode)


def decode(model: nn.Module, params: Any, z: jax.Array, condition: jax.Array | None = None):
  """``model.decode(z)``, or ``model.decode(z, condition)`` for a conditional model."""
  args = (z,) if condition is None else (z, condition)
  return model.apply({"params": params}, *args, method=model.decode)


def make_elbo_terms(model: nn.Module, likelihood: Likelihood, kl: str = "analytic") -> TermsFn:
  """Per-example ELBO terms with one reparameterized sample z ~ q(z|x).

  Returns ``terms(params, batch, rng) -> {"log_px": [batch], "kl": [batch]}`` with
  log_px = log p(x|z), z = mu + sigma * eps (a one-sample estimate of E_q log p(x|z)),
  and kl = KL(q(z|x) || N(0, I)) in closed form (``analytic``) or its one-sample
  estimate log q(z|x) - log p(z) at the same z (``mc``). A conditional model gets
  ``batch["condition"]`` (q(z|x, c), p(x|z, c)).
  """
  if kl not in KL_ESTIMATORS:
    raise ValueError(f"kl={kl!r}: expected one of {', '.join(KL_ESTIMATORS)}")

  def terms(params: Any, batch: Batch, rng: jax.Array) -> dict[str, jax.Array]:
    x, condition = batch["image"], batch.get("condition")
    chex.assert_rank(x, 4)
    mean, log_var = encode(model, params, x, condition)
    z = D.reparameterize(rng, mean, log_var)
    out = decode(model, params, z, condition)
    if kl == "analytic":
      kl_term = D.kl_diag_gaussian_standard_normal(mean, log_var)
    else:
      kl_term = D.kl_monte_carlo(z, mean, log_var)
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


def _stop_decoder(params: Any) -> Any:
  return {k: v if k == ENCODER else jax.lax.stop_gradient(v) for k, v in params.items()}


def _decode_log_prob(model: nn.Module, likelihood: Likelihood, params: Any, x: jax.Array,
                     z: jax.Array, condition: jax.Array | None = None) -> jax.Array:
  """log p(x|z_k) for z: [K, batch, latent] -> [K, batch] (condition: [batch, C])."""
  k, b = z.shape[:2]
  if condition is not None:
    condition = jnp.broadcast_to(condition, (k, *condition.shape)).reshape(k * b, -1)
  out = decode(model, params, z.reshape(k * b, -1), condition)
  return likelihood.log_prob(x[None], out.reshape(k, b, *out.shape[1:]))


def sample_terms(model: nn.Module, likelihood: Likelihood, params: Any, x: jax.Array,
                 rng: jax.Array, num_samples: int, stop_q: bool = False,
                 condition: jax.Array | None = None) -> dict[str, jax.Array]:
  """K reparameterized samples z_k ~ q(z|x) and the terms of their log-weights.

  Returns ``log_px, log_pz, log_q: [K, batch]``, ``log_w = log_px + log_pz - log_q``,
  ``kl_per_dim: [K, batch, latent]`` (the one-sample estimate log q_d - log p_d), and the
  encoder's ``mean, log_var: [batch, latent]``. ``stop_q`` evaluates log q(z|x) with the
  encoder's outputs behind stop_gradient (z itself still depends on them): the STL
  "path derivative" of Roeder et al. 2017, Eq. 8. ``condition: [batch, C]`` conditions
  q and p for a conditional model.
  """
  chex.assert_rank(x, 4)
  mean, log_var = encode(model, params, x, condition)
  z = D.reparameterize(rng, mean, log_var, num_samples)
  q_mean, q_log_var = ((jax.lax.stop_gradient(mean), jax.lax.stop_gradient(log_var))
                       if stop_q else (mean, log_var))
  log_q_per_dim = D.gaussian_log_prob(z, q_mean, q_log_var, event_ndims=0)
  log_pz_per_dim = D.standard_normal_log_prob(z, event_ndims=0)
  log_px = _decode_log_prob(model, likelihood, params, x, z, condition)
  log_q, log_pz = jnp.sum(log_q_per_dim, -1), jnp.sum(log_pz_per_dim, -1)
  return {"log_px": log_px, "log_pz": log_pz, "log_q": log_q, "log_w": log_px + log_pz - log_q,
          "kl_per_dim": log_q_per_dim - log_pz_per_dim, "mean": mean, "log_var": log_var, "z": z}


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

  KL_term: ``analytic`` is the closed-form mean_batch KL(q(z|x) || N(0, I)); ``mc`` is
  mean_{k,batch}[log q(z_k|x) - log p(z_k)] at the same samples. ``free_bits > 0`` floors
  each dimension's batch-mean KL (``free_bits_kl``). beta_t = ``beta_schedule(step, beta,
  warmup_steps)`` with the step read from ``batch["step"]`` (0 when absent).

  ``estimator``: ``reparam`` differentiates everything; ``stl`` ("sticking the landing",
  Roeder et al. 2017) drops the score term by stopping gradients to q's parameters inside
  log q(z|x); its expected gradient is unchanged, and it is exactly zero at q = p(z|x).
  STL needs the sampled form of the KL (``kl="mc"``).

  Metrics, in nats per example: ``recon`` = -E log p(x|z), ``kl`` (unclamped), ``elbo`` =
  -(recon + kl) whatever beta is, ``beta`` and ``loss``.
  """
  if kl not in KL_ESTIMATORS:
    raise ValueError(f"kl={kl!r}: expected one of {', '.join(KL_ESTIMATORS)}")
  if estimator not in ("reparam", "stl"):
    raise ValueError(f"estimator={estimator!r} for the ELBO: expected reparam or stl "
                     "(dreg is an IWAE estimator)")
  if estimator == "stl" and kl != "mc":
    raise ValueError("estimator='stl' needs kl='mc': STL drops the score term of the "
                     "sampled log q(z|x), which the closed-form KL does not have")

  def loss_fn(params: Any, batch: Batch, rng: jax.Array) -> tuple[jax.Array, Metrics]:
    t = sample_terms(model, likelihood, params, batch["image"], rng, num_samples,
                     stop_q=estimator == "stl", condition=batch.get("condition"))
    recon = -jnp.mean(t["log_px"])
    if kl == "analytic":
      kl_per_dim = D.kl_diag_gaussian_standard_normal(t["mean"], t["log_var"], event_ndims=0)
    else:
      kl_per_dim = t["kl_per_dim"]
    kl_value = jnp.sum(kl_per_dim, -1).mean()
    kl_term = free_bits_kl(kl_per_dim, free_bits) if free_bits > 0 else kl_value
    beta_t = beta_schedule(batch.get("step", 0), beta, warmup_steps)
    loss = recon + beta_t * kl_term
    return loss, {"loss": loss, "recon": recon, "kl": kl_value, "elbo": -(recon + kl_value),
                  "beta": beta_t}

  return loss_fn


def make_iwae_loss(model: nn.Module, likelihood: Likelihood, num_samples: int,
                   estimator: str = "reparam") -> LossFn:
  """The negative IWAE bound with K samples (Burda et al. 2016, Eq. 8), mean over the batch.

  IWAE_K(x) = log 1/K sum_k w_k, log w_k = log p(x|z_k) + log p(z_k) - log q(z_k|x),
  computed with logsumexp. Its reparameterized gradient weights each sample's gradient by
  the normalized weight w~_k = w_k / sum_j w_j (Burda et al. 2016, Eq. 14).

  ``estimator="dreg"`` (Tucker et al. 2019, Doubly Reparameterized Gradient Estimators for
  Monte Carlo Objectives, Eq. 7) keeps that gradient for the decoder but gives the encoder
    sum_k w~_k^2 d log w_k / d z_k * d z_k / d phi,
  i.e. the surrogate sum_k sg(w~_k^2) log w_k with log q evaluated at stopped encoder
  outputs and the decoder's parameters stopped, plus sum_k sg(w~_k) log w_k at stopped z
  for the decoder (sg = stop_gradient). The loss's value is still -IWAE_K; only its
  gradient changes. It costs a second decoder pass.

  Metrics: ``loss``, ``iwae`` (the bound), ``elbo`` (mean_k log w_k: the K-sample ELBO),
  ``recon`` and ``kl`` (sampled, averaged over k) in nats per example.
  """
  if estimator not in ("reparam", "dreg"):
    raise ValueError(f"estimator={estimator!r} for IWAE: expected reparam or dreg "
                     "(STL is biased for IWAE: Tucker et al. 2019)")

  def loss_fn(params: Any, batch: Batch, rng: jax.Array) -> tuple[jax.Array, Metrics]:
    x, condition = batch["image"], batch.get("condition")
    if estimator == "reparam":
      t = sample_terms(model, likelihood, params, x, rng, num_samples, condition=condition)
      bound = log_mean_exp(t["log_w"])                                 # [batch]
      objective = jnp.mean(bound)
    else:
      # Encoder term: z live, log q at stopped encoder outputs, decoder parameters stopped.
      t = sample_terms(model, likelihood, _stop_decoder(params), x, rng, num_samples,
                       stop_q=True, condition=condition)
      bound = log_mean_exp(t["log_w"])
      weights = jax.lax.stop_gradient(jax.nn.softmax(t["log_w"], axis=0))   # w~: [K, batch]
      # Decoder term: the same samples, stopped, so no path reaches the encoder.
      z = jax.lax.stop_gradient(t["z"])
      log_w_dec = (_decode_log_prob(model, likelihood, params, x, z, condition)
                   + jax.lax.stop_gradient(t["log_pz"] - t["log_q"]))
      surrogate = jnp.sum(weights ** 2 * t["log_w"] + weights * log_w_dec, axis=0)
      objective = jnp.mean(jax.lax.stop_gradient(bound) + surrogate
                           - jax.lax.stop_gradient(surrogate))
    loss = -objective
    elbo = jnp.mean(t["log_w"])
    kl = jnp.mean(t["log_q"] - t["log_pz"])
    return loss, {"loss": loss, "iwae": jnp.mean(bound), "elbo": elbo, "kl": kl,
                  "recon": -(elbo + kl)}

  return loss_fn


def elbo_metrics(terms: dict[str, jax.Array]) -> dict[str, jax.Array]:
  """Per-example recon / kl / elbo from ``make_elbo_terms`` output (for evaluation)."""
  return {"recon": -terms["log_px"], "kl": terms["kl"], "elbo": terms["log_px"] - terms["kl"]}


VARIANT_FORMS = ("elbo", "elbo_mc", "elbo_stl", "elbo_k=K", "beta=B", "beta_warmup=STEPS",
                 "free_bits=NATS", "iwae=K", "iwae_dreg=K")


@dataclasses.dataclass(frozen=True)
class Objective:
  """A training objective and its gradient estimator, named by a variant string."""
  name: str
  kind: str = "elbo"          # elbo | iwae
  num_samples: int = 1
  kl: str = "analytic"
  estimator: str = "reparam"
  beta: float = 1.0
  warmup_steps: int = 0
  free_bits: float = 0.0


def parse_variant(text: str) -> Objective:
  """Parses one variant string strictly; see ``VARIANT_FORMS``.

  elbo (closed-form KL), elbo_mc (one-sample MC KL), elbo_stl (MC KL, STL gradient),
  elbo_k=K (ELBO averaged over K samples), beta=B (beta-VAE), beta_warmup=STEPS (beta from
  0 to 1 over STEPS steps), free_bits=NATS (per-dimension KL floor), iwae=K, iwae_dreg=K.
  """
  name, sep, value = text.strip().partition("=")
  fixed = {"elbo": {}, "elbo_mc": {"kl": "mc"}, "elbo_stl": {"kl": "mc", "estimator": "stl"}}
  valued = {"elbo_k": ("num_samples", int, {"kl": "mc"}), "beta": ("beta", float, {}),
            "beta_warmup": ("warmup_steps", int, {}), "free_bits": ("free_bits", float, {}),
            "iwae": ("num_samples", int, {"kind": "iwae", "kl": "mc"}),
            "iwae_dreg": ("num_samples", int, {"kind": "iwae", "kl": "mc", "estimator": "dreg"})}
  error = ValueError(f"bad variant {text!r}: expected one of {', '.join(VARIANT_FORMS)} "
                     "(K and STEPS positive integers, B and NATS non-negative numbers)")
  if not sep and name in fixed:
    return Objective(text.strip(), **fixed[name])
  if not sep or name not in valued:
    raise error
  field, cast, extra = valued[name]
  try:
    number = cast(value)
  except ValueError:
    raise error from None
  if not np.isfinite(number) or number < 0 or (cast is int and number < 1):
    raise error
  return Objective(text.strip(), **extra, **{field: number})


def parse_variants(text: str) -> list[Objective]:
  """Comma-separated variants; each parsed by ``parse_variant``; no duplicates."""
  variants = [parse_variant(v) for v in text.split(",")]
  names = [v.name for v in variants]
  if len(set(names)) != len(names):
    raise ValueError(f"duplicate variant in {text!r}")
  return variants


def make_loss(model: nn.Module, likelihood: Likelihood, objective: Objective) -> LossFn:
  """The pure loss for ``objective`` (``make_elbo_loss`` or ``make_iwae_loss``)."""
  if objective.kind == "iwae":
    return make_iwae_loss(model, likelihood, objective.num_samples, objective.estimator)
  return make_elbo_loss(model, likelihood, objective.kl, objective.beta, objective.num_samples,
                        objective.estimator, objective.warmup_steps, objective.free_bits)


# --- Autoencoders -------------------------------------------------------------------------

RECONSTRUCTIONS = ("mse", "bernoulli")


def reconstruction_error(x: jax.Array, out: jax.Array, kind: str) -> jax.Array:
  """Per-example reconstruction error of a decoder output ``out`` (logits) against x.

  x, out: [batch, H, W, C] -> [batch], summed over pixels. The reconstruction is
  x_hat = sigmoid(out).
    mse:       sum_i (x_i - x_hat_i)^2
    bernoulli: -sum_i [x_i log x_hat_i + (1 - x_i) log(1 - x_hat_i)]   (cross-entropy, nats)
  """
  if kind == "mse":
    return jnp.sum(jnp.square(x - jax.nn.sigmoid(out)), axis=(1, 2, 3))
  if kind == "bernoulli":
    return -D.bernoulli_log_prob(x, out, event_ndims=3)
  raise ValueError(f"--reconstruction={kind!r}: expected one of {', '.join(RECONSTRUCTIONS)}")


def make_autoencoder_loss(model: nn.Module, reconstruction: str = "bernoulli",
                          corruption: str = "none", noise_level: float = 0.0) -> LossFn:
  """The (denoising) autoencoder loss, mean over the batch of a per-example sum over pixels.

  loss = mean_b err(x_b, g(f(x~_b))),  x~ = corrupt(x) drawn from the step's key

  (Vincent et al. 2008, Extracting and Composing Robust Features with Denoising
  Autoencoders, Sec. 2.3): the encoder f sees the corrupted input, the target is the
  clean x. ``corruption="none"`` is the plain autoencoder. ``err`` is
  ``reconstruction_error`` (``mse`` or ``bernoulli``). Metrics: ``loss`` and ``recon``
  (the same number: the mean per-image error).
  """
  reconstruction_error(jnp.zeros((1, 1, 1, 1)), jnp.zeros((1, 1, 1, 1)), reconstruction)
  data.check_corruption(corruption, noise_level)

  def loss_fn(params: Any, batch: Batch, rng: jax.Array) -> tuple[jax.Array, Metrics]:
    x = batch["image"]
    out = model.apply({"params": params}, data.corrupt(rng, x, corruption, noise_level))
    loss = jnp.mean(reconstruction_error(x, out, reconstruction))
    return loss, {"loss": loss, "recon": loss}

  return loss_fn


# --- Classification and semi-supervised learning -----------------------------------------


def make_classifier_loss(model: nn.Module) -> LossFn:
  """Softmax cross-entropy of ``model(x)`` (logits [batch, classes]) against
  ``batch["label"]``, mean over the batch. Metrics: ``loss``, ``error`` (share of wrong
  argmax predictions)."""

  def loss_fn(params: Any, batch: Batch, rng: jax.Array) -> tuple[jax.Array, Metrics]:
    del rng
    logits = model.apply({"params": params}, batch["image"])
    loss = jnp.mean(optax.softmax_cross_entropy_with_integer_labels(logits, batch["label"]))
    error = jnp.mean(jnp.argmax(logits, -1) != batch["label"])
    return loss, {"loss": loss, "error": error}

  return loss_fn


def m2_labelled_bound(model: nn.Module, likelihood: Likelihood, params: Any, x: jax.Array,
                      y: jax.Array, rng: jax.Array) -> jax.Array:
  """L(x, y) <= log p(x, y) of M2 (Kingma et al. 2014, Eq. 6), per example: [batch].

  L(x, y) = E_q(z|x,y)[log p(x|y, z)] + log p(y) - KL(q(z|x, y) || p(z)), one
  reparameterized sample, closed-form KL, p(y) uniform over the classes;
  y: [batch, num_classes] one-hot (or any class weights; it is the decoder's condition).
  """
  mean, log_var = encode(model, params, x, y)
  z = D.reparameterize(rng, mean, log_var)
  log_px = likelihood.log_prob(x, decode(model, params, z, y))
  return (log_px - D.kl_diag_gaussian_standard_normal(mean, log_var)
          - jnp.log(float(model.num_classes)))


def make_m2_loss(model: nn.Module, likelihood: Likelihood, alpha: float) -> LossFn:
  """The M2 semi-supervised objective (Kingma et al. 2014, Eqs. 6-9), per-example means.

  Each example of the batch pairs an unlabelled image ``batch["image"]`` with a labelled
  one ``batch["labelled_image"]``, ``batch["label"]`` (``data.repeat_to``):

    labelled:    L(x, y)  (``m2_labelled_bound``)
    unlabelled:  U(x) = sum_y q(y|x) L(x, y) + H(q(y|x))   <=  log p(x)   (Eq. 7)
    loss = -mean_l L(x, y) - mean_u U(x) + alpha * mean_l[-log q(y|x)]   (Eq. 9)

  The sum over y in U is exact (every class decoded). Kingma et al. set alpha = 0.1 N
  for a sum over the N data points; with the per-example means here that is
  alpha = 0.1 N / N_labelled (the experiment's default). Metrics: ``loss``,
  ``labelled_bound`` (mean L), ``unlabelled_bound`` (mean U), ``ce`` and ``error`` of q(y|x)
  on the labelled batch.
  """
  num_classes = model.num_classes

  def classify(params, x):
    return model.apply({"params": params}, x, method=model.classify)

  def loss_fn(params: Any, batch: Batch, rng: jax.Array) -> tuple[jax.Array, Metrics]:
    x_u, x_l, y_l = batch["image"], batch["labelled_image"], batch["label"]
    rng_l, rng_u = D.fold_in_keys(rng, 0), D.fold_in_keys(rng, 1)
    bound_l = m2_labelled_bound(model, likelihood, params, x_l,
                                jax.nn.one_hot(y_l, num_classes), rng_l)
    logits_l = classify(params, x_l)
    ce = optax.softmax_cross_entropy_with_integer_labels(logits_l, y_l)
    # U(x): L(x, y) for every class y at once, rows ordered class-major: [K * batch].
    b = x_u.shape[0]
    xs = jnp.broadcast_to(x_u, (num_classes, *x_u.shape)).reshape(num_classes * b,
                                                                   *x_u.shape[1:])
    ys = jnp.repeat(jnp.eye(num_classes), b, axis=0)
    keys = rng_u                 # one key: a single draw of [K * batch, latent] noise
    if rng.ndim == 2:            # per-example keys: example b under class k uses fold_in(key_b, k)
      keys = jnp.concatenate([D.fold_in_keys(rng_u, k) for k in range(num_classes)])
    bound_all = m2_labelled_bound(model, likelihood, params, xs, ys, keys)
    bound_all = bound_all.reshape(num_classes, b).T                       # [batch, K]
    log_q = jax.nn.log_softmax(classify(params, x_u))
    q = jnp.exp(log_q)
    bound_u = jnp.sum(q * bound_all, -1) - jnp.sum(q * log_q, -1)
    loss = -jnp.mean(bound_l) - jnp.mean(bound_u) + alpha * jnp.mean(ce)
    return loss, {"loss": loss, "labelled_bound": jnp.mean(bound_l),
                  "unlabelled_bound": jnp.mean(bound_u), "ce": jnp.mean(ce),
                  "error": jnp.mean(jnp.argmax(logits_l, -1) != y_l)}

  return loss_fn


# --- Generative adversarial networks --------------------------------------------------------
#
# Functions of the discriminator's logits l = D(x) (before the sigmoid), so every log is a
# log-sigmoid:  -log sigmoid(l) = softplus(-l),  -log(1 - sigmoid(l)) = softplus(l).

GAN_LOSSES = ("minimax", "non_saturating", "hinge")


def _check_gan_loss(kind: str) -> None:
  if kind not in GAN_LOSSES:
    raise ValueError(f"--gan_loss={kind!r}: expected one of {', '.join(GAN_LOSSES)}")


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
