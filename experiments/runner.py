"""The one copy of every experiment's scaffolding.

``main`` turns a command line into a validated config (``experiments/configuration.py``),
runs the experiment and prints its report. ``prepare`` loads and checks the data and the
placement and writes ``config.json`` (everything checked at the border, before any work);
``train`` owns resume, the fused fit loop, checkpoints, ``metrics.jsonl`` and the
evaluation cadence; ``run_info`` is the run-info part of every ``results.json``;
``streams`` gives the run's named PRNG streams. An experiment file is what makes a study
different: its model, its loss, its evaluators and its figures.
"""

from __future__ import annotations

import sys
import time
from types import ModuleType
from typing import Any, Callable

from absl import logging
import jax
import numpy as np
import optax

from experiments import configuration
from genjax import distributions, likelihoods, models
from genjax.data import sources, transforms
from genjax.io import workdir
from genjax.metrics import reference_classifier, sample_quality as quality
from genjax.training import checkpoint, loop, parallel
from genjax.training import state as train_state
from genjax.training import step as train_step

# Fields that may change between a run and its resumption (they do not change the math).
RESUMABLE = frozenset({"epochs", "workdir", "data_dir", "eval_every", "checkpoint_every",
                       "steps_per_chunk", "download", "parallel"})


def main(name: str, module: ModuleType, argv: list[str]) -> None:
  """Parses ``argv`` into the experiment's config, runs it, prints its report.

  A configuration or data error (ValueError, FileNotFoundError: raised at the border,
  before anything is written) ends the run with one line on stderr; other exceptions keep
  their traceback.
  """
  try:
    invocation = configuration.parse(name, argv, getattr(module, "READ_IF", None))
    results = module.run(invocation.config)
  except (ValueError, FileNotFoundError) as e:
    sys.exit(f"{name}: error: {e}")
  if isinstance(results, dict) and "params_digest" in results:
    print(f"process {jax.process_index()}: params_digest={results['params_digest']!r}")
  if workdir.is_primary() and hasattr(module, "report"):
    print(module.report(results, invocation.config))


def streams(seed: int, *names: str) -> dict[str, jax.Array]:
  """The run's named PRNG streams: ``jax.random.split(PRNGKey(seed), len(names))`` by name.

  Each experiment names its streams once, in a fixed order (init, state, data, eval, ...),
  so every key of a run follows from its seed and nothing depends on seed offsets.
  """
  return dict(zip(names, jax.random.split(jax.random.PRNGKey(seed), len(names))))


def make_preprocess(mode: str, image_keys: tuple[str, ...] = ("image",)) -> train_state.Preprocess:
  """The per-batch preprocessing ``mode`` (config.preprocess) as a ``train_state.Preprocess``.

  Applies to each entry of ``image_keys`` (e.g. M2's ``labelled_image`` too), the i-th
  with key ``fold_in(rng, i)`` (the first with ``rng`` itself), so they draw independently.
  """
  def preprocess(batch, rng):
    out = dict(batch)
    for i, key in enumerate(image_keys):
      key_rng = rng if i == 0 else distributions.fold_in_keys(rng, i)
      out[key] = transforms.preprocess(batch[key], key_rng, mode)
    return out
  return preprocess


def likelihood(config: Any) -> likelihoods.Likelihood:
  """p(x|z) of ``config.likelihood`` (``config.gaussian_std`` is read only when fixed)."""
  if config.likelihood == "gaussian_fixed":
    return likelihoods.make_likelihood(config.likelihood, config.gaussian_std)
  return likelihoods.make_likelihood(config.likelihood)


def build_vae(config: Any, image_shape: tuple[int, ...],
              likelihood: likelihoods.Likelihood) -> Any:
  """The latent-variable model of ``config.model`` / ``config.prior`` (``pseudo_inputs``
  read only for the VampPrior) whose decoder parameterizes ``likelihood``."""
  extra = {"num_pseudo_inputs": config.pseudo_inputs} if config.prior == "vamp" else {}
  return models.build_vae(config.model, image_shape, config.latent_dim, config.hidden,
                          image_shape[-1] * likelihood.params_per_channel, config.activation,
                          prior=config.prior, **extra)


def params_digest(params: Any) -> float:
  """Sum of squares of every parameter: a cheap fingerprint to compare runs or processes."""
  return float(sum(jax.numpy.sum(jax.numpy.square(x)) for x in jax.tree.leaves(params)))


