"""Learning with few labels: from scratch, pre-trained encoders (AE / DAE / VAE), and M2.

For each N in labels_per_class and each of the config's seeds (a seed draws its own balanced
labelled subset of N per class and its own initialisations), on the same labels:
  scratch:        a classifier (the encoder architecture plus a linear head) trained on
                  the labelled images alone;
  ae/dae/vae:     that encoder pre-trained on every training image without labels, as an
                  autoencoder, denoising autoencoder (corruption, noise_level) or VAE,
                  then fine-tuned with the head (<m>_finetune) or frozen under a trained
                  linear head (<m>_probe);
  m2:             the M2 model of Kingma et al. 2014 (labels as a partially observed
                  latent, cross-entropy weighted by alpha), trained on all images.
Test error is the share of misclassified test images. Writes results.json (keys
n<N>/<method>_error and n<N>/<method>_error_std: mean and std over seeds), results.md
(beside the errors the M2 paper reports), pretrain/<m>/ and m2/n<N>/seed<s>/ (checkpoints
and metrics), finetune/ (one result per run; a rerun reuses them). Config:
experiments/configs/semi_supervised.py (the README's table).
"""

from __future__ import annotations

import dataclasses
import json
import os
import time
from typing import Any, Callable

from absl import logging
import jax
import jax.numpy as jnp
import numpy as np
import optax

from experiments.framework import configuration, runner
from experiments.framework.checks import Field, integer, integers, names, number
from genjax import corruptions, likelihoods, models
from genjax.data import sources, subsets
from genjax.io import plotting, workdir
from genjax.metrics import curves
from genjax.losses import autoencoder, elbo, semi_supervised
from genjax.models import protocol
from genjax.models import registry as model_registry
from genjax.training import loop, parallel
from genjax.training import state as train_state
from genjax.training import step as train_step

METHODS = ("scratch", "ae", "dae", "vae", "m2")
PRETRAINED = ("ae", "dae", "vae")
# Kingma et al. 2014, Table 1: M2's MNIST test error (%) with 100 and 1000 labels.
PAPER_M2_ERROR = {10: "11.97 ± 1.71", 100: "3.60 ± 0.56"}



def _methods(config: Any) -> tuple[str, ...]:
  """config.methods (comma-separated) in the canonical order of METHODS."""
  chosen = configuration.split_names(config.methods)
  return tuple(m for m in METHODS if m in chosen)


def _uses(*methods: str) -> Callable[[Any], bool]:
  return lambda c: any(m in _methods(c) for m in methods)


# Fields a method reads, so a setting for a method that is not run is refused.
# The fields only this experiment reads (the shared ones: experiments/framework/configuration.py).
FIELDS = {
    "labels_per_class": Field("Labelled training images per class (one study each; 10 per "
                              "class = 100 labels on MNIST).", integers(1)),
    "methods": Field("Methods to compare (comma-separated): scratch, ae, dae, vae, m2.",
                     names(("scratch", "ae", "dae", "vae", "m2"))),
    "pretrain_epochs": Field("Epochs of unsupervised pre-training (0: epochs).", integer(0)),
    "finetune_steps": Field("Steps of supervised training on the labelled images (scratch, "
                            "fine-tuning and probes).", integer(1)),
    "finetune_batch": Field("Batch size of supervised training.", integer(1)),
    "finetune_learning_rate": Field("Adam learning rate of supervised training.",
                                    number(0.0, strict=True)),
    "m2_epochs": Field("Epochs of M2 training over all images (0: epochs).", integer(0)),
    "alpha": Field("Weight of M2's labelled cross-entropy (0: 0.1 N / N_labelled, Kingma et "
                   "al.'s 0.1 N for per-example means).", number(0.0)),
}


