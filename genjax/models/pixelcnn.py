"""A PixelCNN prior over a grid of discrete codes (van den Oord et al. 2016, "Pixel
Recurrent Neural Networks", Sec. 3.5): masked convolutions make the logits at position i
(raster order, row by row) a function of the codes at positions < i only, so

  p(k) = prod_i p(k_i | k_<i),   p(k_i | k_<i) = softmax(logits_i),   k: [batch, H, W]

is an autoregressive distribution over the K codes at each position. The first layer's
mask (type A) excludes its own position; every later layer's (type B) includes it, which
keeps the chain causal because the features at i already exclude input i. Like the
original PixelCNN it has a blind spot (some earlier positions above and to the right fall
outside the receptive field); on a 7x7 grid the stack's field covers most of the past.
"""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from genjax.models import layers

MASK_TYPES = ("A", "B")


def causal_mask(kernel_size: int, mask_type: str) -> np.ndarray:
  """[k, k] 0/1 mask of a k x k kernel (k odd) centred at (c, c), c = k // 2: 1 on the rows
  above the centre and left of it on its row; type B also at the centre itself."""
  if mask_type not in MASK_TYPES:
    raise ValueError(f"mask_type={mask_type!r}: expected one of {', '.join(MASK_TYPES)}")
  if kernel_size % 2 == 0:
    raise ValueError(f"kernel_size={kernel_size}: a masked convolution needs an odd kernel")
  c = kernel_size // 2
  mask = np.zeros((kernel_size, kernel_size), np.float32)
  mask[:c] = 1.0
  mask[c, :c + (mask_type == "B")] = 1.0
  return mask


class MaskedConv(nn.Module):
  """``layers.Conv(features, kernel_size)`` (stride 1, "SAME") whose kernel [k, k, C, F] is
  multiplied by ``causal_mask(k, mask_type)``: y[i, j] = sum over the unmasked taps (u, v) of
  x[i + u - c, j + v - c] kernel[u, v] + bias."""
  features: int
  kernel_size: int
  mask_type: str

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    mask = causal_mask(self.kernel_size, self.mask_type)
    kernel = self.param("kernel", nn.initializers.lecun_normal(),
                        (self.kernel_size, self.kernel_size, x.shape[-1], self.features))
    bias = self.param("bias", nn.initializers.zeros_init(), (self.features,))
    masked = kernel * jnp.asarray(mask)[:, :, None, None]
    return layers.conv(x, masked, 1, layers.implementation()) + bias


class PixelCNN(nn.Module):
  """codes [batch, H, W] int -> logits [batch, H, W, num_codes] of p(k_i | k_<i).

  Codes embedded in ``width`` dimensions (a learned table: a one-hot input's first layer
  with its kernel factored through ``width`` dimensions) -> MaskedConv(width, 5, A) ->
  ``num_layers`` residual blocks h + MaskedConv(width, 3, B)(ReLU(h)) -> ReLU -> 1x1
  Conv(width) -> ReLU -> 1x1 Conv(num_codes).
  """
  num_codes: int
  width: int = 32
  num_layers: int = 4

  @nn.compact
  def __call__(self, codes: jax.Array) -> jax.Array:
    if codes.ndim != 3:
      raise ValueError(f"codes of shape {codes.shape}: expected [batch, H, W]")
    h = MaskedConv(self.width, 5, "A")(nn.Embed(self.num_codes, self.width)(codes))
    for _ in range(self.num_layers):
      h = h + MaskedConv(self.width, 3, "B")(nn.relu(h))
    h = nn.relu(layers.Conv(self.width, 1)(nn.relu(h)))
    return layers.Conv(self.num_codes, 1)(h)


def sample(model: PixelCNN, params, rng: jax.Array, num: int,
           grid: tuple[int, int]) -> jax.Array:
  """Ancestral sampling: ``num`` code grids [num, H, W] int32, k_i ~ p(k_i | k_<i) for
  i = 0 .. H W - 1 in raster order (one network evaluation per position, in a
  ``lax.fori_loop``; position i draws with ``fold_in(rng, i)``)."""
  height, width = grid

  def body(i, codes):
    logits = model.apply({"params": params}, codes).reshape(num, height * width, -1)
    drawn = jax.random.categorical(jax.random.fold_in(rng, i), logits[:, i])
    return codes.reshape(num, -1).at[:, i].set(drawn.astype(jnp.int32)).reshape(codes.shape)

  return jax.lax.fori_loop(0, height * width, body, jnp.zeros((num, height, width), jnp.int32))
