"""The VQ-VAE (van den Oord et al. 2017, "Neural Discrete Representation Learning"):
a conv encoder to a grid of vectors, each replaced by its nearest entry of a learned
codebook, and a conv-transpose decoder from the quantized grid.

  z_e = enc(x):  [batch, H/4, W/4, D]       (two stride-2 convolutions, then a 1x1 to D)
  k   = argmin_j ||z_e - e_j||^2:  [batch, H/4, W/4]   (codebook e: [K, D])
  z_q = z_e + sg(e_k - z_e)                  (forward: e_k; backward: the identity to z_e)
  logits = dec(z_q):  [batch, H, W, output_channels]

The straight-through estimator (Sec. 3.2) copies the decoder's gradient at z_q to z_e, so
the reconstruction term trains the encoder and decoder but never the codebook: the
codebook learns from ``genjax.losses.vq``'s codebook loss, or from the exponential moving
averages of Appendix A.1 (``genjax.losses.vq.ema_codebook_update``).
"""

from __future__ import annotations

from typing import NamedTuple

import flax.linen as nn
import jax
import jax.numpy as jnp

from genjax.models import layers


def nearest_codes(z: jax.Array, codebook: jax.Array) -> jax.Array:
  """argmin_j ||z - e_j||^2 for each vector of z.

  z: [..., D]; codebook: [K, D] -> codes: [...] int32. The squared distance is expanded
  as ||z||^2 - 2 z.e_j + ||e_j||^2 (one matrix product, not a [..., K, D] difference).
  """
  distances = (jnp.sum(jnp.square(z), -1, keepdims=True) - 2.0 * z @ codebook.T
               + jnp.sum(jnp.square(codebook), -1))
  return jnp.argmin(distances, axis=-1).astype(jnp.int32)


def straight_through(z_e: jax.Array, e: jax.Array) -> jax.Array:
  """z_q = z_e + sg(e - z_e): the value of e, the gradient of z_e (dz_q / dz_e = I, and no
  gradient reaches e)."""
  return z_e + jax.lax.stop_gradient(e - z_e)


class VQOutput(NamedTuple):
  """What ``VQVAE.__call__`` computes for x [batch, H, W, C]."""
  z_e: jax.Array      # [batch, h, w, D], the encoder's output
  codes: jax.Array    # [batch, h, w] int32, the nearest codes
  e: jax.Array        # [batch, h, w, D], codebook[codes] (differentiable in the codebook)
  logits: jax.Array   # [batch, H, W, output_channels], dec(z_q)


class VQVAE(nn.Module):
  """A VQ-VAE for [batch, H, W, C] images with H and W multiples of 4.

  Encoder: Conv(width, 4, stride 2) - ReLU - Conv(width, 4, stride 2) - ReLU - Conv(D, 1).
  Decoder: Conv(width, 3) - ReLU - ConvTranspose(width, 4, stride 2) - ReLU -
  ConvTranspose(output_channels, 4, stride 2). Parameters: the layers and ``codebook``
  [K, D], initialised uniformly in +-sqrt(3 / K) (``lecun_uniform``).
  """
  codebook_size: int
  code_dim: int
  width: int = 32
  output_channels: int = 1

  def setup(self):
    self.encoder_layers = (layers.Conv(self.width, 4, 2), layers.Conv(self.width, 4, 2),
                           layers.Conv(self.code_dim, 1))
    self.codebook = self.param("codebook", nn.initializers.lecun_uniform(),
                               (self.codebook_size, self.code_dim))
    self.decoder_layers = (layers.Conv(self.width, 3), layers.ConvTranspose(self.width, 4, 2),
                           layers.ConvTranspose(self.output_channels, 4, 2))

  def encode(self, x: jax.Array) -> jax.Array:
    """x: [batch, H, W, C] -> z_e: [batch, H/4, W/4, D]."""
    if x.ndim != 4 or x.shape[1] % 4 or x.shape[2] % 4:
      raise ValueError(f"x of shape {x.shape}: expected [batch, H, W, C] with H and W "
                       "multiples of 4 (two stride-2 layers)")
    h = x
    for layer in self.encoder_layers[:-1]:
      h = nn.relu(layer(h))
    return self.encoder_layers[-1](h)

  def lookup(self, codes: jax.Array) -> jax.Array:
    """codes: [...] int -> codebook vectors [..., D]."""
    return jnp.take(self.codebook, codes, axis=0)

  def quantize(self, z_e: jax.Array) -> jax.Array:
    """z_e: [..., D] -> the nearest codes [...] (int32)."""
    return nearest_codes(z_e, self.codebook)

  def encode_codes(self, x: jax.Array) -> jax.Array:
    """x: [batch, H, W, C] -> the codes of its grid, [batch, H/4, W/4] int32."""
    return self.quantize(self.encode(x))

  def decode(self, z_q: jax.Array) -> jax.Array:
    """z_q: [batch, h, w, D] -> logits [batch, 4h, 4w, output_channels]."""
    h = z_q
    for layer in self.decoder_layers[:-1]:
      h = nn.relu(layer(h))
    return self.decoder_layers[-1](h)

  def decode_codes(self, codes: jax.Array) -> jax.Array:
    """codes: [batch, h, w] -> logits [batch, 4h, 4w, output_channels]."""
    return self.decode(self.lookup(codes))

  def __call__(self, x: jax.Array) -> VQOutput:
    z_e = self.encode(x)
    codes = self.quantize(z_e)
    e = self.lookup(codes)
    return VQOutput(z_e, codes, e, self.decode(straight_through(z_e, e)))
