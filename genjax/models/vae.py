"""The variational autoencoder as a Flax module: an encoder and a decoder, no loss.

It implements the latent-variable model protocol (``genjax.models.protocol``):
``posterior(x)`` is q(z|x), ``prior()`` is p(z) = N(0, I), ``decode(z)`` gives the
parameters of p(x|z). The ELBO lives in ``genjax.losses.elbo``.
"""

from __future__ import annotations

from typing import ClassVar

import flax.linen as nn
import jax

from genjax import distributions as D
from genjax.models import builders, registry
from genjax.models.protocol import check_condition


class VAE(nn.Module):
  """q(z|x) = N(mean(x), diag(exp(log_var(x)))), p(z) = N(0, I), p(x|z) = decoder(z).

  x: [batch, H, W, C]; z: [batch, latent_dim]; decoder outputs [batch, H, W, C_out].
  Unconditional: ``condition`` must be None.
  """
  encoder: nn.Module
  decoder: nn.Module
  latent_dim: int
  encoder_params: ClassVar[tuple[str, ...]] = ("encoder",)

  def posterior(self, x: jax.Array, condition: jax.Array | None = None) -> D.DiagonalGaussian:
    """q(z|x): mean, log_var [batch, latent_dim] from the encoder."""
    check_condition(self, condition, conditional=False)
    return D.DiagonalGaussian(*self.encoder(x))

  def prior(self) -> D.Distribution:
    """p(z) = N(0, I_latent_dim)."""
    return D.StandardNormal(self.latent_dim)

  def decode(self, z: jax.Array, condition: jax.Array | None = None) -> jax.Array:
    """The parameters of p(x|z) (e.g. Bernoulli logits), [batch, H, W, C_out]."""
    check_condition(self, condition, conditional=False)
    return self.decoder(z)

  def __call__(self, x: jax.Array) -> jax.Array:
    """Reconstructs x: decodes the posterior mean, z = E_q[z|x]."""
    return self.decode(self.posterior(x).mean)


def _build_diagonal(model, image_shape, latent_dim, hidden, output_channels, activation):
  return VAE(builders.build_encoder(model, latent_dim, hidden, activation),
             builders.build_decoder(model, image_shape, hidden, output_channels, activation),
             latent_dim)


registry.register_prior(registry.Part(
    "standard_normal", "the standard normal prior (prior=standard_normal)"))
registry.register_posterior(registry.Part(
    "diagonal", "posterior=diagonal", build=_build_diagonal))
