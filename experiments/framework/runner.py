"""The one copy of every experiment's scaffolding.

``main`` turns a command line into a validated config (``experiments/framework/configuration.py``),
runs the experiment and prints its report and ``summary`` (or, after ``Preempted``, where
training stopped and how to resume). ``prepare`` loads and checks the data and the
placement and writes ``config.json`` (everything checked at the border, before any work);
``train`` owns resume, the fused fit loop, its progress, checkpoints (by epochs, steps or
minutes, and on SIGTERM / SIGINT), ``metrics.jsonl`` and the evaluation cadence;
``run_info`` is the run-info part of every ``results.json``;
``streams`` gives the run's named PRNG streams. An experiment file is what makes a study
different: its model, its loss, its evaluators and its figures.
"""

from __future__ import annotations

import contextlib
import json
import os
import shlex
import signal
import sys
import threading
import time
from types import ModuleType
from typing import Any, Callable, Iterator, NamedTuple

from absl import logging
import jax
import numpy as np
import optax

from experiments.framework import configuration
from genjax import distributions, likelihoods
from genjax.data import registry, sources, transforms
from genjax.io import progress, workdir
from genjax.models import registry as model_parts
from genjax.metrics import reference_classifier, sample_quality as quality
from genjax.training import checkpoint, loop, parallel
from genjax.training import state as train_state
from genjax.training import step as train_step

# Fields that may change between a run and its resumption (they do not change the math).
RESUMABLE = frozenset({"epochs", "workdir", "data_dir", "eval_every", "checkpoint_every",
                       "checkpoint_every_steps", "checkpoint_every_minutes",
                       "steps_per_chunk", "download", "parallel", "prior_epochs"})

# Fields added after runs were written, with the value that computes what those runs did:
# a stored config.json without them resumes (workdir.check_or_write_config's ``added``).
ADDED_FIELDS = {"posterior": "diagonal", "flow_steps": 2, "snr_estimators": "",
                "upper_latents": [], "upper_hidden": [100, 100], "budget": "machine",
                "paper_budget": {}, "adam_eps": 1e-8, "lr_schedule": "constant",
                "g_ema_decay": 0.0, "gan_norm": "channels", "gan_d_width": 0,
                "gan_categories": 0, "gan_top_k": 1.0, "gan_top_k_decay": 0.9,
                "gan_sample_keep": 1.0}


def main(name: str, module: ModuleType, argv: list[str]) -> None:
  """Parses ``argv`` into the experiment's config, runs it, prints its report.

  A configuration or data error (ValueError, FileNotFoundError: raised at the border,
  before anything is written) ends the run with one line on stderr; other exceptions keep
  their traceback. Training that diverges (``Diverged``, ``loop.Diverged``: non-finite
  metrics) ends the run with one line too (where it diverged, what was kept, what to try)
  and a non-zero status. Training stopped by SIGTERM / SIGINT (``Preempted``, after its
  checkpoint) ends the run at once, with status 0 and one line: where it stopped and the
  command that resumes it. A multi-process run also prints each process's
  ``params_digest`` (equal in every process).
  """
  try:
    invocation = configuration.parse(name, argv, getattr(module, "READ_IF", None))
    results = module.run(invocation.config)
  except (ValueError, FileNotFoundError, Diverged) as e:
    sys.exit(f"{name}: error: {e}")
  except loop.Diverged as e:   # a loop outside ``train``: it kept no checkpoints
    sys.exit(f"{name}: error: {e}; no results were written; {RETRY}")
  except Preempted as stop:
    if workdir.is_primary():
      print(f"{name}: {stop}; resume with: {resume_command(name, argv)}", flush=True)
    return
  if jax.process_count() > 1 and isinstance(results, dict) and "params_digest" in results:
    print(f"process {jax.process_index()}: params_digest={results['params_digest']!r}")
  if workdir.is_primary():
    if hasattr(module, "report"):
      print(module.report(results, invocation.config))
    print(summary(invocation.config.workdir))


def resume_command(name: str, argv: list[str]) -> str:
  """The command line of this run (the same one resumes it), quoted for a shell."""
  launcher = sys.argv[0] if os.path.basename(sys.argv[0]) == "launch.py" else "launch.py"
  return shlex.join([sys.executable, launcher, name, *argv])


