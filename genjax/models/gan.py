"""A DCGAN generator and discriminator (Radford et al. 2016) for 28x28 and 32x32 images.

Neither network uses batch normalisation: each image's output depends on that image (or
noise vector) alone, so the train step stays a pure function of its inputs, gives the
same numbers on any split of the batch across devices, and the R1 penalty's per-example
input gradients are exact. The generator normalises with LayerNorm instead.

Every convolution here is a matrix product of image patches with the kernel
(``conv_same``): XLA's CPU backend computes the gradient of a native convolution
about 14x slower inside a ``lax.scan`` loop (the fit loop's fused chunk of steps) than
outside it (``bench/conv_in_scan.py``), while patches (strided slices) and matrix products stay fast there; the
layers hold the parameters ``nn.Conv`` / ``nn.ConvTranspose`` would and compute the same
function (tests/test_gan.py checks both). The generator's stride-2 transposed
convolutions are ``ConvTranspose2x``: a 3x3 convolution at the input resolution and a
depth-to-space shuffle (Shi et al. 2016, Is the deconvolution layer the same as a
convolutional layer?), which also skips the products with the zeros a transposed
convolution inserts between input pixels.
"""

from __future__ import annotations

from typing import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

LEAKY_SLOPE = 0.2   # DCGAN's leaky ReLU slope in the discriminator


def conv_same(x: jax.Array, kernel: jax.Array, stride: int = 1) -> jax.Array:
  """The "SAME"-padded convolution of ``nn.Conv``, as patches @ kernel.

  x: [batch, H, W, C]; kernel: [k, k, C, F] -> [batch, ceil(H / stride), ceil(W / stride), F]:
  y[i, j] = sum_{u, v, c} x_pad[stride i + u, stride j + v, c] kernel[u, v, c], x_pad padded
  with zeros as XLA pads "SAME" (the extra row/column, if any, at the end).
  """
  k = kernel.shape[0]
  out_h, out_w = -(-x.shape[1] // stride), -(-x.shape[2] // stride)
  pads = [(total // 2, total - total // 2) for total in
          (max((out - 1) * stride + k - size, 0) for out, size in
           ((out_h, x.shape[1]), (out_w, x.shape[2])))]
  x = jnp.pad(x, ((0, 0), *pads, (0, 0)))
  patches = jnp.concatenate(
      [x[:, u:u + stride * (out_h - 1) + 1:stride, v:v + stride * (out_w - 1) + 1:stride]
       for u in range(k) for v in range(k)], axis=-1)              # [batch, out_h, out_w, k*k*C]
  return patches @ kernel.reshape(-1, kernel.shape[-1]).astype(x.dtype)


class Conv(nn.Module):
  """``nn.Conv(features, (k, k), strides=(stride, stride), padding="SAME")``: the same
  ``kernel`` [k, k, C, F] and ``bias`` [F], computed by ``conv_same``."""
  features: int
  kernel_size: int
  stride: int = 1

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    kernel = self.param("kernel", nn.initializers.lecun_normal(),
                        (self.kernel_size, self.kernel_size, x.shape[-1], self.features))
    bias = self.param("bias", nn.initializers.zeros_init(), (self.features,))
    return conv_same(x, kernel, self.stride) + bias


class ConvTranspose2x(nn.Module):
  """A 4x4 stride-2 "SAME" transposed convolution: x [batch, H, W, C] -> [batch, 2H, 2W, F].

  y[2i + a, 2j + b] = sum_{u, v in 0..2} x[i + u - 1, j + v - 1] k[2u - a, 2v - b] + bias,
  a, b in {0, 1}, taps outside 0..3 (and x outside the image) zero: exactly
  ``nn.ConvTranspose(F, (4, 4), strides=(2, 2), padding="SAME")`` on the same ``kernel``
  [4, 4, C, F] and ``bias`` [F] (same names, shapes and initialisers).
  """
  features: int

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    batch, height, width, channels = x.shape
    kernel = self.param("kernel", nn.initializers.lecun_normal(),
                        (4, 4, channels, self.features))
    bias = self.param("bias", nn.initializers.zeros_init(), (self.features,))
    # taps[u, a] = 2u - a, shifted by one into the kernel padded with a zero tap each side.
    taps = 2 * jnp.arange(3)[:, None] - jnp.arange(2)[None, :] + 1                  # [3, 2]
    padded = jnp.pad(kernel, ((1, 1), (1, 1), (0, 0), (0, 0)))
    k3 = padded[taps[:, None, :, None], taps[None, :, None, :]]            # [3, 3, 2, 2, C, F]
    k3 = k3.transpose(0, 1, 4, 2, 3, 5).reshape(3, 3, channels, 4 * self.features)
    y = conv_same(x, k3)                                         # [batch, H, W, (a, b, F)]
    y = y.reshape(batch, height, width, 2, 2, self.features).transpose(0, 1, 3, 2, 4, 5)
    return y.reshape(batch, 2 * height, 2 * width, self.features) + bias


class Generator(nn.Module):
  """z -> image: dense to an (H/4, W/4, 2*width) map, two 4x4 stride-2 conv-transposes.

  z: [batch, latent_dim] -> x: [batch, H, W, C], pixels in [0, 1] (a sigmoid output).
  ``image_shape`` is (H, W, C) with H and W divisible by 4 (28x28 and 32x32 both work).
  Hidden layers: LayerNorm then ReLU.
  """
  image_shape: Sequence[int]
  latent_dim: int
  width: int = 64

  @nn.compact
  def __call__(self, z: jax.Array) -> jax.Array:
    if z.ndim != 2 or z.shape[-1] != self.latent_dim:
      raise ValueError(f"Generator: z has shape {z.shape}; expected [batch, {self.latent_dim}]")
    height, width, channels = self.image_shape
    h = nn.Dense(height // 4 * width // 4 * 2 * self.width)(z)
    h = nn.relu(nn.LayerNorm()(h)).reshape(z.shape[0], height // 4, width // 4, 2 * self.width)
    h = nn.relu(nn.LayerNorm()(ConvTranspose2x(self.width)(h)))
    h = ConvTranspose2x(channels)(h)
    return nn.sigmoid(h)


class Discriminator(nn.Module):
  """x -> one logit per image: two stride-2 4x4 convolutions (width, 2*width channels)
  with leaky ReLU, then a dense layer.

  x: [batch, H, W, C], pixels in [0, 1] (mapped to [-1, 1] first) -> logits: [batch].
  D(x) = sigmoid(logit) is the probability that x is real.
  """
  width: int = 64

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    h = 2.0 * x - 1.0
    for features in (self.width, 2 * self.width):
      h = Conv(features, 4, stride=2)(h)
      h = nn.leaky_relu(h, LEAKY_SLOPE)
    return jnp.squeeze(nn.Dense(1)(h.reshape(x.shape[0], -1)), -1)
