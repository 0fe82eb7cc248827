"""The VQ-VAE's objective (van den Oord et al. 2017, Eq. 3), its exponential-moving-average
codebook (Appendix A.1), its codebook statistics, and the PixelCNN prior's likelihood.

  L = -log p(x | z_q(x)) + ||sg[z_e(x)] - e||^2 + beta ||z_e(x) - sg[e]||^2

per example (the reconstruction summed over pixels, both squared distances over the code
grid and the code dimension), averaged over the batch. With ``codebook_update="ema"`` the
codebook term is dropped and the codebook follows ``ema_codebook_update`` instead.
"""

from __future__ import annotations

from typing import Any, Callable

import jax
import jax.numpy as jnp
import optax

from genjax import likelihoods
from genjax.models import vqvae
from genjax.types import Batch

CODEBOOK_UPDATES = ("loss", "ema")
LAPLACE_EPSILON = 1e-5   # Laplace smoothing of the EMA counts (as in Sonnet's VectorQuantizerEMA)


def vq_terms(z_e: jax.Array, e: jax.Array) -> tuple[jax.Array, jax.Array]:
  """(codebook, commitment) per example: ||sg[z_e] - e||^2 and ||z_e - sg[e]||^2, summed
  over every axis but the first. z_e, e: [batch, ...] -> two [batch] arrays (equal values;
  the first has gradient only in e, the second only in z_e)."""
  axes = tuple(range(1, z_e.ndim))
  codebook = jnp.sum(jnp.square(jax.lax.stop_gradient(z_e) - e), axis=axes)
  commitment = jnp.sum(jnp.square(z_e - jax.lax.stop_gradient(e)), axis=axes)
  return codebook, commitment


def code_counts(codes: jax.Array, codebook_size: int) -> jax.Array:
  """n_j = #{positions with code j}: codes [...] int -> [K]."""
  return jnp.sum(jax.nn.one_hot(codes.reshape(-1), codebook_size), axis=0)


def code_sums(codes: jax.Array, z_e: jax.Array, codebook_size: int) -> jax.Array:
  """sum_{positions with code j} z_e: codes [...], z_e [..., D] -> [K, D]."""
  one_hot = jax.nn.one_hot(codes.reshape(-1), codebook_size, dtype=z_e.dtype)
  return one_hot.T @ z_e.reshape(-1, z_e.shape[-1])


def init_ema(codebook: jax.Array) -> dict[str, jax.Array]:
  """The EMA state {"counts": N [K], "sums": m [K, D]} as if each code had been chosen
  once, at its initial position: N = 1, m = e, so m / N is the initial codebook."""
  return {"counts": jnp.ones(codebook.shape[:1], codebook.dtype), "sums": jnp.asarray(codebook)}


def ema_codebook_update(ema: dict[str, jax.Array], counts: jax.Array, sums: jax.Array,
                        decay: float, epsilon: float = LAPLACE_EPSILON
                        ) -> tuple[dict[str, jax.Array], jax.Array]:
  """One step of the EMA codebook (van den Oord et al. 2017, Appendix A.1, Eqs. 6-8).

    N_j <- gamma N_j + (1 - gamma) n_j           n_j: batch positions with code j
    m_j <- gamma m_j + (1 - gamma) sum_{k(i)=j} z_e,i
    e_j  = m_j / N~_j,   N~_j = (N_j + eps) / (sum_l N_l + K eps) * sum_l N_l

  (N~ is N with Laplace smoothing, so an unused code never divides by zero). ``counts``
  [K] and ``sums`` [K, D] are the whole global batch's n and sums (under pmap, psum them
  first). Returns (the new EMA state, the new codebook [K, D]).
  """
  new = optax.incremental_update({"counts": counts, "sums": sums}, ema, 1.0 - decay)
  total = jnp.sum(new["counts"])
  size = new["counts"].shape[0]
  smoothed = (new["counts"] + epsilon) / (total + size * epsilon) * total
  return new, new["sums"] / smoothed[:, None]