# The results.json keys ``summary`` shows, in this order (also as the last part of a
# "variant/key" name): what the experiments' reports lead with.
HEADLINE = ("test_elbo", "test_recon", "test_kl", "test_nll", "test_ll", "test_ll_se",
            "test_error", "test_accuracy", "sample_fd", "sample_score", "conditional_accuracy",
            "d_loss", "g_loss", "steps", "examples_per_s", "train_s", "wall_s")


def summary(run_dir: str) -> str:
  """A short table of the headline numbers of ``run_dir/results.json`` (``HEADLINE``, those
  it has) and the paths of what the run wrote into ``run_dir``."""
  lines, results = [], {}
  path = os.path.join(run_dir, workdir.RESULTS_JSON)
  if os.path.exists(path):
    with open(path) as f:
      results = json.load(f)
  numbers = {k: v for k, v in results.items() if isinstance(v, (int, float))
             and not isinstance(v, bool)} if isinstance(results, dict) else {}
  rows = [(k, v) for h in HEADLINE for k, v in numbers.items() if k.rsplit("/", 1)[-1] == h]
  if rows:
    shown = [(k, f"{v:.6g}" if isinstance(v, float) else str(v)) for k, v in rows]
    key_width, value_width = (max(len(row[i]) for row in shown) for i in (0, 1))
    lines.append(f"{path}:")
    lines += [f"  {k:<{key_width}}  {v:>{value_width}}" for k, v in shown]
  written = sorted(e + ("/" if os.path.isdir(os.path.join(run_dir, e)) else "")
                   for e in os.listdir(run_dir))
  lines.append(f"written in {run_dir}: {', '.join(written)}")
  return "\n".join(lines)


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
  """The latent-variable model of ``config.model`` / ``config.prior`` / ``config.posterior``
  / ``config.upper_latents`` (``pseudo_inputs`` read only for the VampPrior, ``flow_steps``
  only for a flow posterior, ``upper_hidden`` only with stochastic layers above z_1) whose
  decoder parameterizes ``likelihood``."""
  return model_parts.family("vae").from_config(config, image_shape, likelihood)


def params_digest(params: Any) -> float:
  """Sum of squares of every parameter: a cheap fingerprint to compare runs or processes."""
  return float(sum(jax.numpy.sum(jax.numpy.square(x)) for x in jax.tree.leaves(params)))


def count_params(params: Any) -> int:
  return int(sum(x.size for x in jax.tree.leaves(params)))


def prepare(config: Any, needs_labels: bool = False,
            check: Callable[[sources.Dataset], None] | None = None
            ) -> tuple[sources.Dataset, parallel.Placement]:
  """Loads and prepares ``config.dataset``, places the step, checks the batch (and runs the
  experiment's own ``check`` of the data set) and, in a rerun, that some checkpoint is
  intact, then writes config.json: everything an experiment checks at the border, before
  any work.

  Raises ValueError / FileNotFoundError (one line each) before anything is written.
  """
  dataset = transforms.prepare(
      sources.load(config.dataset, config.data_dir, config.download,
                   **configuration.dataset_options(config)), config.preprocess)
  logging.info("data: %s from %s, %d train / %d test", dataset.name, dataset.source,
               len(dataset.train_images), len(dataset.test_images))
  if "budget" in config.keys():   # a reproduction config: which budget (parse applied it)
    logging.info("budget=%s (paper budget: %s)", config.budget,
                 dict(config.paper_budget) or "none")
  if needs_labels and np.any(dataset.train_labels < 0):
    raise ValueError(f"config.dataset={config.dataset} has no labels: use dataset="
                     + " or dataset=".join(registry.labelled_names()))
  if config.batch_size > len(dataset.train_images):
    raise ValueError(f"config.batch_size={config.batch_size} exceeds the "
                     f"{len(dataset.train_images)} training examples of {config.dataset}")
  placement = parallel.make_placement(config.parallel)
  parallel.check_batch_size(placement, config.batch_size)
  if check is not None:
    check(dataset)
  checkpoint.check_restorable(config.workdir)   # a rerun whose checkpoints are all damaged
  workdir.check_or_write_config(config.workdir, configuration.as_dict(config), RESUMABLE,
                                ADDED_FIELDS)
  return dataset, placement


