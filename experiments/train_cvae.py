"""Train a conditional VAE, q(z|x, c) and p(x|z, c), and generate under chosen conditions.

The condition c is the one-hot class label (mnist, fashion_mnist) or the vector of 40
binary attributes (celeb_a). The ELBO given c is the VAE's, so ``objective`` takes
every variant of the ELBO lab (elbo, elbo_mc, elbo_stl, beta=B, iwae=K, iwae_dreg=K, ...).

Config: experiments/configs/train_cvae.py (celeb_a: its celeb_a variant). Writes into the
workdir: config.json, metrics.jsonl (+ tensorboard/), checkpoints/,
class_grid.png (one row per condition, one column per z ~ p(z): the same z down a
column), analogies.png (test images, then their posterior mean z decoded under every
other condition), reconstructions.png, results.json and results.md (test ELBO given c;
for labelled data sample quality on the reference classifier's scale, with
``conditional_accuracy``: the share of samples classified as the class they were
generated for). For labelled data with evaluators=sample_quality and curve_samples > 0,
every eval_every epochs metrics.jsonl also records ``conditional_accuracy`` of
curve_samples balanced prior samples (the same z and classes at every evaluation) beside
the test ELBO, drawn against the epoch in conditional_accuracy.png.
"""

from __future__ import annotations

import dataclasses
import os
import time
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from experiments.framework import configuration, evaluators, runner
from experiments.framework.checks import Field, boolean, integer, names, parsed_by
from experiments.framework.fields import with_attributes
from genjax.data import registry, sources
from genjax.io import plotting, workdir
from genjax.losses import elbo
from genjax.metrics import reference_classifier
from genjax.metrics import sample_quality as quality
from genjax.models import protocol
from genjax.models import registry as model_registry

def _evaluates(name: str):
  return lambda c: name in configuration.split_names(c.evaluators)


_SCORES_SAMPLES = configuration.ReadIf(
    lambda c: _evaluates("sample_quality")(c) and registry.get(c.dataset).reference is not None,
    "evaluators has sample_quality and the data set has class labels (not "
    + ", ".join(n for n in registry.names() if registry.get(n).reference is None) + ")")

# The fields only this experiment reads (the shared ones: experiments/framework/configuration.py).
FIELDS = {
    "curve_samples": Field("train_cvae, labelled data, evaluators has sample_quality: balanced "
                           "prior samples whose conditional_accuracy is logged every eval_every "
                           "epochs (metrics.jsonl, conditional_accuracy.png); 0: no curve.",
                           integer(0)),
    "condition_every_layer": Field("train_cvae: the condition c enters every decoder layer "
                                   "(concatenated to each layer's input), not only the first.",
                                   boolean),
    "objective": Field("Training objective, one variant of the ELBO lab: "
                       + ", ".join(elbo.VARIANT_FORMS) + ".", parsed_by(elbo.parse_variant)),
    "grid_columns": Field("Prior samples z (columns) of class_grid.png.", integer(1)),
    "analogies": Field("Test images re-decoded under every condition in analogies.png.",
                       integer(1)),
    "attributes": Field(f"{with_attributes()}: the attributes switched on, one per row, in "
                        "the figures (comma-separated).", names()),
}


EVALUATORS = ("log_likelihood", "sample_quality")   # run by its own code, given the condition
READ_IF = {
    "quality_samples": _SCORES_SAMPLES,
    "curve_samples": _SCORES_SAMPLES,
    "ll_samples": configuration.ReadIf(_evaluates("log_likelihood"),
                                       "evaluators has log_likelihood"),
    "ll_examples": configuration.ReadIf(_evaluates("log_likelihood"),
                                        "evaluators has log_likelihood"),
}


@dataclasses.dataclass(frozen=True)
class Conditions:
  """What c is for a data set: its per-example values, and the rows of the figures."""
  train: np.ndarray            # [N, C] float32
  test: np.ndarray             # [M, C]
  kind: str                    # "label" (one-hot) or "attributes"
  names: tuple[str, ...]       # the C entries of c
  shown: tuple[int, ...]       # entries switched on, one figure row each


def conditions_of(config: Any, dataset: sources.Dataset) -> Conditions:
  """One-hot labels, or the attribute vectors; raises ValueError for data with neither or
  an unknown ``attributes`` name."""
  if dataset.train_attributes is not None:
    names = tuple(dataset.attribute_names)
    shown = configuration.split_names(config.attributes)
    unknown = [a for a in shown if a not in names]
    if unknown:
      raise ValueError(f"config.attributes: unknown {', '.join(unknown)}; {dataset.name} "
                       f"has {', '.join(names)}")
    return Conditions(dataset.train_attributes, dataset.test_attributes, "attributes", names,
                      tuple(names.index(a) for a in shown))
  if np.any(dataset.train_labels < 0):
    usable = [n for n in registry.names()
              if registry.get(n).labelled or registry.get(n).num_attributes]
    raise ValueError(f"config.dataset={config.dataset} has neither labels nor attributes to "
                     f"condition on: use {', '.join(usable[:-1])} or {usable[-1]}")
  k = int(dataset.train_labels.max()) + 1
  one_hot = lambda y: np.eye(k, dtype=np.float32)[y]
  return Conditions(one_hot(dataset.train_labels), one_hot(dataset.test_labels), "label",
                    tuple(str(i) for i in range(k)), tuple(range(k)))