def code_distribution(codes: jax.Array, codebook_size: int) -> jax.Array:
  """Each example's share of its grid positions per code: codes [batch, h, w] -> [K, batch]
  (the example axis last, as ``loop.make_eval_fn`` averages it)."""
  one_hot = jax.nn.one_hot(codes.reshape(codes.shape[0], -1), codebook_size)
  return jnp.mean(one_hot, axis=1).T


def codebook_usage(p: jax.Array) -> jax.Array:
  """Fraction of the K codes with p_j > 0; p: [K], the average code distribution."""
  return jnp.mean(p > 0)


def perplexity(p: jax.Array) -> jax.Array:
  """exp(H(p)) = exp(-sum_j p_j log p_j) (0 log 0 = 0): K when every code is equally used,
  1 when one code is."""
  return jnp.exp(jnp.sum(jax.scipy.special.entr(p)))


def make_vqvae_loss(model: vqvae.VQVAE, likelihood: likelihoods.Likelihood,
                    commitment_cost: float = 0.25, codebook_update: str = "loss"
                    ) -> Callable[[Any, Batch, jax.Array], tuple[jax.Array, tuple[dict, dict]]]:
  """``loss_fn(params, batch, rng) -> (L, (metrics, stats))``, L the module docstring's
  objective averaged over ``batch["image"]`` (without the codebook term when
  ``codebook_update="ema"``).

  ``metrics`` (batch means): ``loss``, ``recon`` = -log p(x|z_q), ``codebook_loss``,
  ``commitment_loss`` (unweighted ||z_e - sg[e]||^2).
  ``stats`` (batch sums, what the EMA needs): ``counts`` [K] and ``sums`` [K, D].
  """
  if codebook_update not in CODEBOOK_UPDATES:
    raise ValueError(f"codebook_update={codebook_update!r}: expected one of "
                     f"{', '.join(CODEBOOK_UPDATES)}")

  def loss_fn(params, batch: Batch, rng: jax.Array):
    del rng   # the VQ-VAE is deterministic given its (preprocessed) input
    x = batch["image"]
    out = model.apply({"params": params}, x)
    recon = -likelihood.log_prob(x, out.logits)
    codebook, commitment = vq_terms(out.z_e, out.e)
    per_example = recon + commitment_cost * commitment
    if codebook_update == "loss":
      per_example = per_example + codebook
    loss = jnp.mean(per_example)
    metrics = {"loss": loss, "recon": jnp.mean(recon), "codebook_loss": jnp.mean(codebook),
               "commitment_loss": jnp.mean(commitment)}
    stats = {"counts": code_counts(out.codes, model.codebook_size),
             "sums": code_sums(out.codes, out.z_e, model.codebook_size)}
    return loss, (metrics, jax.lax.stop_gradient(stats))

  return loss_fn


def prior_nll(logits: jax.Array, codes: jax.Array) -> jax.Array:
  """-log p(k) = -sum_i log softmax(logits_i)[k_i] of an autoregressive prior over code
  grids: logits [batch, h, w, K], codes [batch, h, w] -> [batch] (nats per code grid)."""
  return jnp.sum(optax.softmax_cross_entropy_with_integer_labels(logits, codes), axis=(1, 2))


def make_prior_loss(prior: Any, encode_codes: Callable[[jax.Array], jax.Array]
                    ) -> Callable[[Any, Batch, jax.Array], tuple[jax.Array, dict]]:
  """``loss_fn(params, batch, rng) -> (mean -log p(k), metrics)`` of the code prior
  ``prior`` (codes [batch, h, w] -> logits) on k = ``encode_codes(batch["image"])``, the
  codes of a trained (fixed) VQ-VAE. Metrics: ``loss`` and ``nll`` (nats per code grid)."""

  def loss_fn(params, batch: Batch, rng: jax.Array):
    del rng
    codes = jax.lax.stop_gradient(encode_codes(batch["image"]))
    nll = jnp.mean(prior_nll(prior.apply({"params": params}, codes), codes))
    return nll, {"loss": nll, "nll": nll}

  return loss_fn