def train(config: Any, state: Any, step: Callable, train_data: dict, *, run_dir: str,
          data_rng: jax.Array, preprocess: train_state.Preprocess, placement: parallel.Placement,
          evaluate: Callable[[Any], dict] | None = None, eval_every: int | None = None,
          epochs: int | None = None, name: str = "") -> Any:
  """Trains (resuming from ``run_dir/checkpoints``) and returns the final state.

  Uses ``config.batch_size``, ``config.steps_per_chunk`` and the checkpoint cadence
  (``Cadence.of(config)``); ``epochs`` defaults to ``config.epochs`` and, when there is an
  ``evaluate``, ``eval_every`` to ``config.eval_every``. Appends every chunk's metrics (and
  ``evaluate(params)`` every ``eval_every`` epochs and at the end) to
  ``run_dir/metrics.jsonl``, and shows progress (``genjax.io.progress``: a bar, or one line
  per epoch). SIGTERM or SIGINT (``stop_requests``) stops it after the running chunk: that
  step is checkpointed and ``Preempted`` raised (the epoch's evaluation, if the chunk ended
  one, is skipped); a rerun resumes there and ends with the same parameters. Non-finite
  metrics raise ``Diverged``: the chunk that diverged is neither logged nor checkpointed.
  """
  epochs = epochs or config.epochs
  if evaluate is not None and eval_every is None:
    eval_every = config.eval_every
  cadence = Cadence.of(config)
  manager = checkpoint.make_manager(run_dir)
  state, restored = checkpoint.restore_latest(manager, state)
  if restored is not None:
    progress.note(f"{name or run_dir}: resumed from the checkpoint at step {restored}")
  writer = workdir.MetricsWriter(run_dir)
  shown = progress.TrainProgress(name, epochs, loop.steps_per_epoch(
      len(next(iter(train_data.values()))), config.batch_size), restored or 0)
  chunks = loop.fit(state, step, train_data, batch_size=config.batch_size, num_epochs=epochs,
                    data_rng=data_rng, preprocess=preprocess,
                    steps_per_chunk=config.steps_per_chunk or None, placement=placement)
  previous_step, saved_at = restored or 0, time.monotonic()
  with stop_requests() as stop, contextlib.closing(writer), contextlib.closing(shown):
    try:
      for i, (state, log) in enumerate(chunks):
        writer.write({**log, "includes_compile": int(i == 0)})
        shown.update(log)
        if stop:
          checkpoint.save(manager, state, int(log["step"]))
          raise Preempted(stop[0], int(log["step"]), log["epoch"], run_dir)
        epoch = round(log["epoch"])
        if log["epoch_end"] and evaluate is not None and (epoch % eval_every == 0
                                                          or epoch == epochs):
          writer.write({"step": log["step"], "epoch": epoch, **evaluate(state.params)})
        if cadence.due(log, previous_step, epochs, (time.monotonic() - saved_at) / 60):
          checkpoint.save(manager, state, int(log["step"]))
          saved_at = time.monotonic()
        previous_step = int(log["step"])
    except loop.Diverged as e:
      raise Diverged(e, run_dir, manager.latest_step(), learning_rates(config)) from e
  return state