def figure_rows(conditions: Conditions, base: np.ndarray) -> tuple[np.ndarray, list[str]]:
  """The conditions of the figure rows for a base condition [C]: every one-hot label, or
  the base attributes followed by the base with each shown attribute switched on."""
  if conditions.kind == "label":
    return np.eye(len(conditions.names), dtype=np.float32), list(conditions.names)
  rows, names = [base], ["as is"]
  for a in conditions.shown:
    row = base.copy()
    row[a] = 1.0
    rows.append(row)
    names.append(f"+{conditions.names[a]}")
  return np.stack(rows).astype(np.float32), names


def condition_grid(model, likelihood, params, z: jax.Array, rows: jax.Array) -> jax.Array:
  """Means of p(x|z_j, c_i) for every row condition c_i [R, C] and column z_j [J, latent]:
  [R, J, H, W, ch]. Column j decodes the same z_j in every row."""
  r, j = rows.shape[0], z.shape[0]
  zz = jnp.broadcast_to(z[None], (r, *z.shape)).reshape(r * j, -1)
  cc = jnp.broadcast_to(rows[:, None], (r, j, rows.shape[1])).reshape(r * j, -1)
  out = likelihood.mean(protocol.decode(model, params, zz, cc))
  return out.reshape(r, j, *out.shape[1:])


class ConditionalAccuracy:
  """``conditional_accuracy`` of ``num`` prior samples, an equal number per class: the share
  of means of p(x|z, c) that ``classifier`` assigns to the class of c
  (``genjax.metrics.sample_quality.conditional_accuracy``). The z and classes come from the
  fixed key ``rng``, so successive calls differ only by the parameters; sampling, decoding
  and classifying are one compiled function of the parameters (compiled once per run).

  classifier: a ``ReferenceClassifier`` of the labelled data set; num_classes: K, the
  size of the one-hot c.
  """

  def __init__(self, model, likelihood, classifier: reference_classifier.ReferenceClassifier,
               num_classes: int, num: int, rng: jax.Array):
    self._labels = np.arange(num) % num_classes                     # [num], balanced
    conditions = jnp.eye(num_classes, dtype=jnp.float32)[self._labels]   # [num, K]
    self._classifier = classifier

    @jax.jit
    def probs(params, classifier_params):
      z = protocol.sample_prior(model, params, rng, num)             # [num, latent]
      x = likelihood.mean(protocol.decode(model, params, z, conditions))   # [num, H, W, C]
      return jax.nn.softmax(classifier.model.apply({"params": classifier_params}, x))

    self._probs = probs

  def __call__(self, params) -> dict[str, float]:
    probs = np.asarray(jax.device_get(self._probs(params, self._classifier.params)))
    return {"conditional_accuracy": quality.conditional_accuracy(probs, self._labels)}


def run(config: Any) -> dict[str, float]:
  """Trains (or resumes) and evaluates; writes every workdir file; returns results."""
  wall_start = time.perf_counter()
  try:   # before anything is written
    objective = elbo.parse_variant(config.objective)
  except ValueError as e:
    raise ValueError(f"config.objective={config.objective}: {e}") from None
  holder = {}

  def check(dataset):
    holder["conditions"] = conditions_of(config, dataset)

  dataset, placement = runner.prepare(config, check=check)
  conditions = holder["conditions"]
  likelihood = runner.likelihood(config)
  image_shape = dataset.train_images.shape[1:]
  model = model_registry.family("cvae").from_config(config, image_shape, likelihood)
  keys = runner.streams(config.seed, "init", "state", "data", "eval", "figures", "quality")
  loss_fn = elbo.make_loss(model, likelihood, objective)
  preprocess = runner.make_preprocess(config.preprocess)
  test_elbo = evaluators.TestELBO(
      model, likelihood, {"image": dataset.test_images, "condition": conditions.test},
      config.eval_batch_size, keys["eval"], preprocess)
  evaluate = test_elbo
  if _SCORES_SAMPLES.when(config) and conditions.kind == "label" and config.curve_samples:
    curve = ConditionalAccuracy(model, likelihood, runner.reference_classifier_of(dataset),
                                len(conditions.names), config.curve_samples,
                                jax.random.fold_in(keys["quality"], 1))
    evaluate = lambda params: {**test_elbo(params), **curve(params)}   # noqa: E731
  example = (jnp.zeros((1, *image_shape), jnp.float32),
             jnp.zeros((1, conditions.train.shape[1]), jnp.float32))
  state = runner.fit(
      config, model, loss_fn, {"image": dataset.train_images, "condition": conditions.train},
      example, keys, run_dir=config.workdir, preprocess=preprocess, placement=placement,
      evaluate=evaluate, name="train_cvae")

  final = test_elbo(state.params)
  chosen = configuration.split_names(config.evaluators)
  if "log_likelihood" in chosen:
    final.update(evaluators.test_log_likelihood(
        model, likelihood, state.params,
        {"image": dataset.test_images, "condition": conditions.test}, preprocess,
        jax.random.fold_in(keys["eval"], 1), config.ll_samples, config.ll_examples))
  if "sample_quality" in chosen and conditions.kind == "label" and config.quality_samples:
    k = len(conditions.names)
    labels = np.arange(config.quality_samples) % k       # balanced over the classes
    samples = evaluators.prior_sample_means(model, likelihood, state.params, keys["quality"],
                                            config.quality_samples,
                                            np.eye(k, dtype=np.float32)[labels])
    final.update(runner.sample_quality(config, dataset, samples, conditioned_on=labels))
  if workdir.is_primary():
    _write_figures(config, model, likelihood, state.params, dataset, conditions, keys["figures"])
    save_accuracy_curve(os.path.join(config.workdir, "conditional_accuracy.png"),
                        workdir.read_metrics(config.workdir))
  results = {**final, "objective": objective.name, "condition": conditions.kind,
             "condition_dim": int(conditions.train.shape[1]),
             **runner.run_info(config, state, dataset, placement, wall_start)}
  workdir.write_results(
      config.workdir, results, title=f"Conditional VAE on {config.dataset} ({config.model}, "
      f"{objective.name})",
      notes="ELBO terms of log p(x|c) in nats per test example, c the example's own "
            "condition. With evaluators=log_likelihood, test_nll is -log p(x|c) by importance "
            "sampling (K = ll_samples) on ll_examples_used test images, test_ll_se its "
            "standard error. sample_* score quality_samples samples, an equal number per class, "
            "with the cached reference classifier (genjax.metrics.sample_quality); "
            "conditional_accuracy is the share classified as the class they were "
            "generated for; data_fd is the floor set by real training images.")
  return results


