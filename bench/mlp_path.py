"""Where the MLP VAE's default training path spends its time: an ablation against a clean loop.

The network is the shared yardstick's (``../shared/bench/jax_vae_ref.py``: the
pytorch/examples VAE 784-400-20, ReLU, Bernoulli likelihood, closed-form KL, Adam 1e-3,
batch 128, dynamically binarized MNIST, one epoch of 468 steps fused in one ``lax.scan``),
built with genjax's model, loss and step. Variants, each one compiled chunk of a whole
epoch, timed per epoch after a compiling one:

  genjax        the real path: ``loop.fit`` (``parallel.make_chunk_fn``): per-example keys
                ``fold_in(fold_in(data_rng, step), j)`` for the binarization and, through
                ``batch["index"]``, for the loss's noise; metrics and ``grad_norm``
  local         this script's copy of the chunk body, same switches on (checks the copy)
  batch_keys    one key per step for the binarization and one for the noise (the clean
                loop's way; not placement-independent)
  no_grad_norm  per-example keys, the step without ``grad_norm``
  static        per-example keys, no binarization inside the step (data binarized once)
  all_off       batch keys, no grad_norm, no binarization
  yardstick     ``../shared/bench/jax_vae_ref.py --epochs 2`` in a subprocess (its own
                init, its own loss; examples/s as it prints them)

Rounds alternate the variants (a fresh order each round), so load elsewhere hits all alike.

  python bench/mlp_path.py [--rounds=3] [--epochs_per_measurement=1]
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
import optax  # noqa: E402

from machine import cpu_name  # noqa: E402
from experiments.framework import runner  # noqa: E402
from genjax import likelihoods, models  # noqa: E402
from genjax.data import sources, transforms  # noqa: E402
from genjax.losses import elbo  # noqa: E402
from genjax.training import loop, parallel  # noqa: E402
from genjax.training import state as train_state  # noqa: E402
from genjax.training import step as train_step  # noqa: E402

SHARED = ROOT.parent / "shared"
BATCH = 128
VARIANTS = ("genjax", "local", "batch_keys", "no_grad_norm", "static", "all_off", "yardstick")


def step_without_grad_norm(loss_fn, optimizer):
  """``train_step.make_train_step``'s step less the ``grad_norm`` metric."""
  def step(state, batch):
    rng = jax.random.fold_in(state.rng, state.step)
    if "index" in batch:
      rng = parallel.per_example_keys(rng, batch["index"])
    (_, metrics), grads = jax.value_and_grad(loss_fn, has_aux=True)(
        state.params, {**batch, "step": state.step}, rng)
    updates, opt_state = optimizer.update(grads, state.opt_state, state.params)
    return state.replace(step=state.step + 1, params=optax.apply_updates(state.params, updates),
                         opt_state=opt_state), metrics
  return step


def local_chunk(step, preprocess, num_steps: int, per_example: bool, unroll: bool = False):
  """``parallel.make_chunk_fn`` (one device) with per-example keys switchable."""
  def body(carry, i):
    state, data, perm, data_rng = carry
    idx = jax.lax.dynamic_slice(perm, (i * BATCH,), (BATCH,))
    batch = {k: jnp.take(v, idx, axis=0) for k, v in data.items()}
    key = jax.random.fold_in(data_rng, state.step)
    if per_example:
      batch["index"] = jnp.arange(BATCH)
      key = parallel.per_example_keys(key, batch["index"])
    state, metrics = step(state, preprocess(batch, key))
    return (state, data, perm, data_rng), metrics

  @jax.jit
  def chunk(state, data, perm, data_rng):
    (state, *_), metrics = jax.lax.scan(body, (state, data, perm, data_rng),
                                        jnp.arange(num_steps), unroll=unroll)
    return state, jax.tree.map(jnp.mean, metrics)
  return chunk


def build(variant: str, images: np.ndarray):
  """A generator of (seconds, loss) per epoch for ``variant`` (first: the compiling one)."""
  model = models.build_vae("mlp", (28, 28, 1), 20, (400,), 1, "relu")
  loss_fn = elbo.make_loss(model, likelihoods.make_likelihood("bernoulli"),
                           elbo.parse_variant("elbo"))
  keys = runner.streams(0, "init", "state", "data")
  params = model.init(keys["init"], jnp.zeros((1, 28, 28, 1)))["params"]
  optimizer = optax.adam(1e-3)
  state = train_state.create_train_state(params, optimizer, keys["state"])
  steps = len(images) // BATCH
  if variant == "genjax":
    chunks = loop.fit(state, train_step.make_train_step(loss_fn, optimizer),
                      {"image": images}, batch_size=BATCH, num_epochs=10 ** 6,
                      data_rng=keys["data"], preprocess=runner.make_preprocess("dynamic"))
    for _, log in chunks:
      yield log["seconds"], log["loss"]
  static = variant in ("static", "all_off")
  per_example = variant not in ("batch_keys", "all_off")
  step = (step_without_grad_norm(loss_fn, optimizer) if variant in ("no_grad_norm", "all_off")
          else train_step.make_train_step(loss_fn, optimizer))
  preprocess = runner.make_preprocess("continuous" if static else "dynamic")
  data = transforms.binarize_static(images) if static else images
  chunk = local_chunk(step, preprocess, steps, per_example)
  data = jax.device_put({"image": data})
  epoch = 0
  while True:
    perm = loop.epoch_permutation(keys["data"], jnp.int32(epoch), len(images))
    tic = time.perf_counter()
    state, metrics = chunk(state, data, perm, keys["data"])
    loss = float(metrics["loss"])
    yield time.perf_counter() - tic, loss
    epoch += 1