READ_IF = {
    "reconstruction": configuration.ReadIf(_uses("ae", "dae"), "methods has ae or dae"),
    "corruption": configuration.ReadIf(_uses("dae"), "methods has dae"),
    "noise_level": configuration.ReadIf(_uses("dae"), "methods has dae"),
    "pretrain_epochs": configuration.ReadIf(_uses(*PRETRAINED), "methods has ae, dae or vae"),
    "m2_epochs": configuration.ReadIf(_uses("m2"), "methods has m2"),
    "alpha": configuration.ReadIf(_uses("m2"), "methods has m2"),
    "eval_every": configuration.ReadIf(_uses("m2"), "methods has m2"),
    "learning_rate": configuration.ReadIf(_uses(*PRETRAINED, "m2"),
                                          "methods has ae, dae, vae or m2"),
    "checkpoint_every": configuration.ReadIf(_uses(*PRETRAINED, "m2"),
                                             "methods has ae, dae, vae or m2"),
    "checkpoint_every_steps": configuration.ReadIf(_uses(*PRETRAINED, "m2"),
                                                   "methods has ae, dae, vae or m2"),
    "checkpoint_every_minutes": configuration.ReadIf(_uses(*PRETRAINED, "m2"),
                                                     "methods has ae, dae, vae or m2"),
    "steps_per_chunk": configuration.ReadIf(_uses(*PRETRAINED, "m2"),
                                            "methods has ae, dae, vae or m2"),
    "finetune_steps": configuration.ReadIf(_uses("scratch", *PRETRAINED),
                                           "methods has scratch, ae, dae or vae"),
    "finetune_batch": configuration.ReadIf(_uses("scratch", *PRETRAINED),
                                           "methods has scratch, ae, dae or vae"),
    "finetune_learning_rate": configuration.ReadIf(_uses("scratch", *PRETRAINED),
                                                   "methods has scratch, ae, dae or vae"),
    "epochs": configuration.ReadIf(
        lambda c: (_uses(*PRETRAINED)(c) and not c.pretrain_epochs)
        or (_uses("m2")(c) and not c.m2_epochs),
        "pretrain_epochs or m2_epochs of a method run is 0"),
}


def streams(seed: int) -> dict[str, Any]:
  """The run's named PRNG streams (those taking ``s`` are per seed replica s). Their
  derivations from the seed are the ones the README's table was measured with."""
  def four(offset: int) -> Callable[[int], dict[str, jax.Array]]:
    names = ("init", "state", "data", "eval")
    return lambda s: dict(zip(names, jax.random.split(
        jax.random.fold_in(jax.random.PRNGKey(seed + offset), s), 4)))
  return {
      # [seeds, 2] (init, state) keys of the vmapped pre-training replicas.
      "pretrain": lambda seeds: jax.vmap(lambda s: jax.random.split(jax.random.fold_in(
          jax.random.PRNGKey(seed), s), 2))(jnp.arange(seeds) + 100),
      "pretrain_data": jax.random.PRNGKey(seed + 200),
      "classifier": four(300), "m2": four(400),
      "labels": lambda s: seed + s,          # NumPy seed of replica s's labelled subset
  }


@dataclasses.dataclass(frozen=True)
class Context:
  """What every method shares."""
  config: Any
  dataset: sources.Dataset
  placement: parallel.Placement
  preprocess: train_state.Preprocess
  test_batches: tuple
  image_shape: tuple[int, ...]
  finetune_optimizer: optax.GradientTransformation | None   # scratch, fine-tuning, probes


