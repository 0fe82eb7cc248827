"""Cost of a convolution's gradient inside ``lax.scan`` (the fit loop's fused chunk) vs outside.

Why ``genjax/models/layers.py`` computes convolutions as patch matrix products on CPU: on
XLA's CPU backend the kernel gradient of a native ``nn.Conv`` is much slower inside a
scanned loop body than in a plain jitted call. This times one gradient of the DCGAN
discriminator's two strided convolutions (batch 128, 28x28x1, widths 64 and 128) with
``flax.linen.Conv`` and with ``genjax.models.layers.conv(..., impl="patches")`` (the same
function of the kernel; no bias), each once as a jitted call and once per iteration of a
``lax.scan`` of 10 iterations. Rounds interleave the four variants; the median of each
is reported.

  python bench/conv_in_scan.py [--rounds=5]
"""

from __future__ import annotations

import argparse
import platform
import time

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from genjax.models import layers

SCAN_STEPS = 10


class Net(nn.Module):
  native: bool

  @nn.compact
  def __call__(self, x):
    for features in (64, 128):
      if self.native:
        x = nn.Conv(features, (4, 4), strides=(2, 2), padding="SAME")(x)
      else:
        kernel = self.param(f"kernel_{features}", nn.initializers.lecun_normal(),
                            (4, 4, x.shape[-1], features))
        x = layers.conv(x, kernel, 2, "patches")
      x = nn.leaky_relu(x, 0.2)
    return jnp.sum(x ** 2)


def make(native: bool, x):
  net = Net(native)
  params = net.init(jax.random.PRNGKey(0), x)["params"]
  grad = jax.grad(lambda p, xb: net.apply({"params": p}, xb))

  @jax.jit
  def single(p, xb):
    return grad(p, xb)

  @jax.jit
  def scanned(p, xb):
    def body(p, i):
      g = grad(p, xb + i * 1e-3)
      return jax.tree.map(lambda a, b: a - 1e-6 * b, p, g), None
    return jax.lax.scan(body, p, jnp.arange(SCAN_STEPS, dtype=jnp.float32))[0]

  return params, single, scanned


def main() -> None:
  parser = argparse.ArgumentParser()
  parser.add_argument("--rounds", type=int, default=5)
  args = parser.parse_args()
  x = jax.random.uniform(jax.random.PRNGKey(1), (128, 28, 28, 1))
  variants = {}
  for native in (True, False):
    params, single, scanned = make(native, x)
    name = "nn.Conv" if native else "layers.conv (patches)"
    jax.block_until_ready(single(params, x))
    jax.block_until_ready(scanned(params, x))
    variants[f"{name}, jit"] = (lambda s=single, p=params: s(p, x), 1)
    variants[f"{name}, inside lax.scan"] = (lambda s=scanned, p=params: s(p, x), SCAN_STEPS)
  times = {k: [] for k in variants}
  for _ in range(args.rounds):
    for name, (fn, steps) in variants.items():
      tic = time.perf_counter()
      jax.block_until_ready(fn())
      times[name].append((time.perf_counter() - tic) / steps)
  print(f"# {platform.processor() or platform.machine()}, jax {jax.__version__}, "
        f"{jax.devices()[0].device_kind}, {args.rounds} rounds")
  print("| variant | ms per gradient (median) |")
  print("|---|---|")
  for name, ts in times.items():
    print(f"| {name} | {1e3 * np.median(ts):.1f} |")


if __name__ == "__main__":
  main()