def count_params(params: Any) -> int:
  return int(sum(x.size for x in jax.tree.leaves(params)))


def prepare(config: Any, needs_labels: bool = False,
            check: Callable[[sources.Dataset], None] | None = None
            ) -> tuple[sources.Dataset, parallel.Placement]:
  """Loads and prepares ``config.dataset``, places the step, checks the batch (and runs the
  experiment's own ``check`` of the data set), then writes config.json: everything an
  experiment checks at the border, before any work.

  Raises ValueError / FileNotFoundError (one line each) before anything is written.
  """
  image_size = config.image_size if config.dataset == "celeb_a" else None
  dataset = transforms.prepare(sources.load(config.dataset, config.data_dir, config.download,
                                            image_size), config.preprocess)
  logging.info("data: %s from %s, %d train / %d test", dataset.name, dataset.source,
               len(dataset.train_images), len(dataset.test_images))
  if needs_labels and np.any(dataset.train_labels < 0):
    raise ValueError(f"config.dataset={config.dataset} has no labels: use dataset=mnist or "
                     "dataset=fashion_mnist")
  if config.batch_size > len(dataset.train_images):
    raise ValueError(f"config.batch_size={config.batch_size} exceeds the "
                     f"{len(dataset.train_images)} training examples of {config.dataset}")
  placement = parallel.make_placement(config.parallel)
  parallel.check_batch_size(placement, config.batch_size)
  if check is not None:
    check(dataset)
  workdir.check_or_write_config(config.workdir, configuration.as_dict(config), RESUMABLE)
  return dataset, placement


def train(config: Any, state: Any, step: Callable, train_data: dict, *, run_dir: str,
          data_rng: jax.Array, preprocess: train_state.Preprocess, placement: parallel.Placement,
          evaluate: Callable[[Any], dict] | None = None, eval_every: int | None = None,
          epochs: int | None = None, name: str = "") -> Any:
  """Trains (resuming from ``run_dir/checkpoints``) and returns the final state.

  Uses ``config.batch_size``, ``config.steps_per_chunk`` and ``config.checkpoint_every``;
  ``epochs`` defaults to ``config.epochs`` and, when there is an ``evaluate``,
  ``eval_every`` to ``config.eval_every``. Appends every chunk's metrics (and
  ``evaluate(params)`` every ``eval_every`` epochs and at the end) to
  ``run_dir/metrics.jsonl``; checkpoints every ``checkpoint_every`` epochs and at the end.
  """
  epochs = epochs or config.epochs
  if evaluate is not None and eval_every is None:
    eval_every = config.eval_every
  checkpoint_every = config.checkpoint_every
  manager = checkpoint.make_manager(run_dir)
  state, restored = checkpoint.restore_latest(manager, state)
  if restored is not None:
    logging.info("%s: resumed from checkpoint at step %d", name or run_dir, restored)
  writer = workdir.MetricsWriter(run_dir)
  chunks = loop.fit(state, step, train_data, batch_size=config.batch_size, num_epochs=epochs,
                    data_rng=data_rng, preprocess=preprocess,
                    steps_per_chunk=config.steps_per_chunk or None, placement=placement)
  for i, (state, log) in enumerate(chunks):
    writer.write({**log, "includes_compile": int(i == 0)})
    epoch = round(log["epoch"])
    if log["epoch_end"]:
      last = epoch == epochs
      if evaluate is not None and (epoch % eval_every == 0 or last):
        writer.write({"step": log["step"], "epoch": epoch, **evaluate(state.params)})
      if epoch % checkpoint_every == 0 or last:
        checkpoint.save(manager, state, log["step"])
    logging.info("%s epoch %.2f step %d loss %.3f (%.0f ex/s)", name, log["epoch"],
                 log["step"], log["loss"], log["examples_per_s"])
  writer.close()
  return state


