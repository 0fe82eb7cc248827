"""Learning with few labels: from scratch, pre-trained encoders (AE / DAE / VAE), and M2.

For each N in --labels_per_class and each of --seeds seeds (a seed draws its own balanced
labelled subset of N per class and its own initialisations), on the same labels:
  scratch:        a classifier (the encoder architecture plus a linear head) trained on
                  the labelled images alone;
  ae/dae/vae:     that encoder pre-trained on every training image without labels, as an
                  autoencoder, denoising autoencoder (--corruption, --noise_level) or VAE,
                  then fine-tuned with the head (<m>_finetune) or frozen under a trained
                  linear head (<m>_probe);
  m2:             the M2 model of Kingma et al. 2014 (labels as a partially observed
                  latent, cross-entropy weighted by --alpha), trained on all images.
Test error is the share of misclassified test images. Writes results.json (keys
n<N>/<method>_error and n<N>/<method>_error_std: mean and std over seeds), results.md
(beside the errors the M2 paper reports), pretrain/<m>/ and m2/n<N>/seed<s>/ (checkpoints
and metrics), finetune/ (one result per run; a rerun reuses them).
"""

from __future__ import annotations

import dataclasses
import json
import os
import time

from absl import app, flags, logging
import jax
import jax.numpy as jnp
import numpy as np
import optax

from experiments import common
from genjax import data, models, objectives, parallel, train, workdir

METHODS = ("scratch", "ae", "dae", "vae", "m2")
PRETRAINED = ("ae", "dae", "vae")
# Kingma et al. 2014, Table 1: M2's MNIST test error (%) with 100 and 1000 labels.
PAPER_M2_ERROR = {10: "11.97 ± 1.71", 100: "3.60 ± 0.56"}

flags.DEFINE_list("labels_per_class", ["10", "100"], "Labelled training images per class "
                  "(one study each; 10 per class = 100 labels on MNIST).")
flags.DEFINE_list("methods", list(METHODS), "Methods to compare: " + ", ".join(METHODS) + ".")
flags.DEFINE_integer("pretrain_epochs", 0, "Epochs of unsupervised pre-training (0: --epochs).",
                     lower_bound=0)
flags.DEFINE_integer("finetune_steps", 2000, "Steps of supervised training on the labelled "
                     "images (scratch, fine-tuning and probes).", lower_bound=1)
flags.DEFINE_integer("finetune_batch", 100, "Batch size of supervised training.", lower_bound=1)
flags.DEFINE_float("finetune_learning_rate", 1e-3, "Adam learning rate of supervised training.",
                   lower_bound=0.0)
flags.DEFINE_integer("m2_epochs", 0, "Epochs of M2 training over all images (0: --epochs).",
                     lower_bound=0)
flags.DEFINE_float("alpha", 0.0, "Weight of M2's labelled cross-entropy (0: 0.1 N / N_labelled, "
                   "Kingma et al.'s 0.1 N for per-example means).", lower_bound=0.0)
flags.register_validator("labels_per_class",
                         lambda v: bool(v) and all(s.isdigit() and int(s) > 0 for s in v),
                         message="must be comma-separated positive integers, e.g. 10,100")
flags.register_validator("methods", lambda v: bool(v) and set(v) <= set(METHODS),
                         message=f"must be comma-separated names from {', '.join(METHODS)}")
FLAGS = flags.FLAGS


@dataclasses.dataclass(frozen=True)
class Config(common.ModelConfig):
  """Every flag of the run, resolved once (defaults live on the flags)."""
  reconstruction: str
  corruption: str
  noise_level: float
  seeds: int
  labels_per_class: tuple[int, ...]
  methods: tuple[str, ...]
  pretrain_epochs: int
  finetune_steps: int
  finetune_batch: int
  finetune_learning_rate: float
  m2_epochs: int
  alpha: float


def config_from_flags() -> Config:
  return common.config_from_flags(
      Config, labels_per_class=tuple(int(n) for n in FLAGS.labels_per_class),
      methods=tuple(m for m in METHODS if m in FLAGS.methods))


@dataclasses.dataclass(frozen=True)
class Context:
  """What every method shares."""
  config: Config
  dataset: data.Dataset
  placement: parallel.Placement
  preprocess: train.Preprocess
  test_batches: tuple
  image_shape: tuple[int, ...]