def run(config: Any) -> dict:
  """Pre-trains, then trains and tests every method for every N and seed."""
  wall_start = time.perf_counter()
  methods = _methods(config)
  if "dae" in methods:
    corruptions.check_corruption(config.corruption, config.noise_level)

  def check(dataset: sources.Dataset) -> None:   # refuse an impossible N before any training
    for n in config.labels_per_class:
      subsets.labelled_subset(dataset.train_labels, n, streams(config.seed)["labels"](0))
    devices = parallel.make_placement(config.parallel).num_devices
    if _uses("scratch", *PRETRAINED)(config) and config.finetune_batch % devices:
      raise ValueError(f"config.finetune_batch={config.finetune_batch} must divide by the "
                       f"{devices} devices of parallel={config.parallel}")

  dataset, placement = runner.prepare(config, needs_labels=True, check=check)
  ctx = Context(config, dataset, placement, runner.make_preprocess(config.preprocess),
                loop.pad_batches({"image": dataset.test_images, "label": dataset.test_labels},
                                 min(config.eval_batch_size, len(dataset.test_images))),
                dataset.train_images.shape[1:],
                optax.adam(config.finetune_learning_rate)
                if _uses("scratch", *PRETRAINED)(config) else None)
  encoders = {m: _pretrain(ctx, m) for m in PRETRAINED if m in methods}
  errors = {}   # (N, method key) -> [error per seed]
  for n in config.labels_per_class:
    for s in range(config.seeds):
      labelled = subsets.labelled_subset(dataset.train_labels, n,
                                         streams(config.seed)["labels"](s))
      for key, error in _supervised(ctx, encoders, n, s, labelled).items():
        errors.setdefault((n, key), []).append(error)
      if "m2" in methods:
        errors.setdefault((n, "m2"), []).append(_train_m2(ctx, n, s, labelled))
  results = {}
  for (n, key), values in errors.items():
    results[f"n{n}/{key}_error"], results[f"n{n}/{key}_error_std"] = runner.mean_and_std(values)
  results.update(seeds=config.seeds, dataset=config.dataset, data_source=dataset.source,
                 wall_s=time.perf_counter() - wall_start, device=jax.devices()[0].device_kind)
  if "m2" in methods:
    for n, (epochs, mean, _) in m2_curves(config).items():
      if n in PAPER_M2_ERROR and len(epochs) >= 2:
        # Where the curve's log-linear tail would reach the paper's error (extrapolated).
        results[f"n{n}/m2_epochs_to_paper"] = curves.passes_to_reach(
            epochs, mean, float(PAPER_M2_ERROR[n].split()[0]))
    if workdir.is_primary():
      _save_m2_curves(config)
  _write_results(config, results, errors)
  return results


def _pretrain(ctx: Context, method: str):
  """Pre-trains ``method`` (ae | dae | vae) on every training image, all seeds as vmapped
  replicas; returns the encoders' parameters stacked over seeds."""
  config = ctx.config
  if method == "vae":
    model = models.build_vae(config.model, ctx.image_shape, config.latent_dim, config.hidden,
                             ctx.image_shape[-1], config.activation)
    loss = elbo.make_elbo_loss(model, likelihoods.make_likelihood("bernoulli"))
  else:
    model = models.build_autoencoder(config.model, ctx.image_shape, config.latent_dim,
                                     config.hidden, config.activation)
    corruption = config.corruption if method == "dae" else "none"
    loss = autoencoder.make_autoencoder_loss(model, config.reconstruction, corruption,
                                             config.noise_level)
  optimizer = optax.adam(config.learning_rate)
  keys = streams(config.seed)["pretrain"](config.seeds)
  x0 = jnp.zeros((1, *ctx.image_shape))
  state = jax.vmap(lambda k: train_state.create_train_state(
      model.init(k[0], x0)["params"], optimizer, k[1]))(keys)
  step = jax.vmap(train_step.make_train_step(loss, optimizer, ctx.placement.axis_name),
                  in_axes=(0, None))
  state = runner.train(
      config, state, step, {"image": ctx.dataset.train_images},
      run_dir=os.path.join(config.workdir, "pretrain", method),
      data_rng=streams(config.seed)["pretrain_data"], preprocess=ctx.preprocess,
      placement=ctx.placement, epochs=config.pretrain_epochs or config.epochs,
      name=f"pretrain {method}")
  (encoder,) = model.encoder_params   # the model declares its inference network
  return state.params[encoder]


def _test_error(ctx: Context, model, params, rng) -> float:
  """Share of misclassified test images (test set preprocessed with a fixed key)."""
  logits_of = (lambda p, x: model.apply({"params": p}, x, method=model.classify)
               if hasattr(model, "classify") else model.apply({"params": p}, x))
  evaluate = loop.make_eval_fn(
      lambda p, b, r: {"error": (jnp.argmax(logits_of(p, b["image"]), -1)
                                 != b["label"]).astype(jnp.float32)}, ctx.preprocess)
  return float(evaluate(params, *ctx.test_batches, rng)["error"])


