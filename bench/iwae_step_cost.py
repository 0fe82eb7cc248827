"""Cost of one IWAE train step as K grows, relative to K=1, measured in one process.

The IWAE paper's 1-layer network (784-200-200-50, tanh), batch 100, on MNIST-shaped
random binary data (cost does not depend on the values). Variants are timed in
interleaved rounds (K=1, 5, 50, DReG 50, K=1, ...) so that load on a shared machine hits
all of them alike; the ratio to K=1 is the number to read, not the absolute time.

  python bench/iwae_step_cost.py [--rounds=5] [--steps=50]
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

from genjax import likelihoods, models  # noqa: E402
from genjax.losses import elbo  # noqa: E402
from genjax.training import loop, parallel  # noqa: E402
from genjax.training import state as train_state  # noqa: E402
from genjax.training import step as train_step  # noqa: E402


def main():
  parser = argparse.ArgumentParser()
  parser.add_argument("--rounds", type=int, default=5)
  parser.add_argument("--steps", type=int, default=50)
  args = parser.parse_args()
  model = models.build_vae("mlp", (28, 28, 1), 50, (200, 200), 1, "tanh")
  lik = likelihoods.make_likelihood("bernoulli")
  params = model.init(jax.random.PRNGKey(0), jnp.zeros((1, 28, 28, 1)))["params"]
  optimizer = optax.adam(1e-3)
  data = {"image": (np.random.default_rng(0).random((args.steps * 100, 28, 28, 1)) > 0.5)
          .astype(np.float32)}
  data = jax.device_put(data)
  perm = jnp.arange(args.steps * 100)
  variants = ["iwae=1", "iwae=5", "iwae=50", "iwae_dreg=50"]
  chunks = {}
  for v in variants:
    step = train_step.make_train_step(elbo.make_loss(model, lik, elbo.parse_variant(v)),
                                      optimizer)
    chunks[v] = parallel.make_chunk_fn(step, 100, args.steps, loop.identity_preprocess,
                                       parallel.make_placement("none"))
  times = {v: [] for v in variants}
  zero = jax.device_put(np.int32(0))
  for r in range(args.rounds + 1):
    for v in variants:
      state = train_state.create_train_state(jax.tree.map(jnp.copy, params), optimizer,
                                             jax.random.PRNGKey(1))
      tic = time.perf_counter()
      state, metrics = chunks[v](state, data, perm, zero, zero, jax.random.PRNGKey(2))
      jax.block_until_ready(metrics)
      if r:  # round 0 compiles
        times[v].append((time.perf_counter() - tic) / args.steps)
  base = statistics.median(times["iwae=1"])
  print(f"device: {jax.devices()[0].device_kind}; {args.rounds} rounds x {args.steps} steps")
  print("| objective | ms per step (median) | relative to K=1 |\n|---|---|---|")
  for v in variants:
    med = statistics.median(times[v])
    print(f"| {v} | {1000 * med:.2f} | {med / base:.1f}x |")


if __name__ == "__main__":
  main()
