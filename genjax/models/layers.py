"""The convolution layers every model uses: ``Conv`` and ``ConvTranspose``, "SAME" padded.

Each holds exactly the parameters of ``nn.Conv(F, (k, k), strides=(s, s), padding="SAME")``
/ ``nn.ConvTranspose(F, (k, k), strides=(s, s), padding="SAME")`` (``kernel`` [k, k, C, F]
with ``lecun_normal``, ``bias`` [F] with zeros, so one PRNGKey gives the same numbers) and
computes the same function, by one of two implementations:

* ``"native"``: ``lax.conv_general_dilated`` / ``lax.conv_transpose``, as Flax does.
* ``"patches"``: strided slices of the padded input concatenated along channels, then one
  matrix product with the kernel; the transposed convolution by sub-pixel decomposition
  (Shi et al. 2016, "Is the deconvolution layer the same as a convolutional layer?"): one
  stride-1 patch convolution at the input resolution giving s*s output phases as channels,
  then a depth-to-space shuffle, which also skips the products with the zeros a transposed
  convolution inserts between input pixels. When the stride divides the kernel (the
  DCGAN's 4x4 stride 2) each phase has its own (k/s)^2 taps and is computed alone, one
  matrix product per tap accumulated, so no product with a zero tap is made (36 -> 16 per
  output pixel for 4x4 stride 2; 1.3x to 1.6x faster for the DCGAN's layers inside the fit
  loop on the CPU).

Why two: XLA's CPU backend computes the gradient of a native convolution about 14x slower
inside a ``lax.scan`` (the fit loop's fused chunk of steps) than outside it
(``bench/conv_in_scan.py``), while slices and matrix products stay fast there. On an NVIDIA
H200 the patch form is also the faster one for these small-image networks (conv VAE 1.5x,
DCGAN 1.9x the native form's training throughput, ``bench/RESULTS.md``, "On a GPU"): their
convolutions are too small for cuDNN's kernels to beat one matrix product. On a TPU (not
measured) the native convolution maps onto the matrix unit directly and stays the default.
``implementation()`` makes the choice, in this one place, when a layer is traced.
"""

from __future__ import annotations

import os

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

ENV_VAR = "GENJAX_CONV"
IMPLEMENTATIONS = ("patches", "native")
PATCH_BACKENDS = ("cpu", "gpu", "cuda", "rocm")  # where the patch form measured faster
_DIMENSIONS = ("NHWC", "HWIO", "NHWC")


def implementation() -> str:
  """``"patches"`` on the CPU and GPU backends (measured faster on both), ``"native"`` on any
  other; ``$GENJAX_CONV`` (``patches`` or ``native``) overrides. Read when a layer is
  traced, so a jitted function keeps the implementation it was traced with."""
  choice = os.environ.get(ENV_VAR, "")
  if not choice:
    return "patches" if jax.default_backend() in PATCH_BACKENDS else "native"
  if choice not in IMPLEMENTATIONS:
    raise ValueError(f"{ENV_VAR}={choice!r}: expected one of {', '.join(IMPLEMENTATIONS)} "
                     "(or unset it for the backend's default)")
  return choice


def _check_implementation(impl: str) -> None:
  if impl not in IMPLEMENTATIONS:
    raise ValueError(f"impl={impl!r}: expected one of {', '.join(IMPLEMENTATIONS)}")