def _supervised(ctx: Context, encoders: dict, n: int, s: int,
                labelled: np.ndarray) -> dict[str, float]:
  """Test errors of scratch and of every pre-trained encoder, fine-tuned and probed."""
  runs = [("scratch", None)] if "scratch" in _methods(ctx.config) else []
  runs += [(f"{m}_{mode}", m) for m in encoders for mode in ("finetune", "probe")]
  return {key: _cached(ctx, f"finetune/n{n}/seed{s}/{key}.json",
                       lambda key=key, m=m: _classify(ctx, encoders, m, key, s, labelled))
          for key, m in runs}


def _cached(ctx: Context, name: str, compute) -> float:
  """A per-run result file: computed once, reused by a rerun in the same workdir."""
  path = os.path.join(ctx.config.workdir, name)
  if os.path.exists(path):
    with open(path) as f:
      stored = json.load(f)["test_error"]
    return float("nan") if stored is None else stored   # null: it was not finite
  error = compute()
  if workdir.is_primary():
    os.makedirs(os.path.dirname(path), exist_ok=True)
    workdir.write_json(path, {"test_error": error}, indent=None)
  return error


def _classify(ctx: Context, encoders: dict, pretrained: str | None, key: str, s: int,
              labelled: np.ndarray) -> float:
  """Trains a classifier on the labelled images (its encoder from ``pretrained``)."""
  config = ctx.config
  model = models.build_classifier(config.model, config.latent_dim, config.hidden,
                                  int(ctx.dataset.train_labels.max()) + 1, config.activation,
                                  stochastic=pretrained == "vae")
  init_rng, state_rng, data_rng, eval_rng = streams(config.seed)["classifier"](s).values()
  params = model.init(init_rng, jnp.zeros((1, *ctx.image_shape)))["params"]
  optimizer = ctx.finetune_optimizer
  if pretrained is not None:
    (encoder,) = model.encoder_params
    params = {**params, encoder: jax.tree.map(lambda a: a[s], encoders[pretrained])}
    if key.endswith("_probe"):   # frozen encoder: only the linear head learns
      optimizer = train_state.freeze(optimizer, protocol.encoder_mask(model, params))
  steps_per_epoch = loop.largest_divisor_at_most(config.finetune_steps, 100)
  labelled_data = subsets.repeat_to({"image": ctx.dataset.train_images[labelled],
                                     "label": ctx.dataset.train_labels[labelled]},
                                    steps_per_epoch * config.finetune_batch)
  state = train_state.create_train_state(params, optimizer, state_rng)
  step = train_step.make_train_step(semi_supervised.make_classifier_loss(model), optimizer,
                                    ctx.placement.axis_name)
  for state, log in loop.fit(state, step, labelled_data, batch_size=config.finetune_batch,
                             num_epochs=config.finetune_steps // steps_per_epoch,
                             data_rng=data_rng, preprocess=ctx.preprocess,
                             steps_per_chunk=steps_per_epoch, placement=ctx.placement):
    pass
  error = _test_error(ctx, model, state.params, eval_rng)
  logging.info("%s seed %d, %d labels: train loss %.3f, test error %.4f", key, s,
               len(labelled), log["loss"], error)
  return error


def _train_m2(ctx: Context, n: int, s: int, labelled: np.ndarray) -> float:
  """Trains M2 on every training image, each paired with a labelled one; its test error."""
  config = ctx.config
  num_classes = int(ctx.dataset.train_labels.max()) + 1
  model = model_registry.family("m2").from_config(config, ctx.image_shape,
                                                  num_classes=num_classes)
  num_train = len(ctx.dataset.train_images)
  alpha = config.alpha or 0.1 * num_train / len(labelled)
  loss = semi_supervised.make_m2_loss(model, likelihoods.make_likelihood("bernoulli"), alpha)
  keys = streams(config.seed)["m2"](s)
  paired = {"image": ctx.dataset.train_images,
            **subsets.repeat_to({"labelled_image": ctx.dataset.train_images[labelled],
                                 "label": ctx.dataset.train_labels[labelled]}, num_train)}
  eval_rng = keys["eval"]
  state = runner.fit(
      config, model, loss, paired, (jnp.zeros((1, *ctx.image_shape)),), keys,
      run_dir=os.path.join(config.workdir, "m2", f"n{n}", f"seed{s}"),
      preprocess=runner.make_preprocess(config.preprocess, ("image", "labelled_image")),
      placement=ctx.placement, epochs=config.m2_epochs or config.epochs,
      evaluate=lambda p: {"test_error": _test_error(ctx, model, p, eval_rng)},
      name=f"m2 n{n} seed{s}")
  return _test_error(ctx, model, state.params, eval_rng)


