"""The VAE-GAN's losses (Larsen et al. 2016, "Autoencoding beyond pixels using a learned
similarity metric", Sec. 2 and Algorithm 1), and the one surrogate loss whose gradient is
every player's own.

With x a data image, z ~ q(z|x) (reparameterized), x~ = Dec(z), z_p ~ p(z) = N(0, I),
x_p = Dec(z_p), D = sigmoid(Dis) and Dis_l the discriminator's l-th hidden layer:

  L_prior  = KL(q(z|x) || p(z))                                  (closed form, Eq. 2)
  L_llike  = -E_q log p(Dis_l(x) | z),  p(Dis_l(x) | z) = N(Dis_l(x); Dis_l(x~), I)
           = 1/2 ||Dis_l(x) - Dis_l(x~)||^2 + n_l/2 log(2 pi)    (Eq. 6-7, one sample of z)
  L_GAN    = log D(x) + log(1 - D(x~)) + log(1 - D(x_p))          (Eq. 8, with Sec. 2.3's
                                                                    prior samples x_p)

Algorithm 1 updates all three networks from the same forward pass, each on its own loss:

  encoder:        L_prior + L_llike
  decoder:        gamma L_llike - L_GAN, here with the non-saturating generator form
                  gamma L_llike + E[-log D(x~)] + E[-log D(x_p)] (Goodfellow et al. 2014,
                  Sec. 3: the same fixed point as maximizing log(1 - D), strong gradients
                  while D rejects the decoder's images)
  discriminator:  -L_GAN = E[-log D(x)] + E[-log(1 - D(x~))] + E[-log(1 - D(x_p))]
                  (it ascends L_GAN; Algorithm 1 prints the descent sign, but its decoder
                  line, which descends -L_GAN, fixes which player maximizes L_GAN)

so no L_GAN error reaches the encoder, and the discriminator never sees L_llike (it would
collapse its features to 0, Sec. 2.3). KL and L_llike are sums over latent dimensions /
feature entries per example (nats), every term a mean over the batch; gamma weighs content
(L_llike) against style (L_GAN) in the decoder's loss.

``make_vaegan_loss`` returns those three losses as one surrogate, the sum of each player's
loss evaluated with gradients stopped at every other player's parameters: its gradient
with respect to player i's parameters is exactly grad_i L_i, so one ``jax.grad`` and
``optax.multi_transform`` (one optimizer per top-level parameter entry) are Algorithm 1's
simultaneous update, and ``training.step.make_train_step`` is its placement-independent
step. The forward passes of the three evaluations are the same operations on the same
values (stop_gradient is the identity going forward), which XLA's common-subexpression
elimination may merge under jit; only the backward passes differ.
"""

from __future__ import annotations

from typing import Any

import chex
import flax.linen as nn
import jax
import jax.numpy as jnp

from genjax import distributions as D
from genjax.losses import gan as gan_losses
from genjax.models import protocol
from genjax.models.vaegan import FEATURE_LAYERS, PLAYERS
from genjax.types import Batch, LossFn


def feature_nll(features_x: jax.Array, features_recon: jax.Array,
                variance: float = 1.0) -> jax.Array:
  """L_llike per example: -log N(Dis_l(x); Dis_l(x~), variance I), summed over features.

    -log p = 1/2 sum_j [ (Dis_l(x)_j - Dis_l(x~)_j)^2 / variance + log(2 pi variance) ]

  features_x, features_recon: [batch, ...] (e.g. [batch, H_l, W_l, C_l]) -> [batch].
  Larsen et al. 2016, Eq. 6-7, take variance 1 (the identity covariance).
  """
  chex.assert_equal_shape((features_x, features_recon))
  log_var = jnp.full_like(features_recon, jnp.log(variance))
  return -D.gaussian_log_prob(features_x, features_recon, log_var,
                              event_ndims=features_x.ndim - 1)


def discriminator_loss(real_logits: jax.Array, recon_logits: jax.Array,
                       prior_logits: jax.Array) -> jax.Array:
  """-L_GAN, a scalar (the discriminator's loss): each term a batch mean,

    E[-log D(x)] + E[-log(1 - D(x~))] + E[-log(1 - D(x_p))]
      = E[softplus(-Dis(x))] + E[softplus(Dis(x~))] + E[softplus(Dis(x_p))],

  with logits Dis(.) ([batch] each) and D = sigmoid(Dis) (Larsen et al. 2016, Eq. 8 with
  the prior samples of Sec. 2.3).
  """
  return (jnp.mean(jax.nn.softplus(-real_logits)) + jnp.mean(jax.nn.softplus(recon_logits))
          + jnp.mean(jax.nn.softplus(prior_logits)))


def decoder_gan_loss(recon_logits: jax.Array, prior_logits: jax.Array) -> jax.Array:
  """The decoder's GAN term, non-saturating: E[-log D(x~)] + E[-log D(x_p)], a scalar
  (``losses.gan.gan_generator_loss(., "non_saturating")`` of each fake batch, summed, as
  L_GAN sums its two fake terms)."""
  return (gan_losses.gan_generator_loss(recon_logits, "non_saturating")
          + gan_losses.gan_generator_loss(prior_logits, "non_saturating"))


