"""The variational autoencoder as a Flax module: an encoder and a decoder, no loss.

The ELBO lives in ``genjax.objectives``; this module only maps x -> q(z|x)
parameters and z -> p(x|z) parameters.
"""

from __future__ import annotations

import flax.linen as nn
import jax


class VAE(nn.Module):
  """q(z|x) = N(mean(x), diag(exp(log_var(x)))), p(z) = N(0, I), p(x|z) = decoder(z).

  x: [batch, H, W, C]; z: [batch, latent_dim]; decoder outputs [batch, H, W, C_out].
  """
  encoder: nn.Module
  decoder: nn.Module
  latent_dim: int

  def encode(self, x: jax.Array) -> tuple[jax.Array, jax.Array]:
    """Returns (mean, log_var) of q(z|x), each [batch, latent_dim]."""
    return self.encoder(x)

  def decode(self, z: jax.Array) -> jax.Array:
    """Returns the parameters of p(x|z) (e.g. Bernoulli logits), [batch, H, W, C_out]."""
    return self.decoder(z)

  def __call__(self, x: jax.Array) -> jax.Array:
    """Reconstructs x: decodes the posterior mean, z = E_q[z|x]."""
    mean, _ = self.encode(x)
    return self.decode(mean)

  def generate(self, rng: jax.Array, num_samples: int) -> jax.Array:
    """Decodes z ~ p(z) = N(0, I): returns p(x|z) parameters, [num_samples, H, W, C_out]."""
    z = jax.random.normal(rng, (num_samples, self.latent_dim))
    return self.decode(z)
