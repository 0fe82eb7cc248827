"""Cost of train_gan's step with top-k training against without, measured in one process.

The default DCGAN (z 32 with the 10-way code, widths G 32 / D 48, batch 30) on random
28x28 images (cost does not depend on the values), one fused chunk of 50 steps under
jit, as train_gan runs it. The two steps are timed in interleaved rounds so load on a
shared machine hits both alike; read the ratio, not the absolute time.

  python bench/gan_top_k_step.py [--rounds=8] [--steps=50]
"""

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
import optax  # noqa: E402

from genjax import models  # noqa: E402
from genjax.training import gan_step  # noqa: E402

LATENT, BATCH, STEPS_PER_EPOCH = 32, 30, 2000


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--rounds", type=int, default=8)
  parser.add_argument("--steps", type=int, default=50)
  args = parser.parse_args()
  generator, discriminator = models.build_gan((28, 28, 1), LATENT, 32, 48, 10)
  generator = generator.clone(norm="map")
  g_params = generator.init(jax.random.PRNGKey(0), jnp.zeros((1, LATENT)))["params"]
  d_params = discriminator.init(jax.random.PRNGKey(1), jnp.zeros((1, 28, 28, 1)))["params"]
  g_opt, d_opt = optax.adam(1e-3, 0.5), optax.adam(2e-4, 0.5)
  images = jnp.asarray(np.random.default_rng(0).random((args.steps, BATCH, 28, 28, 1),
                                                       np.float32))
  variants = {"plain": None,
              "top-k": gan_step.top_k_schedule(STEPS_PER_EPOCH, 0.5, 0.9)}
  chunks, times = {}, {name: [] for name in variants}
  for name, schedule in variants.items():
    step = gan_step.make_gan_train_step(generator, discriminator, g_opt, d_opt,
                                        "non_saturating", 0.0, LATENT, g_top_k=schedule)
    chunk = jax.jit(lambda s, x, step=step: jax.lax.scan(step, s, {"image": x}))
    state = gan_step.create_gan_train_state(g_params, d_params, g_opt, d_opt,
                                            jax.random.PRNGKey(2))
    jax.block_until_ready(chunk(state, images))   # compile
    chunks[name] = (chunk, state)
  for _ in range(args.rounds):
    for name, (chunk, state) in chunks.items():
      start = time.perf_counter()
      jax.block_until_ready(chunk(state, images))
      times[name].append(time.perf_counter() - start)
  base = statistics.median(times["plain"])
  print(f"{jax.devices()[0].platform}, batch {BATCH}, {args.steps} steps per chunk, "
        f"median of {args.rounds} rounds")
  for name, ts in times.items():
    ms = 1000 * statistics.median(ts) / args.steps
    print(f"{name:6s} {ms:6.2f} ms/step  {BATCH * args.steps / statistics.median(ts):6.0f} "
          f"examples/s  x{statistics.median(ts) / base:.2f}")


if __name__ == "__main__":
  main()