def run(config: Config) -> dict:
  """Pre-trains, then trains and tests every method for every N and seed."""
  wall_start = time.perf_counter()
  data.check_corruption(config.corruption, config.noise_level)

  def check(dataset: data.Dataset) -> None:   # refuse an impossible N before any training
    for n in config.labels_per_class:
      data.labelled_subset(dataset.train_labels, n, config.seed)
    devices = parallel.make_placement(config.parallel).num_devices
    if config.finetune_batch % devices:
      raise ValueError(f"--finetune_batch={config.finetune_batch} must divide by the {devices} "
                       f"devices of --parallel={config.parallel}")

  dataset, placement = common.prepare_run(config, needs_labels=True, check=check)
  ctx = Context(config, dataset, placement, common.make_preprocess(config.preprocess),
                train.pad_batches({"image": dataset.test_images, "label": dataset.test_labels},
                                  min(config.eval_batch_size, len(dataset.test_images))),
                dataset.train_images.shape[1:])
  encoders = {m: _pretrain(ctx, m) for m in PRETRAINED if m in config.methods}
  errors = {}   # (N, method key) -> [error per seed]
  for n in config.labels_per_class:
    for s in range(config.seeds):
      labelled = data.labelled_subset(dataset.train_labels, n, config.seed + s)
      for key, error in _supervised(ctx, encoders, n, s, labelled).items():
        errors.setdefault((n, key), []).append(error)
      if "m2" in config.methods:
        errors.setdefault((n, "m2"), []).append(_train_m2(ctx, n, s, labelled))
  results = {}
  for (n, key), values in errors.items():
    results[f"n{n}/{key}_error"], results[f"n{n}/{key}_error_std"] = common.mean_and_std(values)
  results.update(seeds=config.seeds, dataset=config.dataset, data_source=dataset.source,
                 wall_s=time.perf_counter() - wall_start, device=jax.devices()[0].device_kind)
  _write_results(config, results, errors)
  return results


def _pretrain(ctx: Context, method: str):
  """Pre-trains ``method`` (ae | dae | vae) on every training image, all seeds as vmapped
  replicas; returns the encoders' parameters stacked over seeds."""
  config = ctx.config
  if method == "vae":
    model = models.build_vae(config.model, ctx.image_shape, config.latent_dim, config.hidden,
                             ctx.image_shape[-1], config.activation)
    loss = objectives.make_elbo_loss(model, objectives.make_likelihood("bernoulli"))
  else:
    model = models.build_autoencoder(config.model, ctx.image_shape, config.latent_dim,
                                     config.hidden, config.activation)
    corruption = config.corruption if method == "dae" else "none"
    loss = objectives.make_autoencoder_loss(model, config.reconstruction, corruption,
                                            config.noise_level)
  optimizer = optax.adam(config.learning_rate)
  keys = jax.vmap(lambda s: jax.random.split(jax.random.fold_in(
      jax.random.PRNGKey(config.seed), s), 2))(jnp.arange(config.seeds) + 100)
  x0 = jnp.zeros((1, *ctx.image_shape))
  state = jax.vmap(lambda k: train.create_train_state(
      model.init(k[0], x0)["params"], optimizer, k[1]))(keys)
  step = jax.vmap(train.make_train_step(loss, optimizer, ctx.placement.axis_name),
                  in_axes=(0, None))
  state = common.fit_and_checkpoint(
      config, state, step, {"image": ctx.dataset.train_images},
      run_dir=os.path.join(config.workdir, "pretrain", method),
      data_rng=jax.random.PRNGKey(config.seed + 200), preprocess=ctx.preprocess,
      placement=ctx.placement, epochs=config.pretrain_epochs or config.epochs,
      name=f"pretrain {method}")
  return state.params["encoder"]


def _test_error(ctx: Context, model, params, rng) -> float:
  """Share of misclassified test images (test set preprocessed with a fixed key)."""
  logits_of = (lambda p, x: model.apply({"params": p}, x, method=model.classify)
               if isinstance(model, models.M2) else model.apply({"params": p}, x))
  evaluate = train.make_eval_fn(
      lambda p, b, r: {"error": (jnp.argmax(logits_of(p, b["image"]), -1)
                                 != b["label"]).astype(jnp.float32)}, ctx.preprocess)
  return float(evaluate(params, *ctx.test_batches, rng)["error"])


def _supervised(ctx: Context, encoders: dict, n: int, s: int,
                labelled: np.ndarray) -> dict[str, float]:
  """Test errors of scratch and of every pre-trained encoder, fine-tuned and probed."""
  runs = [("scratch", None)] if "scratch" in ctx.config.methods else []
  runs += [(f"{m}_{mode}", m) for m in encoders for mode in ("finetune", "probe")]
  return {key: _cached(ctx, f"finetune/n{n}/seed{s}/{key}.json",
                       lambda key=key, m=m: _classify(ctx, encoders, m, key, s, labelled))
          for key, m in runs}


