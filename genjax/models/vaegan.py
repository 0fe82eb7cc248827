"""The VAE-GAN (Larsen et al. 2016, "Autoencoding beyond pixels using a learned similarity
metric"): a VAE whose decoder is also a GAN's generator, and the GAN's discriminator, in one
Flax module.

It implements the latent-variable model protocol (``genjax.models.protocol``):
``posterior(x)`` is q(z|x) (the VAE's conv encoder), ``prior()`` is p(z) = N(0, I),
``decode(z)`` is the image Dec(z) in [0, 1] (the DCGAN generator of ``models.gan``). There
is no pixel likelihood: the VAE-GAN's p(x|z) is a Gaussian on the discriminator's l-th
hidden layer, N(Dis_l(x); Dis_l(Dec(z)), I) (``losses.vaegan``), so ``decode`` returns the
image whose features are that mean. ``discriminate(x)`` is the discriminator's logit with
its hidden layers (``models.gan.Discriminator``). The three networks are the top-level
parameter entries ``PLAYERS``; each is trained on its own loss (``losses.vaegan``).
"""

from __future__ import annotations

import flax.linen as nn
import jax

from genjax.models.vae import VAE

# The top-level parameter entries, one per player of Larsen et al.'s Algorithm 1.
PLAYERS = ("encoder", "decoder", "discriminator")
# The discriminator's hidden layers Dis_l a VAE-GAN can compare images in (its two convs).
FEATURE_LAYERS = (1, 2)


class VAEGAN(VAE):
  """The VAE's q(z|x) = N(mean(x), diag(exp(log_var(x)))), p(z) = N(0, I) and decode
  (``models.vae.VAE``), with ``decoder`` the image Dec(z) in [0, 1] ([batch, H, W, C]), and
  a discriminator: ``discriminator(x, return_features=True)`` returns (logits [batch],
  hidden layers). Unconditional: ``condition`` must be None.
  """
  discriminator: nn.Module

  def discriminate(self, x: jax.Array) -> tuple[jax.Array, tuple[jax.Array, ...]]:
    """(logits [batch], (Dis_1(x), Dis_2(x), ...)): D(x) = sigmoid(logit) is the
    probability that x is real; Dis_l(x) is the l-th hidden layer, [batch, H_l, W_l, C_l]."""
    return self.discriminator(x, return_features=True)

  def __call__(self, x: jax.Array) -> tuple[jax.Array, jax.Array]:
    """(Dec(E_q[z|x]), the logits of x): touches every network (what ``init`` runs)."""
    logits, _ = self.discriminate(x)
    return self.decode(self.posterior(x).mean), logits