def fit(config: Any, model: Any, loss_fn: Callable, train_data: dict,
        example: tuple[jax.Array, ...], keys: dict[str, jax.Array], *, run_dir: str,
        preprocess: train_state.Preprocess, placement: parallel.Placement,
        optimizer: optax.GradientTransformation | None = None,
        evaluate: Callable[[Any], dict] | None = None, epochs: int | None = None,
        name: str = "") -> train_state.TrainState:
  """The usual single-model run: parameters from ``model.init(keys["init"], *example)``,
  Adam at ``config.learning_rate`` (or ``optimizer``), a train state keyed by
  ``keys["state"]``, the step placed by ``placement``, then ``train`` (resuming) with the
  data order of ``keys["data"]``. Returns the final state."""
  params = model.init(keys["init"], *example)["params"]
  optimizer = optimizer or optax.adam(config.learning_rate)
  state = train_state.create_train_state(params, optimizer, keys["state"])
  step = train_step.make_train_step(loss_fn, optimizer, axis_name=placement.axis_name)
  return train(config, state, step, train_data, run_dir=run_dir, data_rng=keys["data"],
               preprocess=preprocess, placement=placement, evaluate=evaluate, epochs=epochs,
               name=name)


def train_seconds(run_dir: str) -> float:
  """Seconds spent in train chunks over all invocations of the run (compiles included)."""
  return sum(r.get("seconds", 0.0) for r in workdir.read_metrics(run_dir))


def steady_examples_per_s(run_dir: str) -> float:
  """Training throughput over all logged chunks that did not include compilation."""
  chunks = [r for r in workdir.read_metrics(run_dir)
            if "examples_per_s" in r and not r.get("includes_compile")]
  seconds = sum(r["seconds"] for r in chunks)
  return (sum(r["examples_per_s"] * r["seconds"] for r in chunks) / seconds if seconds
          else float("nan"))


def run_info(config: Any, state: Any, dataset: sources.Dataset, placement: parallel.Placement,
             wall_start: float) -> dict[str, Any]:
  """The part of ``results.json`` every training experiment shares: budget, throughput,
  time, size, data, devices and a parameter fingerprint."""
  return {"epochs": config.epochs, "steps": int(state.step),
          "examples_per_s": steady_examples_per_s(config.workdir),
          "wall_s": time.perf_counter() - wall_start,
          "train_s": train_seconds(config.workdir),
          "num_params": count_params(state.params),
          "dataset": config.dataset, "data_source": dataset.source,
          "device": jax.devices()[0].device_kind, "num_devices": placement.num_devices,
          "parallel": config.parallel, "num_processes": jax.process_count(),
          "params_digest": params_digest(state.params)}


def reference_data(config: Any, dataset: sources.Dataset) -> sources.Dataset | None:
  """The labelled data set whose classifier scores samples of ``dataset``: itself when it
  has class labels; MNIST (from ``config.data_dir`` or the offline default) for the
  unlabelled binarized MNIST; None when there is none (e.g. attribute-only data)."""
  if len(dataset.train_labels) and np.all(dataset.train_labels >= 0):
    return dataset
  if dataset.name == "binarized_mnist":
    try:
      return sources.load("mnist", config.data_dir)
    except FileNotFoundError as e:
      logging.warning("no MNIST to train the reference classifier on: %s", e)
  return None


def sample_quality(config: Any, dataset: sources.Dataset, samples: np.ndarray,
                   conditioned_on: np.ndarray | None = None) -> dict[str, float]:
  """Scores ``samples`` [n, H, W, C] in [0, 1] with the reference classifier of
  ``dataset`` (trained once, cached in ``$GENJAX_CACHE``, default ~/.cache/genjax):
  ``sample_fd``, ``sample_score``, ``sample_modes``, ``sample_class_kl``, the class
  shares, ``classifier_test_accuracy``, ``data_fd`` / ``data_score`` (n real training
  images: the floor), and with ``conditioned_on`` [n] ``conditional_accuracy``
  (``genjax.metrics.sample_quality``). Returns {} when there is no labelled reference
  data set (a warning says so).
  """
  reference = reference_data(config, dataset)
  if reference is None:
    return {}
  if reference.train_images.shape[1:] != samples.shape[1:]:
    logging.warning("samples of shape %s cannot be scored by a classifier of %s images",
                    samples.shape[1:], reference.train_images.shape[1:])
    return {}
  classifier = reference_classifier.reference_classifier(
      reference.name, reference.train_images, reference.train_labels, reference.test_images,
      reference.test_labels)
  return quality.sample_quality(classifier, samples, reference.test_images, conditioned_on,
                                real_baseline=reference.train_images[:len(samples)])


def mean_and_std(values: list[float]) -> tuple[float, float]:
  """Mean and sample standard deviation (0 for a single value) over seeds."""
  values = np.asarray(values, np.float64)
  return float(values.mean()), float(values.std(ddof=1)) if len(values) > 1 else 0.0
