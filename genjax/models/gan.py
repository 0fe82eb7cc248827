"""A DCGAN generator and discriminator (Radford et al. 2016) for 28x28 and 32x32 images.

Neither network uses batch normalisation: each image's output depends on that image (or
noise vector) alone, so the train step stays a pure function of its inputs, gives the
same numbers on any split of the batch across devices, and the R1 penalty's per-example
input gradients are exact. The generator normalises with LayerNorm instead, over one of
``GENERATOR_NORMS``:

* ``"channels"`` (the default, and the VAE-GAN's decoder): the conv-transpose's output is
  normalised over each pixel's channels, so every pixel's feature vector has the same
  length, the blank background's included; the last layer must undo that to draw black.
* ``"map"``: normalised over each example's whole (H, W, C) map (statistics over positions,
  as batch norm's, but per example, not over the batch), so a pixel's magnitude survives
  (train_gan's default; against "channels" a small difference in sample quality after one
  epoch, measured in experiments/configs/train_gan.py).
* ``"none"``: no normalisation.

The dense layer's LayerNorm (before the reshape, over all its outputs) is the same under
``"channels"`` and ``"map"``; the parameters (a scale and bias per channel) are the same
under both, so a checkpoint loads under either.

With ``categories`` = K > 0 the generator also reads a discrete code from its noise: the
index of the largest of z's first K coordinates (uniform over the K values, since the
coordinates are i.i.d.), one-hot, concatenated to z before the dense layer. That is the
categorical code of InfoGAN's MNIST generator (Chen et al. 2016: z plus a 10-way
code) without its mutual-information term, drawn from the same N(0, I) noise, so
every caller (the train step, sampling, the fixed grids) stays as it is. It makes the
generator discontinuous in z where the code changes, so it can put the ten digits in
separate pieces of the noise space instead of passing through in-between shapes on the way
from one to another (a continuous map of one Gaussian cannot). Measured in
experiments/configs/train_gan.py: sample_score 7.26 -> 7.60 after 4 epochs.

``most_real`` picks the samples to keep when sampling by discriminator rejection
(train_gan's ``gan_sample_keep``), within each value of the code.

The convolutions are ``layers.Conv`` and ``layers.ConvTranspose`` (``nn.Conv`` /
``nn.ConvTranspose``'s parameters and function; patch matrix products on CPU, where XLA's
native convolution gradients are slow inside ``lax.scan``: see ``genjax.models.layers``).
The generator's transposed convolutions keep the parameter names ``ConvTranspose2x_0`` /
``ConvTranspose2x_1`` of earlier checkpoints.
"""

from __future__ import annotations

from typing import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from genjax.models.layers import Conv, ConvTranspose

LEAKY_SLOPE = 0.2   # DCGAN's leaky ReLU slope in the discriminator
GENERATOR_NORMS = ("channels", "map", "none")   # what the generator's LayerNorms normalise