class Cadence(NamedTuple):
  """When ``train`` checkpoints: at the end of every ``epochs``-th epoch and of the last,
  and, where non-zero, every ``steps`` steps and every ``minutes`` minutes. Checkpoints fall
  on chunk boundaries only (``config.steps_per_chunk``): by steps, at the first boundary at
  or after each multiple of ``steps``; by time, at the first boundary ``minutes`` after the
  last checkpoint of this invocation (or its start)."""
  epochs: int
  steps: int = 0
  minutes: float = 0.0

  @classmethod
  def of(cls, config: Any) -> "Cadence":
    """``checkpoint_every``, ``checkpoint_every_steps``, ``checkpoint_every_minutes``."""
    return cls(config.checkpoint_every, config.checkpoint_every_steps,
               config.checkpoint_every_minutes)

  def due(self, log: dict, previous_step: int, last_epoch: int, minutes_since: float) -> bool:
    """Whether the chunk ``log`` describes (it began at ``previous_step``) ends with a
    checkpoint, ``minutes_since`` the last one."""
    epoch, step = round(log["epoch"]), int(log["step"])
    return bool((log["epoch_end"] and (epoch % self.epochs == 0 or epoch == last_epoch))
                or (self.steps and step // self.steps > previous_step // self.steps)
                or (self.minutes and minutes_since >= self.minutes))


class Preempted(Exception):
  """Training stopped by a signal after a chunk, with a checkpoint at that step."""

  def __init__(self, signum: int, step: int, epoch: float, run_dir: str):
    super().__init__(f"stopped by {signal.Signals(signum).name} at step {step} (epoch "
                     f"{epoch:.2f}) of {run_dir}, checkpoint saved")
    self.step, self.epoch, self.run_dir = step, epoch, run_dir


# What to try after a run diverged (a changed learning rate or seed needs a new workdir:
# neither is RESUMABLE).
RETRY = "try a smaller learning rate or another seed, in a new workdir"


class Diverged(Exception):
  """``loop.Diverged`` in ``train``: where the run's checkpoints are, and what to try."""

  def __init__(self, cause: loop.Diverged, run_dir: str, saved_step: int | None,
               rates: dict[str, float]):
    checkpoints = os.path.join(run_dir, "checkpoints")
    kept = ("no checkpoint was saved before it" if saved_step is None else
            f"the checkpoints up to step {saved_step} are kept in {checkpoints}")
    now = ", ".join(f"{k}={v:g}" for k, v in rates.items())
    super().__init__(f"{cause}; {kept}; no results were written; {RETRY}"
                     + (f" (now {now})" if now else ""))
    self.step, self.bad = cause.step, cause.bad
    self.run_dir, self.saved_step = run_dir, saved_step


def learning_rates(config: Any) -> dict[str, float]:
  """The config's learning rates by field name (``learning_rate``, ``d_learning_rate``...)."""
  return {k: config[k] for k in sorted(config.keys()) if k.endswith("learning_rate")}


STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)


@contextlib.contextmanager
def stop_requests() -> Iterator[list[int]]:
  """Yields a list to which SIGTERM and SIGINT append their number instead of ending the
  process, so training can stop at its next chunk boundary (a second SIGINT interrupts at
  once); the previous handlers come back on exit. In a multi-process run (the processes
  would stop at different chunks) or off the main thread (where Python cannot install
  handlers) it installs nothing and the list stays empty."""
  requested: list[int] = []
  if jax.process_count() > 1 or threading.current_thread() is not threading.main_thread():
    yield requested
    return

  def handler(signum, frame):
    del frame
    if requested and signum == signal.SIGINT:
      raise KeyboardInterrupt
    requested.append(signum)

  previous = {s: signal.signal(s, handler) for s in STOP_SIGNALS}
  try:
    yield requested
  finally:
    for s, h in previous.items():
      signal.signal(s, signal.SIG_DFL if h is None else h)


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
  return sum(r.get("seconds") or 0.0 for r in workdir.read_metrics(run_dir))


# Why ``examples_per_s`` is null in results.json when no chunk could measure it.
NO_STEADY_CHUNK = ("no steady-state chunk: every training chunk of this run included "
                   "compilation, so its speed is not the training speed; train more chunks "
                   "(more epochs, or a smaller steps_per_chunk) to measure it")


def steady_examples_per_s(run_dir: str) -> float:
  """Training throughput over all logged chunks that did not include compilation; NaN
  when there is none (e.g. a run of one chunk): ``throughput`` says so in results."""
  chunks = [r for r in workdir.read_metrics(run_dir)
            if r.get("examples_per_s") is not None and r.get("seconds")
            and not r.get("includes_compile")]
  seconds = sum(r["seconds"] for r in chunks)
  return (sum(r["examples_per_s"] * r["seconds"] for r in chunks) / seconds if seconds
          else float("nan"))


def format_rate(value: float | None, spec: str = ".0f") -> str:
  """``value`` (e.g. ``examples_per_s``) formatted by ``spec``, or "n/a" when there is no
  finite figure (None or NaN: no steady-state chunk, see ``throughput``)."""
  return format(value, spec) if value is not None and np.isfinite(value) else "n/a"


