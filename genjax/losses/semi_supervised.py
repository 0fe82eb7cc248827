"""Classification and semi-supervised learning: the classifier's cross-entropy and the M2
objective of Kingma et al. 2014 (Semi-Supervised Learning with Deep Generative Models)."""

from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import optax

from genjax import distributions as D
from genjax.likelihoods import Likelihood
from genjax.models import protocol
from genjax.types import Batch, LossFn, Metrics


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
  reparameterized sample, the closed-form KL where the model's (posterior, prior) pair has
  one (else its one-sample estimate at the same z, ``distributions.kl_divergence``), p(y)
  uniform over the classes; y: [batch, num_classes] one-hot (or any class weights; it is
  the condition of ``model.posterior`` and ``model.decode``).
  """
  q = protocol.posterior(model, params, x, y)
  z = q.sample(rng)
  log_px = likelihood.log_prob(x, protocol.decode(model, params, z, y))
  kl = D.kl_divergence(q, protocol.prior(model, params), z)
  return log_px - kl - jnp.log(float(model.num_classes))


def make_m2_loss(model: nn.Module, likelihood: Likelihood, alpha: float) -> LossFn:
  """The M2 semi-supervised objective (Kingma et al. 2014, Eqs. 6-9), per-example means.

  Each example of the batch pairs an unlabelled image ``batch["image"]`` with a labelled
  one ``batch["labelled_image"]``, ``batch["label"]`` (``data.subsets.repeat_to``):

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