def vaegan_terms(model: nn.Module, params: Any, x: jax.Array, rng: jax.Array,
                 feature_layer: int) -> dict[str, jax.Array]:
  """Per-example terms of one VAE-GAN forward pass: ``kl``, ``feature_nll`` (L_llike at
  one z ~ q(z|x)), the logits ``real_logits`` = Dis(x), ``recon_logits`` = Dis(x~),
  ``prior_logits`` = Dis(x_p), and ``pixel_sq_error`` = ||x - x~||^2 (a diagnostic): each
  [batch]; plus ``recon`` = x~ and ``prior_samples`` = x_p, [batch, H, W, C].

  x: [batch, H, W, C] in [0, 1]; rng: one key or one per example ([batch, 2]); z draws from
  ``fold_in(rng, 0)``, z_p from ``fold_in(rng, 1)`` (per example when the keys are).
  """
  chex.assert_rank(x, 4)
  q = protocol.posterior(model, params, x)
  p = protocol.prior(model, params)
  z = q.sample(D.fold_in_keys(rng, 0))
  z_p = D.per_example_normal(D.fold_in_keys(rng, 1), z.shape)
  recon = protocol.decode(model, params, z)
  prior_samples = protocol.decode(model, params, z_p)
  discriminate = lambda images: model.apply({"params": params}, images,   # noqa: E731
                                            method=model.discriminate)
  (real_logits, real_features), (recon_logits, recon_features) = (discriminate(x),
                                                                  discriminate(recon))
  prior_logits, _ = discriminate(prior_samples)
  layer = feature_layer - 1
  return {"kl": D.kl_divergence(q, p),
          "feature_nll": feature_nll(real_features[layer], recon_features[layer]),
          "real_logits": real_logits, "recon_logits": recon_logits,
          "prior_logits": prior_logits,
          "pixel_sq_error": jnp.sum(jnp.square(x - recon).reshape(x.shape[0], -1), -1),
          "recon": recon, "prior_samples": prior_samples}


def player_losses(terms: dict[str, jax.Array], gamma: float) -> dict[str, jax.Array]:
  """Each player's scalar loss from ``vaegan_terms``: ``encoder`` = L_prior + L_llike,
  ``decoder`` = gamma L_llike + ``decoder_gan_loss``, ``discriminator`` = -L_GAN."""
  llike = jnp.mean(terms["feature_nll"])
  logits = terms["recon_logits"], terms["prior_logits"]
  return {"encoder": jnp.mean(terms["kl"]) + llike,
          "decoder": gamma * llike + decoder_gan_loss(*logits),
          "discriminator": discriminator_loss(terms["real_logits"], *logits)}


def only_player(params: dict[str, Any], player: str) -> dict[str, Any]:
  """``params`` with stop_gradient on every top-level entry but ``player``'s."""
  return {k: v if k == player else jax.lax.stop_gradient(v) for k, v in params.items()}


def _check(gamma: float, feature_layer: int) -> None:
  if feature_layer not in FEATURE_LAYERS:
    raise ValueError(f"feature_layer={feature_layer}: expected one of "
                     f"{', '.join(map(str, FEATURE_LAYERS))} (the discriminator's conv layers)")
  if not gamma >= 0:
    raise ValueError(f"vaegan_gamma={gamma}: expected a number >= 0")


def make_vaegan_loss(model: nn.Module, gamma: float, feature_layer: int) -> LossFn:
  """The VAE-GAN surrogate ``loss(params, batch, rng) -> (value, metrics)``:

    value = sum_i L_i(params with stop_gradient on every entry but player i's),

  i over ``models.vaegan.PLAYERS``, L_i of ``player_losses``; so d value / d theta_i =
  d L_i / d theta_i for each player's parameters theta_i, and the value is the sum of the
  three losses. ``params`` is ``{"encoder", "decoder", "discriminator"}``; x =
  ``batch["image"]`` in [0, 1].

  Metrics (batch means): ``kl``, ``feature_nll`` (L_llike), ``d_loss`` (-L_GAN), ``g_loss``
  (the decoder's non-saturating GAN term), ``encoder_loss``, ``decoder_loss``, ``d_real`` =
  D(x), ``d_recon`` = D(x~), ``d_fake`` = D(x_p) (sigmoids of the logits),
  ``pixel_sq_error`` and ``loss`` (the value).
  """
  _check(gamma, feature_layer)

  def loss(params: Any, batch: Batch, rng: jax.Array) -> tuple[jax.Array, dict[str, jax.Array]]:
    losses, terms = {}, None
    for player in PLAYERS:
      terms = vaegan_terms(model, only_player(params, player), batch["image"], rng,
                           feature_layer)
      losses[player] = player_losses(terms, gamma)[player]
    value = sum(losses.values())
    d = lambda name: jnp.mean(jax.nn.sigmoid(terms[name]))   # noqa: E731
    metrics = {"loss": value, "kl": jnp.mean(terms["kl"]),
               "feature_nll": jnp.mean(terms["feature_nll"]),
               "d_loss": losses["discriminator"],
               "g_loss": decoder_gan_loss(terms["recon_logits"], terms["prior_logits"]),
               "encoder_loss": losses["encoder"], "decoder_loss": losses["decoder"],
               "d_real": d("real_logits"), "d_recon": d("recon_logits"),
               "d_fake": d("prior_logits"), "pixel_sq_error": jnp.mean(terms["pixel_sq_error"])}
    return value, metrics

  return loss