class Generator(nn.Module):
  """z -> image: dense to an (H/4, W/4, 2*width) map, two 4x4 stride-2 conv-transposes.

  z: [batch, latent_dim] -> x: [batch, H, W, C], pixels in [0, 1] (a sigmoid output).
  ``image_shape`` is (H, W, C) with H and W divisible by 4 (28x28 and 32x32 both work).
  With ``categories`` = K in 1..latent_dim, the dense layer reads [z, one_hot(argmax
  z[:, :K])] (see the module docstring); 0 (the default) reads z alone.
  Hidden layers: LayerNorm (over what ``norm`` names, one of ``GENERATOR_NORMS``: see the
  module docstring) then ReLU.
  """
  image_shape: Sequence[int]
  latent_dim: int
  width: int = 64
  norm: str = "channels"
  categories: int = 0

  @nn.compact
  def __call__(self, z: jax.Array) -> jax.Array:
    if z.ndim != 2 or z.shape[-1] != self.latent_dim:
      raise ValueError(f"Generator: z has shape {z.shape}; expected [batch, {self.latent_dim}]")
    check_generator_norm(self.norm)
    check_categories(self.categories, self.latent_dim)
    height, width, channels = self.image_shape
    if self.categories:
      code = jax.nn.one_hot(code_of(z, self.categories), self.categories, dtype=z.dtype)
      z = jnp.concatenate([z, code], axis=-1)
    h = nn.Dense(height // 4 * width // 4 * 2 * self.width)(z)
    h = nn.relu(self._normalise(h, (-1,))).reshape(
        z.shape[0], height // 4, width // 4, 2 * self.width)
    h = ConvTranspose(self.width, 4, 2, name="ConvTranspose2x_0")(h)
    h = nn.relu(self._normalise(h, (-1,) if self.norm == "channels" else (-3, -2, -1)))
    h = ConvTranspose(channels, 4, 2, name="ConvTranspose2x_1")(h)
    return nn.sigmoid(h)

  def _normalise(self, h: jax.Array, axes: tuple[int, ...]) -> jax.Array:
    """LayerNorm over ``axes`` with a scale and bias per channel (identity under "none")."""
    if self.norm == "none":
      return h
    return nn.LayerNorm(reduction_axes=axes, feature_axes=-1)(h)


def check_generator_norm(norm: str) -> None:
  if norm not in GENERATOR_NORMS:
    raise ValueError(f"norm={norm!r}: expected one of {', '.join(GENERATOR_NORMS)}")


def check_categories(categories: int, latent_dim: int) -> None:
  if not 0 <= categories <= latent_dim:
    raise ValueError(f"categories={categories}: expected 0 (no code) to latent_dim="
                     f"{latent_dim} (the code is the argmax of z's first `categories` "
                     "coordinates)")


def code_of(z: jax.Array, categories: int) -> jax.Array:
  """The generator's discrete code for noise z: [batch, latent_dim] -> [batch] ints, the
  argmax of z's first ``categories`` coordinates (all 0 when ``categories`` is 0)."""
  if not categories:
    return jnp.zeros(z.shape[:1], jnp.int32)
  return jnp.argmax(z[:, :categories], axis=-1)


def most_real(d_logits: np.ndarray, codes: np.ndarray, num: int) -> np.ndarray:
  """Indices of the ``num`` candidates to keep when sampling by discriminator rejection
  (a deterministic form of Azadi et al. 2019, Discriminator Rejection Sampling: draw more
  samples than needed, keep those D rates most real).

  d_logits, codes: [m] (D(G(z)) and ``code_of(z)`` per candidate), m >= num. Each
  candidate's rank among the candidates of its code, as a fraction of that code's count,
  orders them (ties by the logit), so every code keeps about num / m of its candidates and
  the code's marginal stays as drawn (a global cut would favour the digits D rates most
  real). Returns [num] indices in increasing order.
  """
  d_logits, codes = np.asarray(d_logits), np.asarray(codes)
  if not 0 < num <= len(d_logits) or codes.shape != d_logits.shape:
    raise ValueError(f"most_real: keep num={num} of {len(d_logits)} candidates (codes of "
                     f"shape {codes.shape}, logits {d_logits.shape}); expected 0 < num <= "
                     "candidates and one code per logit")
  share = np.empty(len(d_logits))
  for code in np.unique(codes):
    members = np.flatnonzero(codes == code)
    order = members[np.argsort(-d_logits[members], kind="stable")]
    share[order] = np.arange(len(order)) / len(order)
  return np.sort(np.lexsort((-d_logits, share))[:num])


class Discriminator(nn.Module):
  """x -> one logit per image: two stride-2 4x4 convolutions (width, 2*width channels)
  with leaky ReLU, then a dense layer.

  x: [batch, H, W, C], pixels in [0, 1] (mapped to [-1, 1] first) -> logits: [batch].
  D(x) = sigmoid(logit) is the probability that x is real. With ``return_features`` it
  returns ``(logits, (h_1, h_2))`` as well: each convolution's output after its leaky ReLU,
  h_1: [batch, H/2, W/2, width], h_2: [batch, H/4, W/4, 2*width] (the hidden layers
  Dis_l(x) in which a VAE-GAN compares images, ``models.vaegan``).
  """
  width: int = 64

  @nn.compact
  def __call__(self, x: jax.Array, return_features: bool = False
               ) -> jax.Array | tuple[jax.Array, tuple[jax.Array, ...]]:
    h, hidden = 2.0 * x - 1.0, []
    for features in (self.width, 2 * self.width):
      h = Conv(features, 4, stride=2)(h)
      h = nn.leaky_relu(h, LEAKY_SLOPE)
      hidden.append(h)
    logits = jnp.squeeze(nn.Dense(1)(h.reshape(x.shape[0], -1)), -1)
    return (logits, tuple(hidden)) if return_features else logits
