"""Pure losses: the ELBO and its reductions.

Every objective here is built from a model and returns a pure function of
``(params, batch, rng)``. Terms are computed per example (``[batch]``), summed over
pixels and latent dimensions, and only then averaged over the batch: a mean over
pixels would rescale the likelihood against the KL and would no longer be an ELBO.
All values are in nats per example.

  ELBO(x) = E_{q(z|x)}[ log p(x|z) ] - KL( q(z|x) || p(z) )   <=  log p(x)

(Kingma & Welling 2014, Auto-Encoding Variational Bayes, Eq. 3; beta-VAE:
Higgins et al. 2017 weights the KL by beta.)
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, Callable

import chex
import flax.linen as nn
import jax
import jax.numpy as jnp

from genjax import distributions as D

Batch = dict[str, jax.Array]
Metrics = dict[str, jax.Array]
LossFn = Callable[[Any, Batch, jax.Array], tuple[jax.Array, Metrics]]
TermsFn = Callable[[Any, Batch, jax.Array], dict[str, jax.Array]]

LIKELIHOODS = ("bernoulli", "gaussian_fixed", "gaussian_learned")
KL_ESTIMATORS = ("analytic", "mc")


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


def make_elbo_terms(model: nn.Module, likelihood: Likelihood, kl: str = "analytic") -> TermsFn:
  """Per-example ELBO terms with one reparameterized sample z ~ q(z|x).

  Returns ``terms(params, batch, rng) -> {"log_px": [batch], "kl": [batch]}`` with
  log_px = log p(x|z), z = mu + sigma * eps (a one-sample estimate of E_q log p(x|z)),
  and kl = KL(q(z|x) || N(0, I)) in closed form (``analytic``) or its one-sample
  estimate log q(z|x) - log p(z) at the same z (``mc``).
  """
  if kl not in KL_ESTIMATORS:
    raise ValueError(f"kl={kl!r}: expected one of {', '.join(KL_ESTIMATORS)}")

  def terms(params: Any, batch: Batch, rng: jax.Array) -> dict[str, jax.Array]:
    x = batch["image"]
    chex.assert_rank(x, 4)
    variables = {"params": params}
    mean, log_var = model.apply(variables, x, method=model.encode)
    z = D.reparameterize(rng, mean, log_var)
    out = model.apply(variables, z, method=model.decode)
    if kl == "analytic":
      kl_term = D.kl_diag_gaussian_standard_normal(mean, log_var)
    else:
      kl_term = D.kl_monte_carlo(z, mean, log_var)
    return {"log_px": likelihood.log_prob(x, out), "kl": kl_term}

  return terms


def make_elbo_loss(model: nn.Module, likelihood: Likelihood, kl: str = "analytic",
                   beta: float = 1.0) -> LossFn:
  """The negative (beta-weighted) ELBO as a pure loss.

  loss = mean_batch[ -log p(x|z) + beta * KL(q(z|x) || p(z)) ]   (sum over pixels and
  latents inside each example, mean over the batch; beta = 1 is the ELBO).
  Metrics, in nats per example: ``recon`` = -log p(x|z), ``kl``, ``elbo`` = -(recon + kl)
  (the unweighted bound, whatever beta is) and ``loss``.
  """
  terms_fn = make_elbo_terms(model, likelihood, kl)

  def loss_fn(params: Any, batch: Batch, rng: jax.Array) -> tuple[jax.Array, Metrics]:
    terms = terms_fn(params, batch, rng)
    recon, kl_term = -terms["log_px"], terms["kl"]
    loss = jnp.mean(recon + beta * kl_term)
    metrics = {"loss": loss, "recon": jnp.mean(recon), "kl": jnp.mean(kl_term),
               "elbo": jnp.mean(-(recon + kl_term))}
    return loss, metrics

  return loss_fn


def elbo_metrics(terms: dict[str, jax.Array]) -> dict[str, jax.Array]:
  """Per-example recon / kl / elbo from ``make_elbo_terms`` output (for evaluation)."""
  return {"recon": -terms["log_px"], "kl": terms["kl"], "elbo": terms["log_px"] - terms["kl"]}