def xla_cost(variant: str, images: np.ndarray) -> dict[str, float]:
  """XLA's cost analysis of one step of ``variant`` (a chunk of one step, unrolled, since
  the analysis does not look inside loops; ``genjax`` is measured as ``local``, its copy):
  FLOPs, transcendentals and bytes accessed (counts, free of the machine's noise)."""
  model = models.build_vae("mlp", (28, 28, 1), 20, (400,), 1, "relu")
  loss_fn = elbo.make_loss(model, likelihoods.make_likelihood("bernoulli"),
                           elbo.parse_variant("elbo"))
  params = model.init(jax.random.PRNGKey(0), jnp.zeros((1, 28, 28, 1)))["params"]
  optimizer = optax.adam(1e-3)
  state = train_state.create_train_state(params, optimizer, jax.random.PRNGKey(1))
  data = {"image": jnp.asarray(images)}
  perm = jnp.arange(len(images))
  static = variant in ("static", "all_off")
  step = (step_without_grad_norm(loss_fn, optimizer) if variant in ("no_grad_norm", "all_off")
          else train_step.make_train_step(loss_fn, optimizer))
  chunk = local_chunk(step, runner.make_preprocess("continuous" if static else "dynamic"),
                      1, variant not in ("batch_keys", "all_off"), unroll=True)
  cost = chunk.lower(state, data, perm, jax.random.PRNGKey(2)).compile().cost_analysis()
  cost = cost[0] if isinstance(cost, (list, tuple)) else cost
  return {k: float(cost.get(k, float("nan"))) for k in ("flops", "transcendentals",
                                                         "bytes accessed")}


def yardstick(epochs: int) -> float:
  out = subprocess.run([sys.executable, str(SHARED / "bench" / "jax_vae_ref.py"), "--data",
                        str(SHARED / "data" / "mnist.npz"), "--epochs", str(epochs)],
                       check=True, capture_output=True, text=True).stdout
  return float(re.search(r"examples_per_s=([\d.]+)", out).group(1))


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  parser.add_argument("--rounds", type=int, default=3)
  parser.add_argument("--variants", default=",".join(VARIANTS))
  parser.add_argument("--cost", action="store_true", help="print XLA's cost analysis of each "
                      "variant's chunk (per step) instead of timing")
  args = parser.parse_args()
  variants = args.variants.split(",")
  data = sources.load("mnist", str(SHARED / "data"))
  images = data.train_images
  if args.cost:
    print("| variant | MFLOP / step | transcendentals / step | MB accessed / step |")
    print("|---|---|---|---|")
    for v in variants:
      if v != "yardstick":
        c = xla_cost(v, images)
        print(f"| {v} | {c['flops'] / 1e6:.1f} | {c['transcendentals']:,.0f} "
              f"| {c['bytes accessed'] / 1e6:.1f} |")
    return
  steps = len(images) // BATCH
  runs = {v: build(v, images) for v in variants if v != "yardstick"}
  results = {v: [] for v in variants}
  load_before, wall = os.getloadavg(), time.perf_counter()
  for v, gen in runs.items():
    dt, loss = next(gen)
    print(f"# compile+epoch {v}: {dt:.1f} s, loss {loss:.2f}", file=sys.stderr)
  rng = np.random.default_rng(0)
  for r in range(args.rounds):
    for v in rng.permutation(variants):
      if v == "yardstick":
        results[v].append(yardstick(1))
      else:
        dt, loss = next(runs[v])
        results[v].append(steps * BATCH / dt)
      print(f"# round {r} {v}: {results[v][-1]:,.0f} examples/s", file=sys.stderr)
  ref = statistics.median(results["genjax"]) if "genjax" in results else None
  print(f"{cpu_name()}, {os.cpu_count()} cores; jax {jax.__version__}; MNIST; batch {BATCH}, "
        f"{steps} steps per measurement (one epoch); {args.rounds} rounds; "
        f"{time.perf_counter() - wall:.0f} s; load average before {load_before[0]:.2f}, after "
        f"{os.getloadavg()[0]:.2f}\n")
  best = max(results["genjax"]) if "genjax" in results else None
  print("| variant | examples/s min / median / max | vs genjax (median, max) |")
  print("|---|---|---|")
  for v in variants:
    med = statistics.median(results[v])
    rel = f"{med / ref:.2f}x, {max(results[v]) / best:.2f}x" if ref else ""
    print(f"| {v} | {min(results[v]):,.0f} / {med:,.0f} / {max(results[v]):,.0f} | {rel} |")


if __name__ == "__main__":
  main()