def m2_curves(config: Any) -> dict[int, tuple[list[float], list[float], list[float]]]:
  """M2's learning curves from its runs' metrics: labels per class N -> (epochs, test error
  in % averaged over seeds, its standard error over seeds), at the epochs every seed
  logged."""
  out = {}
  for n in config.labels_per_class:
    per_seed = []
    for s in range(config.seeds):
      records = workdir.read_metrics(os.path.join(config.workdir, "m2", f"n{n}", f"seed{s}"))
      per_seed.append({r["epoch"]: 100 * r["test_error"] for r in records if "test_error" in r})
    epochs = sorted(set.intersection(*(set(c) for c in per_seed)))
    errors = np.array([[c[e] for e in epochs] for c in per_seed])
    se = (errors.std(0, ddof=1) / np.sqrt(len(per_seed)) if len(per_seed) > 1
          else np.zeros(len(epochs)))
    out[n] = (epochs, errors.mean(0).tolist(), se.tolist())
  return out


def _save_m2_curves(config: Any) -> None:
  """m2_curves.png: M2's test error against epochs (log axis) per number of labels, mean ±
  standard error over seeds, with the paper's error as a dashed line."""
  curves = {f"{10 * n} labels": c for n, c in m2_curves(config).items()}
  paper = {f"{10 * n} labels": float(PAPER_M2_ERROR[n].split()[0])
           for n in config.labels_per_class if n in PAPER_M2_ERROR}
  plotting.save_learning_curves(os.path.join(config.workdir, "m2_curves.png"), curves, paper,
                                xlabel="epochs (passes over the unlabelled images; log)",
                                ylabel="M2 test error (%)",
                                title=f"mean ± s.e. over {config.seeds} seeds; dashed: "
                                      "Kingma et al. 2014")


def _write_results(config: Any, results: dict, errors: dict) -> None:
  keys = list(dict.fromkeys(key for _, key in errors))
  ns = config.labels_per_class
  table = ["| method | " + " | ".join(f"{n} per class ({10 * n} labels)" for n in ns) + " |",
           "|---" * (len(ns) + 1) + "|"]
  for key in keys:
    table.append(f"| {key} | " + " | ".join(
        f"{100 * results[f'n{n}/{key}_error']:.2f} ± {100 * results[f'n{n}/{key}_error_std']:.2f}"
        for n in ns) + " |")
  table.append("| M2, as reported by Kingma et al. 2014 | " + " | ".join(
      PAPER_M2_ERROR.get(n, "—") for n in ns) + " |")
  workdir.write_results(
      config.workdir, results, table=table,
      title=f"Test error (%) with few labels on {config.dataset}, mean ± std over "
            f"{config.seeds} seeds",
      notes=" ".join(_notes(config)))


def _notes(config: Any) -> list[str]:
  """What was run, method by method (only the settings those methods read)."""
  notes = ["Each seed draws its own labelled subset."]
  if _uses(*PRETRAINED)(config):
    dae = (f" (DAE: {config.corruption} corruption, level {config.noise_level})"
           if _uses("dae")(config) else "")
    notes.append(f"Pre-training: {config.pretrain_epochs or config.epochs} epochs on all "
                 f"training images{dae}.")
  if _uses("scratch", *PRETRAINED)(config):
    notes.append(f"Supervised training: {config.finetune_steps} steps at batch "
                 f"{config.finetune_batch}.")
  if _uses("m2")(config):
    notes.append(f"M2: {config.m2_epochs or config.epochs} epochs (the paper trains far "
                 "longer).")
  notes.append("*_finetune trains encoder and head; *_probe freezes the pre-trained encoder "
               "and trains a linear head on its code (a VAE's posterior mean).")
  return notes


def report(results: dict, config: Any) -> str:
  with open(os.path.join(config.workdir, workdir.RESULTS_MD)) as f:
    return f.read()
