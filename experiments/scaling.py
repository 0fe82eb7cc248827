"""Measure training throughput across device counts, batch sizes, model sizes and placements.

For each placement (none | pmap | sharded), device count (1, 2, 4, ... up to what is
there), model size (model_sizes: hidden widths of an MLP VAE), per-device batch size
and mode (strong: a fixed global batch, per_device_batch x the largest device count;
weak: per_device_batch x devices), it times `repeats` fused chunks of `steps` VAE train
steps after a compiling one, and reports examples/s, steps/s, compile seconds and
parallel efficiency (throughput over devices x the same placement's 1-device
throughput). Writes metrics.jsonl (one line per measurement; a rerun in the same
workdir measures only what is missing), results.md / results.json and scaling.png.
Simulated CPU devices (--host_devices) share the same cores: there the figures test the
code path, not speed. Config: experiments/configs/scaling.py.
"""

from __future__ import annotations

import dataclasses
import itertools
import os
from typing import Any

from absl import logging
import jax
import jax.numpy as jnp
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import optax  # noqa: E402

from experiments.framework import configuration, runner  # noqa: E402
from experiments.framework.checks import Field, integer, integers, names
from genjax import likelihoods, models  # noqa: E402
from genjax.data import sources  # noqa: E402
from genjax.io import workdir  # noqa: E402
from genjax.losses import elbo  # noqa: E402
from genjax.training import loop, parallel  # noqa: E402
from genjax.training import state as train_state  # noqa: E402
from genjax.training import step as train_step  # noqa: E402

SIMULATED_NOTE = ("Simulated CPU devices (--host_devices) share the same cores: figures "
                  "measured on them test the code path, not speed.")


@dataclasses.dataclass(frozen=True)
class Plan:
  """The config's lists, parsed (device counts defaulting to 1, 2, 4, ... up to all)."""
  placements: tuple[str, ...]
  device_counts: tuple[int, ...]
  per_device_batch: tuple[int, ...]
  model_sizes: tuple[tuple[int, ...], ...]
  modes: tuple[str, ...]


def plan_of(config: Any) -> Plan:
  counts = tuple(config.device_counts) or tuple(
      2 ** i for i in range(int(np.log2(jax.device_count())) + 1))
  return Plan(tuple(configuration.split_names(config.placements)), counts,
              tuple(config.per_device_batch),
              tuple(tuple(int(w) for w in s.split(":"))
                    for s in configuration.split_names(config.model_sizes)),
              tuple(configuration.split_names(config.modes)))


def measure(config: Any, kind: str, devices: int, hidden: tuple[int, ...],
            global_batch: int) -> dict[str, float]:
  """Throughput of the VAE train step placed by ``kind`` on ``devices`` devices."""
  placement = parallel.make_placement(kind, devices)
  parallel.check_batch_size(placement, global_batch)
  model = models.build_vae("mlp", (28, 28, 1), config.latent_dim, hidden, 1)
  likelihood = likelihoods.make_likelihood("bernoulli")
  keys = runner.streams(config.seed, "init", "state", "data")
  params = model.init(keys["init"], jnp.zeros((1, 28, 28, 1)))["params"]
  optimizer = optax.adam(config.learning_rate)
  step = train_step.make_train_step(elbo.make_elbo_loss(model, likelihood), optimizer,
                                    axis_name=placement.axis_name)
  images = sources.synthetic(global_batch * config.steps, 1, seed=config.seed).train_images
  state = train_state.create_train_state(params, optimizer, keys["state"])
  logs = [log for _, log in loop.fit(
      state, step, {"image": images}, batch_size=global_batch, num_epochs=config.repeats + 1,
      data_rng=keys["data"], steps_per_chunk=config.steps,
      placement=placement)]
  steady = float(np.median([log["seconds"] for log in logs[1:]]))
  return {"examples_per_s": global_batch * config.steps / steady,
          "steps_per_s": config.steps / steady, "compile_s": logs[0]["seconds"] - steady}


def _plan(config: Any) -> list[dict]:
  """Every measurement to take, each checked (placement, devices, batch) before any runs."""
  plan = plan_of(config)
  available = jax.device_count()
  too_many = [c for c in plan.device_counts if c > available]
  if too_many:
    raise ValueError(f"config.device_counts={','.join(map(str, too_many))} exceeds the "
                     f"{available} devices here (use --host_devices=N on a CPU)")
  points = []
  for kind, hidden, per_device, mode in itertools.product(
      plan.placements, plan.model_sizes, plan.per_device_batch, plan.modes):
    for devices in (1,) if kind == "none" else plan.device_counts:
      global_batch = per_device * (devices if mode == "weak" else max(plan.device_counts))
      parallel.check_batch_size(parallel.make_placement(kind, devices), global_batch)
      points.append({"placement": kind, "devices": devices,
                     "model": ":".join(map(str, hidden)), "per_device_batch": per_device,
                     "mode": mode, "global_batch": global_batch})
  return points


def _model_sizes(v) -> str | None:
  """Comma-separated widths (``W`` or ``W1:W2``)."""
  items = configuration.split_names(v) if isinstance(v, str) else []
  if not items or not all(w.isdigit() and int(w) > 0 for s in items for w in s.split(":")):
    return "expected comma-separated widths, e.g. 256,1024 or 512:512"


# The fields only this experiment reads (the shared ones: experiments/framework/configuration.py).
FIELDS = {
    "placements": Field("Placements to measure (comma-separated).",
                        names(parallel.PLACEMENTS)),
    "device_counts": Field("Device counts (empty: 1, 2, 4, ... up to all).",
                           integers(1, allow_empty=True)),
    "per_device_batch": Field("Per-device batch sizes.", integers(1)),
    "model_sizes": Field("Hidden widths of the MLP VAEs measured, comma-separated ('W' for one "
                         "hidden layer each way, 'W1:W2' for two), e.g. 256,1024 or 512:512.",
                         _model_sizes),
    "modes": Field("strong: fixed global batch; weak: fixed per-device batch.",
                   names(("strong", "weak"))),
    "steps": Field("Train steps per timed chunk.", integer(1)),
    "repeats": Field("Timed chunks after the compiling one.", integer(1)),
}


def run(config: Any) -> list[dict]:
  """Measures every point of the plan (reusing those a previous invocation measured)."""
  plan = _plan(config)
  workdir.check_or_write_config(config.workdir, configuration.as_dict(config),
                                runner.RESUMABLE)
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


def _write(config: Any, rows: list[dict]) -> None:
  if not workdir.is_primary():
    return
  device = jax.devices()[0]
  simulated = device.platform == "cpu" and jax.device_count() > 1
  meta = {"device": device.device_kind, "platform": device.platform,
          "num_devices": jax.device_count(), "num_processes": jax.process_count(),
          "simulated_devices": simulated}
  workdir.write_json(os.path.join(config.workdir, workdir.RESULTS_JSON), {**meta, "rows": rows})
  cols = ("placement", "mode", "model", "per_device_batch", "devices", "global_batch",
          "examples_per_s", "steps_per_s", "compile_s", "efficiency")
  lines = [f"# Scaling on {jax.device_count()} x {device.device_kind}", "",
           "| " + " | ".join(cols) + " |", "|---" * len(cols) + "|"]
  for r in rows:
    lines.append("| " + " | ".join(runner.format_rate(r[c], ".3g") if isinstance(r[c], float)
                                   else str(r[c]) for c in cols) + " |")
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


def report(rows: list[dict], config: Any) -> str:
  with open(os.path.join(config.workdir, workdir.RESULTS_MD)) as f:
    return f.read()