def _cached(ctx: Context, name: str, compute) -> float:
  """A per-run result file: computed once, reused by a rerun in the same workdir."""
  path = os.path.join(ctx.config.workdir, name)
  if os.path.exists(path):
    with open(path) as f:
      return json.load(f)["test_error"]
  error = compute()
  if workdir.is_primary():
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
      json.dump({"test_error": error}, f)
  return error


def _classify(ctx: Context, encoders: dict, pretrained: str | None, key: str, s: int,
              labelled: np.ndarray) -> float:
  """Trains a classifier on the labelled images (its encoder from ``pretrained``)."""
  config = ctx.config
  model = models.build_classifier(config.model, config.latent_dim, config.hidden,
                                  int(ctx.dataset.train_labels.max()) + 1, config.activation,
                                  stochastic=pretrained == "vae")
  init_rng, state_rng, data_rng, eval_rng = jax.random.split(
      jax.random.fold_in(jax.random.PRNGKey(config.seed + 300), s), 4)
  params = model.init(init_rng, jnp.zeros((1, *ctx.image_shape)))["params"]
  optimizer = optax.adam(config.finetune_learning_rate)
  if pretrained is not None:
    params = {**params, "encoder": jax.tree.map(lambda a: a[s], encoders[pretrained])}
    if key.endswith("_probe"):   # frozen encoder: only the linear head learns
      optimizer = train.freeze(optimizer, params, frozen=("encoder",))
  steps_per_epoch = train.largest_divisor_at_most(config.finetune_steps, 100)
  labelled_data = data.repeat_to({"image": ctx.dataset.train_images[labelled],
                                  "label": ctx.dataset.train_labels[labelled]},
                                 steps_per_epoch * config.finetune_batch)
  state = train.create_train_state(params, optimizer, state_rng)
  step = train.make_train_step(objectives.make_classifier_loss(model), optimizer,
                               ctx.placement.axis_name)
  for state, log in train.fit(state, step, labelled_data, batch_size=config.finetune_batch,
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
  model = models.build_m2(config.model, ctx.image_shape, config.latent_dim, config.hidden,
                          ctx.image_shape[-1], num_classes, config.activation)
  num_train = len(ctx.dataset.train_images)
  alpha = config.alpha or 0.1 * num_train / len(labelled)
  loss = objectives.make_m2_loss(model, objectives.make_likelihood("bernoulli"), alpha)
  init_rng, state_rng, data_rng, eval_rng = jax.random.split(
      jax.random.fold_in(jax.random.PRNGKey(config.seed + 400), s), 4)
  optimizer = optax.adam(config.learning_rate)
  state = train.create_train_state(
      model.init(init_rng, jnp.zeros((1, *ctx.image_shape)))["params"], optimizer, state_rng)
  paired = {"image": ctx.dataset.train_images,
            **data.repeat_to({"labelled_image": ctx.dataset.train_images[labelled],
                              "label": ctx.dataset.train_labels[labelled]}, num_train)}
  state = common.fit_and_checkpoint(
      config, state, train.make_train_step(loss, optimizer, ctx.placement.axis_name), paired,
      run_dir=os.path.join(config.workdir, "m2", f"n{n}", f"seed{s}"), data_rng=data_rng,
      preprocess=common.make_preprocess(config.preprocess, ("image", "labelled_image")),
      placement=ctx.placement, epochs=config.m2_epochs or config.epochs,
      evaluate=lambda p: {"test_error": _test_error(ctx, model, p, eval_rng)},
      name=f"m2 n{n} seed{s}")
  return _test_error(ctx, model, state.params, eval_rng)


def _write_results(config: Config, results: dict, errors: dict) -> None:
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
      notes=f"Each seed draws its own labelled subset. Pre-training: "
            f"{config.pretrain_epochs or config.epochs} epochs on all training images "
            f"(DAE: {config.corruption} corruption, level {config.noise_level}); supervised "
            f"training: {config.finetune_steps} steps at batch {config.finetune_batch}; M2: "
            f"{config.m2_epochs or config.epochs} epochs (the paper trains far longer). "
            "*_finetune trains encoder and head; *_probe freezes the pre-trained encoder "
            "and trains a linear head on its code (a VAE's posterior mean).")


def main(argv: list[str]) -> None:
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
  common.run_or_exit("semi_supervised", run, config_from_flags())
  if workdir.is_primary():
    print(open(os.path.join(FLAGS.workdir, workdir.RESULTS_MD)).read())