def _write_figures(config: Any, model, likelihood, params, dataset, conditions, rng) -> None:
  z_rng, _ = jax.random.split(rng)
  z = protocol.sample_prior(model, params, z_rng, config.grid_columns)
  base = (conditions.test.mean(0) > 0.5).astype(np.float32)   # the modal attribute vector
  rows, names = figure_rows(conditions, base)
  grid = np.asarray(condition_grid(model, likelihood, params, z, jnp.asarray(rows)))
  plotting.save_image_rows(os.path.join(config.workdir, "class_grid.png"),
                           dict(zip(names, grid)),
                           title="rows: condition; columns: one z ~ p(z) each, the same z "
                                 "down a column")
  n = min(config.analogies, len(dataset.test_images))
  x, own = dataset.test_images[:n], conditions.test[:n]
  mean = protocol.posterior(model, params, jnp.asarray(x), jnp.asarray(own)).mean
  panels = {"input": x}
  per_image = [figure_rows(conditions, own[i])[0] for i in range(n)]
  for r, name in enumerate(names):
    row_conditions = jnp.asarray(np.stack([rows_i[r] for rows_i in per_image]))
    panels[name] = np.asarray(likelihood.mean(protocol.decode(model, params, mean,
                                                              row_conditions)))
  plotting.save_image_rows(os.path.join(config.workdir, "analogies.png"), panels,
                           title="analogies: each column keeps one test image's z = E[z|x, c] "
                                 "and decodes it under each row's condition")
  recon = likelihood.mean(model.apply({"params": params}, jnp.asarray(dataset.test_images[:32]),
                                      jnp.asarray(conditions.test[:32])))
  plotting.save_reconstructions(os.path.join(config.workdir, "reconstructions.png"),
                                dataset.test_images[:32], np.asarray(recon))


def accuracy_curve(records: list[dict]) -> tuple[list[int], list[float]]:
  """(epochs, conditional_accuracy) of the metrics.jsonl records that have it, by epoch; a
  resumed run's later record of an epoch replaces the earlier one."""
  by_epoch = {int(r["epoch"]): float(r["conditional_accuracy"]) for r in records
              if "conditional_accuracy" in r and "epoch" in r}
  epochs = sorted(by_epoch)
  return epochs, [by_epoch[e] for e in epochs]


def save_accuracy_curve(path: str, records: list[dict]) -> None:
  """conditional_accuracy against the epoch (nothing is written when no record has it)."""
  epochs, accuracy = accuracy_curve(records)
  if epochs:
    plotting.save_curves(path, epochs, {"conditional_accuracy": accuracy}, "epoch",
                         "share classified as the class asked for", markers=True,
                         ylim=(min(0.0, min(accuracy)), 1.0),
                         title="conditional accuracy of prior samples (reference classifier)")


def report(results: dict, config: Any) -> str:
  quality = (f"; samples: FD {results['sample_fd']:.2f}, conditional accuracy "
             f"{results['conditional_accuracy']:.3f}" if "sample_fd" in results else "")
  return (f"test ELBO {results['test_elbo']:.2f} nats given c (recon "
          f"{results['test_recon']:.2f}, KL {results['test_kl']:.2f}){quality}; "
          f"wall {results['wall_s']:.0f} s; results in {config.workdir}/results.md")
