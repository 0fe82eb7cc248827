"""The (denoising) autoencoder as a Flax module: a deterministic encoder and a decoder.

No loss here: reconstruction and corruption live in ``genjax.losses.autoencoder`` (the
corruptions themselves in ``genjax.corruptions``).
"""

from __future__ import annotations

from typing import ClassVar

import flax.linen as nn
import jax


class Autoencoder(nn.Module):
  """z = encoder(x) (deterministic), x_hat parameters = decoder(z).

  x: [batch, H, W, C]; z: [batch, latent_dim]; decoder outputs [batch, H, W, C_out]
  (logits: the reconstruction is sigmoid(out), see
  ``losses.autoencoder.reconstruction_error``).
  """
  encoder: nn.Module
  decoder: nn.Module
  latent_dim: int
  encoder_params: ClassVar[tuple[str, ...]] = ("encoder",)

  def encode(self, x: jax.Array) -> jax.Array:
    """The code z: [batch, latent_dim]."""
    return self.encoder(x)

  def decode(self, z: jax.Array) -> jax.Array:
    """Decoder output (logits) for codes z: [batch, H, W, C_out]."""
    return self.decoder(z)

  def __call__(self, x: jax.Array) -> jax.Array:
    return self.decode(self.encode(x))
