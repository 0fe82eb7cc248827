"""Train throughput of the conv VAE with the native vs the patch convolutions.

The default run's conv VAE (``models.build_vae("conv", (28, 28, 1), 32, (256,), 1)``:
3x3 stride-2 convolutions 32, 64 and their transposes, Bernoulli likelihood, dynamic
binarization), the ELBO loss, Adam 1e-3, batch 128, trained by ``training.loop.fit`` in
fused chunks of ``--steps_per_chunk`` steps: the real train path, without the runner.
Each measurement is one fresh process with ``GENJAX_CONV=native`` or ``patches`` (the
layers read it when traced); rounds alternate the two, the first of a round swapping each
round, so load on a shared machine hits both alike. Per process: the first chunk's
seconds (compile + one chunk), then examples/s of each later chunk (median reported).

  python bench/conv_vae_step.py [--rounds=3] [--steps_per_chunk=20] [--chunks=4]
      [--data_dir=../shared/data]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))
from machine import cpu_name  # noqa: E402

MNIST = ROOT.parent / "shared" / "data"
IMPLS = ("native", "patches")
BATCH = 128


def worker(steps_per_chunk: int, chunks: int, data_dir: Path) -> dict:
  """One process, one implementation: fit one epoch of ``chunks`` chunks; time each."""
  import jax
  import jax.numpy as jnp
  import optax

  from genjax import likelihoods, models
  from genjax.data import sources, transforms
  from genjax.losses import elbo
  from genjax.models import layers
  from genjax.training import loop, state as train_state, step as train_step

  n = BATCH * steps_per_chunk * chunks
  if (data_dir / "mnist.npz").is_file():
    data = sources.load("mnist", str(data_dir))
  else:
    data = sources.synthetic(num_train=n, num_test=1)
  images = data.train_images[:n]
  model = models.build_vae("conv", (28, 28, 1), 32, (256,), 1)
  params = model.init(jax.random.PRNGKey(0), jnp.zeros((1, 28, 28, 1)))["params"]
  optimizer = optax.adam(1e-3)
  step = train_step.make_train_step(
      elbo.make_elbo_loss(model, likelihoods.make_likelihood("bernoulli")), optimizer)
  state = train_state.create_train_state(params, optimizer, jax.random.PRNGKey(1))
  preprocess = lambda batch, rng: {**batch, "image": transforms.preprocess(
      batch["image"], rng, "dynamic")}
  logs = [log for _, log in loop.fit(state, step, {"image": images}, batch_size=BATCH,
                                     num_epochs=1, data_rng=jax.random.PRNGKey(2),
                                     preprocess=preprocess, steps_per_chunk=steps_per_chunk)]
  steady = [log["examples_per_s"] for log in logs[1:]]
  return {"impl": layers.implementation(), "data": data.source, "elbo": logs[-1]["elbo"],
          "first_chunk_s": logs[0]["seconds"],
          "compile_s": logs[0]["seconds"] - statistics.median(log["seconds"] for log in logs[1:]),
          "examples_per_s": statistics.median(steady), "device": jax.devices()[0].device_kind,
          "jax": jax.__version__}


def run_worker(impl: str, args: argparse.Namespace) -> dict:
  env = {**os.environ, "GENJAX_CONV": impl}
  out = subprocess.run([sys.executable, __file__, "--worker", f"--chunks={args.chunks}",
                        f"--steps_per_chunk={args.steps_per_chunk}",
                        f"--data_dir={args.data_dir}"], env=env, check=True,
                       capture_output=True, text=True, cwd=ROOT).stdout
  result = json.loads(out.strip().splitlines()[-1])
  assert result["impl"] == impl, result
  return result


def main() -> None:
  parser = argparse.ArgumentParser()
  parser.add_argument("--rounds", type=int, default=3)
  parser.add_argument("--steps_per_chunk", type=int, default=20)
  parser.add_argument("--chunks", type=int, default=4, help="chunks per process; the first "
                      "compiles, the others are timed")
  parser.add_argument("--data_dir", type=Path, default=MNIST, help="holds mnist.npz (else "
                      "synthetic images)")
  parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
  args = parser.parse_args()
  if args.worker:
    print(json.dumps(worker(args.steps_per_chunk, args.chunks, args.data_dir)))
    return
  results = {impl: [] for impl in IMPLS}
  load_before, tic = os.getloadavg(), time.time()
  for r in range(args.rounds):
    for impl in (IMPLS if r % 2 == 0 else IMPLS[::-1]):
      results[impl].append(run_worker(impl, args))
      print(f"# round {r + 1} {impl}: {results[impl][-1]}", file=sys.stderr)
  first = results[IMPLS[0]][0]
  print(f"# {cpu_name()}, {os.cpu_count()} cores, jax {first['jax']}, {first['device']}; "
        f"data {first['data']}; batch {BATCH}, {args.steps_per_chunk} steps per chunk, "
        f"{args.chunks - 1} timed chunks per process, {args.rounds} rounds, "
        f"{time.time() - tic:.0f} s; load average before {load_before[0]:.2f}, "
        f"after {os.getloadavg()[0]:.2f}")
  print("| GENJAX_CONV | examples/s min | examples/s median | ms/step (median) "
        "| compile s (median) | final chunk ELBO |")
  print("|---|---|---|---|---|---|")
  for impl, rs in results.items():
    eps = [r["examples_per_s"] for r in rs]
    print(f"| {impl} | {min(eps):.0f} | {statistics.median(eps):.0f} "
          f"| {1e3 * BATCH / statistics.median(eps):.1f} "
          f"| {statistics.median(r['compile_s'] for r in rs):.1f} "
          f"| {statistics.median(r['elbo'] for r in rs):.2f} |")


if __name__ == "__main__":
  main()
