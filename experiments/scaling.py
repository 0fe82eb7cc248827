"""Measure training throughput across device counts, batch sizes, model sizes and placements.

For each placement (none | pmap | sharded), device count (1, 2, 4, ... up to what is
there), model size (--model_sizes: hidden widths of an MLP VAE), per-device batch size
and mode (strong: a fixed global batch, per_device_batch x the largest device count;
weak: per_device_batch x devices), it times --repeats fused chunks of --steps VAE train
steps after a compiling one, and reports examples/s, steps/s, compile seconds and
parallel efficiency (throughput over devices x the same placement's 1-device
throughput). Writes metrics.jsonl (one line per measurement; a rerun in the same
workdir measures only what is missing), results.md / results.json and scaling.png.
Simulated CPU devices (--host_devices) share the same cores: there the figures test the
code path, not speed.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import os

from absl import app, flags, logging
import jax
import jax.numpy as jnp
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import optax  # noqa: E402

from experiments import common  # noqa: E402
from genjax import data, models, objectives, parallel, train, workdir  # noqa: E402

flags.DEFINE_list("placements", list(parallel.PLACEMENTS), "Placements to measure.")
flags.DEFINE_list("device_counts", [], "Device counts (default: 1, 2, 4, ... up to all).")
flags.DEFINE_list("per_device_batch", ["64"], "Per-device batch sizes.")
flags.DEFINE_list("model_sizes", ["256", "1024"], "Hidden widths of the MLP VAEs measured "
                  "(one hidden layer each way; 'W1:W2' for two).")
flags.DEFINE_list("modes", ["strong", "weak"], "strong: fixed global batch; weak: fixed "
                  "per-device batch.")
flags.DEFINE_integer("steps", 20, "Train steps per timed chunk.", lower_bound=1)
flags.DEFINE_integer("repeats", 3, "Timed chunks after the compiling one.", lower_bound=1)
FLAGS = flags.FLAGS

SIMULATED_NOTE = ("Simulated CPU devices (--host_devices) share the same cores: figures "
                  "measured on them test the code path, not speed.")


def _check(name, allowed=None, integer=False):
  def check(values):
    bad = [v for v in values if (allowed is not None and v not in allowed)
           or (integer and not (v.isdigit() and int(v) > 0))]
    if bad or not values:
      want = f"one or more of {', '.join(allowed)}" if allowed else "positive integers"
      raise flags.ValidationError(f"expected comma-separated {want}, got {','.join(values)}")
    return True
  flags.register_validator(name, check)


_check("placements", parallel.PLACEMENTS)
_check("modes", ("strong", "weak"))
_check("per_device_batch", integer=True)
flags.register_validator("device_counts", lambda v: all(s.isdigit() and int(s) > 0 for s in v),
                         message="expected comma-separated positive integers")
flags.register_validator(
    "model_sizes", lambda v: bool(v) and all(w.isdigit() and int(w) > 0
                                             for s in v for w in s.split(":")),
    message="expected comma-separated widths, e.g. 256,1024 or 512:512")


@dataclasses.dataclass(frozen=True)
class Config:
  workdir: str
  seed: int
  learning_rate: float
  latent_dim: int
  placements: tuple[str, ...]
  device_counts: tuple[int, ...]
  per_device_batch: tuple[int, ...]
  model_sizes: tuple[tuple[int, ...], ...]
  modes: tuple[str, ...]
  steps: int
  repeats: int


def config_from_flags() -> Config:
  counts = tuple(int(c) for c in FLAGS.device_counts) or tuple(
      2 ** i for i in range(int(np.log2(jax.device_count())) + 1))
  return Config(FLAGS.workdir, FLAGS.seed, FLAGS.learning_rate, FLAGS.latent_dim,
                tuple(FLAGS.placements), counts, tuple(int(b) for b in FLAGS.per_device_batch),
                tuple(tuple(int(w) for w in s.split(":")) for s in FLAGS.model_sizes),
                tuple(FLAGS.modes), FLAGS.steps, FLAGS.repeats)


def measure(config: Config, kind: str, devices: int, hidden: tuple[int, ...],
            global_batch: int) -> dict[str, float]:
  """Throughput of the VAE train step placed by ``kind`` on ``devices`` devices."""
  placement = parallel.make_placement(kind, devices)
  parallel.check_batch_size(placement, global_batch)
  model = models.build_vae("mlp", (28, 28, 1), config.latent_dim, hidden, 1)
  likelihood = objectives.make_likelihood("bernoulli")
  params = model.init(jax.random.PRNGKey(config.seed), jnp.zeros((1, 28, 28, 1)))["params"]
  optimizer = optax.adam(config.learning_rate)
  step = train.make_train_step(objectives.make_elbo_loss(model, likelihood), optimizer,
                               axis_name=placement.axis_name)
  images = data.synthetic(global_batch * config.steps, 1, seed=config.seed).train_images
  state = train.create_train_state(params, optimizer, jax.random.PRNGKey(config.seed + 1))
  logs = [log for _, log in train.fit(
      state, step, {"image": images}, batch_size=global_batch, num_epochs=config.repeats + 1,
      data_rng=jax.random.PRNGKey(config.seed + 2), steps_per_chunk=config.steps,
      placement=placement)]
  steady = float(np.median([log["seconds"] for log in logs[1:]]))
  return {"examples_per_s": global_batch * config.steps / steady,
          "steps_per_s": config.steps / steady, "compile_s": logs[0]["seconds"] - steady}


def _plan(config: Config) -> list[dict]:
  """Every measurement to take, each checked (placement, devices, batch) before any runs."""
  available = jax.device_count()
  too_many = [c for c in config.device_counts if c > available]
  if too_many:
    raise ValueError(f"--device_counts={','.join(map(str, too_many))} exceeds the {available} "
                     "devices here (use --host_devices=N on a CPU)")
  plan = []
  for kind, hidden, per_device, mode in itertools.product(
      config.placements, config.model_sizes, config.per_device_batch, config.modes):
    for devices in (1,) if kind == "none" else config.device_counts:
      global_batch = per_device * (devices if mode == "weak" else max(config.device_counts))
      parallel.check_batch_size(parallel.make_placement(kind, devices), global_batch)
      plan.append({"placement": kind, "devices": devices, "model": ":".join(map(str, hidden)),
                   "per_device_batch": per_device, "mode": mode, "global_batch": global_batch})
  return plan


def run(config: Config) -> list[dict]:
  """Measures every point of the plan (reusing those a previous invocation measured)."""
  plan = _plan(config)
  workdir.check_or_write_config(config.workdir, dataclasses.asdict(config))
  done = {_key(r): r for r in workdir.read_metrics(config.workdir)}
  writer = workdir.MetricsWriter(config.workdir, tensorboard=False)
  rows = []
  for i, point in enumerate(plan):
    row = done.get(_key(point))
    if row is None:
      hidden = tuple(int(w) for w in point["model"].split(":"))
      row = {"step": i, **point, **measure(config, point["placement"], point["devices"],
                                           hidden, point["global_batch"])}
      writer.write(row)
      logging.info("%s", row)
    rows.append(row)
  writer.close()
  _add_efficiency(rows)
  _write(config, rows)
  return rows


def _key(row: dict) -> tuple:
  return tuple(row.get(k) for k in ("placement", "devices", "model", "per_device_batch", "mode"))


def _add_efficiency(rows: list[dict]) -> None:
  """efficiency = throughput / (devices x the same series' 1-device throughput)."""
  for row in rows:
    key = (row["placement"], row["model"], row["per_device_batch"], row["mode"])
    base = [r for r in rows if (r["placement"], r["model"], r["per_device_batch"], r["mode"])
            == key and r["devices"] == 1]
    row["efficiency"] = (row["examples_per_s"] / (row["devices"] * base[0]["examples_per_s"])
                         if base else float("nan"))


def _write(config: Config, rows: list[dict]) -> None:
  if not workdir.is_primary():
    return
  device = jax.devices()[0]
  simulated = device.platform == "cpu" and jax.device_count() > 1
  meta = {"device": device.device_kind, "platform": device.platform,
          "num_devices": jax.device_count(), "num_processes": jax.process_count(),
          "simulated_devices": simulated}
  with open(os.path.join(config.workdir, workdir.RESULTS_JSON), "w") as f:
    json.dump({**meta, "rows": rows}, f, indent=2)
  cols = ("placement", "mode", "model", "per_device_batch", "devices", "global_batch",
          "examples_per_s", "steps_per_s", "compile_s", "efficiency")
  lines = [f"# Scaling on {jax.device_count()} x {device.device_kind}", "",
           "| " + " | ".join(cols) + " |", "|---" * len(cols) + "|"]
  for r in rows:
    lines.append("| " + " | ".join(f"{r[c]:.3g}" if isinstance(r[c], float) else str(r[c])
                                   for c in cols) + " |")
  if simulated:
    lines += ["", SIMULATED_NOTE]
  with open(os.path.join(config.workdir, workdir.RESULTS_MD), "w") as f:
    f.write("\n".join(lines) + "\n")
  fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4))
  series = sorted({(r["placement"], r["mode"], r["model"], r["per_device_batch"]) for r in rows})
  for key in series:
    pts = sorted((r["devices"], r["examples_per_s"], r["efficiency"]) for r in rows
                 if (r["placement"], r["mode"], r["model"], r["per_device_batch"]) == key)
    label = f"{key[0]} {key[1]} h={key[2]} b={key[3]}"
    ax1.plot([p[0] for p in pts], [p[1] for p in pts], "o-", label=label)
    ax2.plot([p[0] for p in pts], [p[2] for p in pts], "o-", label=label)
  ax1.set(xscale="log", yscale="log", xlabel="devices", ylabel="examples / s")
  ax2.set(xscale="log", xlabel="devices", ylabel="parallel efficiency")
  ax2.legend(fontsize=6)
  if simulated:
    fig.suptitle(SIMULATED_NOTE, fontsize=8)
  fig.savefig(os.path.join(config.workdir, "scaling.png"), bbox_inches="tight", dpi=100)
  plt.close(fig)


def main(argv: list[str]) -> None:
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
  rows = common.run_or_exit("scaling", run, config_from_flags())
  if workdir.is_primary():
    print(open(os.path.join(FLAGS.workdir, workdir.RESULTS_MD)).read())
    if jax.devices()[0].platform == "cpu" and jax.device_count() > 1:
      print(SIMULATED_NOTE)
  logging.info("%d measurements", len(rows))