def throughput(run_dir: str) -> dict[str, Any]:
  """``{"examples_per_s": steady_examples_per_s(run_dir)}``, plus ``examples_per_s_note``
  (``NO_STEADY_CHUNK``) when there is no steady-state figure: results.json then holds
  ``null`` with that reason (``workdir.strict_json``), never a compile-inflated number."""
  value = steady_examples_per_s(run_dir)
  return {"examples_per_s": value} if np.isfinite(value) else {
      "examples_per_s": value, "examples_per_s_note": NO_STEADY_CHUNK}


def run_info(config: Any, state: Any, dataset: sources.Dataset, placement: parallel.Placement,
             wall_start: float) -> dict[str, Any]:
  """The part of ``results.json`` every training experiment shares: budget, throughput
  (``throughput``), time, size, data, devices and a parameter fingerprint."""
  return {"epochs": config.epochs, "steps": int(state.step),
          **throughput(config.workdir),
          "wall_s": time.perf_counter() - wall_start,
          "train_s": train_seconds(config.workdir),
          "num_params": count_params(state.params),
          "dataset": config.dataset, "data_source": dataset.source,
          "device": jax.devices()[0].device_kind, "num_devices": placement.num_devices,
          "parallel": config.parallel, "num_processes": jax.process_count(),
          "params_digest": params_digest(state.params)}


def reference_data(config: Any, dataset: sources.Dataset) -> sources.Dataset | None:
  """The labelled data set whose classifier scores samples of ``dataset``: itself when it
  has class labels; its entry's ``scored_by`` (from ``config.data_dir`` or the offline
  default) when it has none (e.g. MNIST for the binarized MNIST); None when there is no
  such data set (e.g. attribute-only data)."""
  if len(dataset.train_labels) and np.all(dataset.train_labels >= 0):
    return dataset
  reference = registry.get(dataset.name).reference if dataset.name in registry.names() else None
  if reference is not None and reference != dataset.name:
    try:
      return sources.load(reference, config.data_dir)
    except FileNotFoundError as e:
      logging.warning("no %s to train the reference classifier on: %s", reference, e)
  return None


def reference_classifier_of(dataset: sources.Dataset) -> reference_classifier.ReferenceClassifier:
  """The labelled data set's reference classifier (trained once, then cached in
  ``$GENJAX_CACHE``, default ~/.cache/genjax)."""
  return reference_classifier.reference_classifier(
      dataset.name, dataset.train_images, dataset.train_labels, dataset.test_images,
      dataset.test_labels)


def sample_quality(config: Any, dataset: sources.Dataset, samples: np.ndarray,
                   conditioned_on: np.ndarray | None = None, floor: bool = True
                   ) -> dict[str, float]:
  """Scores ``samples`` [n, H, W, C] in [0, 1] with the reference classifier of
  ``dataset`` (trained once, cached in ``$GENJAX_CACHE``, default ~/.cache/genjax):
  ``sample_fd``, ``sample_score``, ``sample_modes``, ``sample_class_kl``, the class
  shares, ``classifier_test_accuracy``, ``data_fd`` / ``data_score`` (n real training
  images: the floor), and with ``conditioned_on`` [n] ``conditional_accuracy``
  (``genjax.metrics.sample_quality``; ``floor=False`` skips data_fd / data_score, e.g.
  when a second set of samples of the same size is scored). Returns {} when there is no
  labelled reference data set (a warning says so).
  """
  reference = reference_data(config, dataset)
  if reference is None:
    return {}
  if reference.train_images.shape[1:] != samples.shape[1:]:
    logging.warning("samples of shape %s cannot be scored by a classifier of %s images",
                    samples.shape[1:], reference.train_images.shape[1:])
    return {}
  return quality.sample_quality(reference_classifier_of(reference), samples,
                                reference.test_images, conditioned_on,
                                real_baseline=(reference.train_images[:len(samples)] if floor
                                               else None))


def mean_and_std(values: list[float]) -> tuple[float, float]:
  """Mean and sample standard deviation (0 for a single value) over seeds."""
  values = np.asarray(values, np.float64)
  return float(values.mean()), float(values.std(ddof=1)) if len(values) > 1 else 0.0