def same_padding(size: int, kernel_size: int, stride: int) -> tuple[int, int]:
  """XLA's "SAME" padding of one spatial axis: output ceil(size / stride), total padding
  max((out - 1) * stride + k - size, 0), the odd one (if any) at the end."""
  out = -(-size // stride)
  total = max((out - 1) * stride + kernel_size - size, 0)
  return total // 2, total - total // 2


def transpose_padding(kernel_size: int, stride: int) -> tuple[int, int]:
  """``lax.conv_transpose``'s "SAME" padding (before, after) of the stride-dilated input:
  k + s - 2 in all, k - 1 before when s > k - 1, else ceil((k + s - 2) / 2) before."""
  total = kernel_size + stride - 2
  before = kernel_size - 1 if stride > kernel_size - 1 else -(-total // 2)
  return before, total - before


def conv_patches(x: jax.Array, kernel: jax.Array, stride: int,
                 padding: tuple[tuple[int, int], tuple[int, int]]) -> jax.Array:
  """A convolution (cross-correlation) as patches @ kernel.

  x: [batch, H, W, C]; kernel: [kh, kw, C, F]; padding ((top, bottom), (left, right)), zeros
  (negative crops) -> y: [batch, out_h, out_w, F] with out = (size + pads - k) // stride + 1:
  y[i, j] = sum_{u, v, c} x_pad[stride i + u, stride j + v, c] kernel[u, v, c, :].
  """
  kh, kw = kernel.shape[:2]
  x = jax.lax.pad(x, jnp.zeros((), x.dtype), ((0, 0, 0), (*padding[0], 0), (*padding[1], 0),
                                              (0, 0, 0)))
  out_h, out_w = (x.shape[1] - kh) // stride + 1, (x.shape[2] - kw) // stride + 1
  patches = jnp.concatenate(
      [x[:, u:u + stride * (out_h - 1) + 1:stride, v:v + stride * (out_w - 1) + 1:stride]
       for u in range(kh) for v in range(kw)], axis=-1)           # [batch, out_h, out_w, kh*kw*C]
  return patches @ kernel.reshape(-1, kernel.shape[-1]).astype(x.dtype)


def conv(x: jax.Array, kernel: jax.Array, stride: int = 1, impl: str = "native") -> jax.Array:
  """``nn.Conv``'s "SAME" convolution, no bias.

  x: [batch, H, W, C]; kernel: [k, k, C, F] -> y: [batch, ceil(H / s), ceil(W / s), F],
  y[i, j] = sum_{u, v, c} x_pad[s i + u, s j + v, c] kernel[u, v, c] with x_pad padded
  by ``same_padding``.
  """
  _check_implementation(impl)
  if impl == "native":
    return jax.lax.conv_general_dilated(x, kernel, (stride, stride), "SAME",
                                        dimension_numbers=_DIMENSIONS)
  k = kernel.shape[0]
  pads = (same_padding(x.shape[1], k, stride), same_padding(x.shape[2], k, stride))
  return conv_patches(x, kernel, stride, pads)


def phase_taps(kernel_size: int, stride: int) -> list[list[tuple[int, int]]]:
  """taps[a]: the (input offset d, kernel tap t) pairs of output phase a along one axis:
  y[s i + a] = sum over taps[a] of x[i + d] kernel[t], t = s d - a + p (p from
  ``transpose_padding``), only taps in 0..k-1. (Output s q + a reads the s-dilated input
  at s q + a + t - p, which is input pixel q + d when t = s d - a + p.)"""
  before, _ = transpose_padding(kernel_size, stride)
  return [[(d, stride * d - a + before) for d in range(-kernel_size, kernel_size + 1)
           if 0 <= stride * d - a + before < kernel_size] for a in range(stride)]


def _phase_tap_table(kernel_size: int, stride: int) -> tuple[np.ndarray, int]:
  """``phase_taps`` as a table for the sub-pixel form: taps[d, a], the kernel tap that input
  offset ``dmin + d`` feeds into output phase a (``kernel_size``, the index of an appended
  zero tap, where none); and dmin."""
  taps = phase_taps(kernel_size, stride)
  offsets = [d for phase in taps for d, _ in phase]
  dmin = min(offsets)
  table = np.full((max(offsets) - dmin + 1, stride), kernel_size)
  for a, phase in enumerate(taps):
    for d, t in phase:
      table[d - dmin, a] = t
  return table, dmin


def conv_transpose_taps(x: jax.Array, kernel: jax.Array, stride: int) -> jax.Array:
  """``lax.conv_transpose(x, kernel, (s, s), "SAME")``, each output phase on its own.

  x: [batch, H, W, C]; kernel: [k, k, C, F] -> y: [batch, s H, s W, F] with
    y[s i + a, s j + b] = sum_{(d, t) in taps[a], (e, u) in taps[b]} x[i + d, j + e] kernel[t, u]
  (``phase_taps``; x zero outside the image): one [batch*H*W, C] @ [C, F] product per
  useful tap, summed, the s*s phases interleaved by a depth-to-space shuffle.
  """
  batch, height, width, _ = x.shape
  taps = phase_taps(kernel.shape[0], stride)
  offsets = [d for phase in taps for d, _ in phase]
  before, after = max(-min(offsets), 0), max(max(offsets), 0)
  padded = jnp.pad(x, ((0, 0), (before, after), (before, after), (0, 0)))
  kernel = kernel.astype(x.dtype)

  def phase(a: int, b: int) -> jax.Array:
    terms = [padded[:, before + d:before + d + height, before + e:before + e + width]
             @ kernel[t, u] for d, t in taps[a] for e, u in taps[b]]
    if not terms:                           # k < s: this phase sees only inserted zeros
      return jnp.zeros((batch, height, width, kernel.shape[-1]), x.dtype)
    return sum(terms[1:], terms[0])

  y = jnp.stack([jnp.stack([phase(a, b) for b in range(stride)], axis=3)
                 for a in range(stride)], axis=2)                     # [batch, H, a, W, b, F]
  return y.reshape(batch, stride * height, stride * width, kernel.shape[-1])


def conv_transpose_patches(x: jax.Array, kernel: jax.Array, stride: int) -> jax.Array:
  """``lax.conv_transpose(x, kernel, (s, s), "SAME")`` by sub-pixel decomposition.

  x: [batch, H, W, C]; kernel: [k, k, C, F] -> y: [batch, s H, s W, F]. With
  (p, _) = ``transpose_padding(k, s)``, output phase (a, b) in 0..s-1 is a stride-1
  convolution of x:
    y[s i + a, s j + b] = sum_{d, e} x[i + d, j + e] kernel[s d - a + p, s e - b + p],
  taps outside 0..k-1 (and x outside the image) zero. All s*s phases are one patch
  convolution with an [n, n, C, s*s*F] kernel; a depth-to-space shuffle interleaves them.
  """
  batch, height, width, channels = x.shape
  k, features = kernel.shape[0], kernel.shape[-1]
  taps, dmin = _phase_tap_table(k, stride)
  n = taps.shape[0]
  padded = jnp.pad(kernel, ((0, 1), (0, 1), (0, 0), (0, 0)))         # tap k is zero
  phases = padded[taps[:, None, :, None], taps[None, :, None, :]]    # [n, n, s, s, C, F]
  phases = phases.transpose(0, 1, 4, 2, 3, 5).reshape(n, n, channels, stride ** 2 * features)
  pads = (-dmin, n - 1 + dmin)
  y = conv_patches(x, phases, 1, (pads, pads))                       # [batch, H, W, (a, b, F)]
  y = y.reshape(batch, height, width, stride, stride, features).transpose(0, 1, 3, 2, 4, 5)
  return y.reshape(batch, stride * height, stride * width, features)


def conv_transpose(x: jax.Array, kernel: jax.Array, stride: int = 2,
                   impl: str = "native") -> jax.Array:
  """``nn.ConvTranspose``'s "SAME" transposed convolution, no bias (kernel not flipped).

  x: [batch, H, W, C]; kernel: [k, k, C, F] -> y: [batch, s H, s W, F]: the stride-1
  correlation of the s-dilated x, padded by ``transpose_padding``, with the kernel.
  """
  _check_implementation(impl)
  if impl == "native":
    return jax.lax.conv_transpose(x, kernel, (stride, stride), "SAME",
                                  dimension_numbers=_DIMENSIONS)
  if kernel.shape[0] % stride == 0:         # every phase has (k/s)^2 taps of its own
    return conv_transpose_taps(x, kernel, stride)
  return conv_transpose_patches(x, kernel, stride)


class Conv(nn.Module):
  """``nn.Conv(features, (k, k), strides=(stride, stride), padding="SAME")``: the same
  ``kernel`` [k, k, C, F] and ``bias`` [F]; computed by ``conv`` with ``implementation()``.

  x: [batch, H, W, C] -> [batch, ceil(H / stride), ceil(W / stride), features].
  """
  features: int
  kernel_size: int
  stride: int = 1

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    kernel = self.param("kernel", nn.initializers.lecun_normal(),
                        (self.kernel_size, self.kernel_size, x.shape[-1], self.features))
    bias = self.param("bias", nn.initializers.zeros_init(), (self.features,))
    return conv(x, kernel, self.stride, implementation()) + bias


class ConvTranspose(nn.Module):
  """``nn.ConvTranspose(features, (k, k), strides=(stride, stride), padding="SAME")``: the
  same ``kernel`` [k, k, C, F] and ``bias`` [F]; computed by ``conv_transpose`` with
  ``implementation()``.

  x: [batch, H, W, C] -> [batch, stride * H, stride * W, features].
  """
  features: int
  kernel_size: int
  stride: int = 2

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    kernel = self.param("kernel", nn.initializers.lecun_normal(),
                        (self.kernel_size, self.kernel_size, x.shape[-1], self.features))
    bias = self.param("bias", nn.initializers.zeros_init(), (self.features,))
    return conv_transpose(x, kernel, self.stride, implementation()) + bias
