"""Compare ELBO variants and gradient estimators on equal footing (IWAE, DReG, STL, beta...).

Every variant trains the same architecture from the same initialisation seeds on the same
data order for the same number of epochs; the seeds of one variant train together as
replicas of one vmapped, jitted step. Each variant is then evaluated on the test set:
importance-sampled log-likelihood (K = ll_samples, with its standard error), ELBO, KL,
active units and the gradient SNR of its own estimator (``metrics.likelihood.gradient_snr``:
the median over parameters and the SNR along the mean gradient, for encoder and decoder)
and, at the same parameters, batch and noise, of every estimator in ``snr_estimators``
(e.g. iwae=1,...,iwae=500: the SNR-vs-K curves of Rainforth et al. 2018). Writes results.md
/ results.json / results.csv, curves.png (test ELBO vs epoch) and, per variant,
variants/NAME/ with its checkpoints and metrics.jsonl. With ``models`` (``parse_models``:
diagonal, full_covariance, planar=K, iaf=K, two_layer=D) every variant trains on each of
those architectures, rows MODEL:VARIANT, plus a table of test NLL, IS standard error, ELBO,
the gap log p(x) - ELBO, active units and time. Configs: experiments/configs/
compare_elbos.py, iwae_table1.py (the IWAE paper's Table 1 protocol; :two_layer its
two-stochastic-layer column), snr_vs_k.py (gradient SNR vs K for IWAE and DReG) and
compare_posteriors.py (richer posteriors and a second stochastic layer on equal footing).
"""

from __future__ import annotations

import csv
import dataclasses
import os
import re
import time
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax

from experiments.framework import configuration, evaluators, runner
from experiments.framework.checks import Field, choice, integer, number, parsed_by
from experiments.framework.fields import LR_SCHEDULES
from genjax import likelihoods, models
from genjax.data import sources
from genjax.io import plotting, workdir
from genjax.losses import elbo
from genjax.metrics import curves
from genjax.metrics import likelihood as likelihood_metrics
from genjax.models import protocol
from genjax.models import registry as parts
from genjax.training import loop, parallel, schedules
from genjax.training import state as train_state
from genjax.training import step as train_step

# The gradient SNR's robust summaries (``likelihood_metrics.snr_summary``), reported for the
# variant's own estimator and for each of ``snr_estimators``.
SNR_METRICS = ("encoder_snr_median", "encoder_snr_projection", "decoder_snr_median",
               "decoder_snr_projection", "encoder_grad_var", "decoder_grad_var")
# encoder_grad_snr / decoder_grad_snr: the legacy mean over parameters (see snr_summary).
METRICS = ("test_ll", "test_nll", "test_ll_se", "test_elbo", "test_kl", "gap", "active_units",
           *SNR_METRICS, "encoder_grad_snr", "decoder_grad_snr",
           "train_s", "wall_s", "examples_per_s")


@dataclasses.dataclass(frozen=True)
class Setup:
  """What every variant shares."""
  model: models.VAE
  likelihood: likelihoods.Likelihood
  dataset: sources.Dataset
  optimizer: optax.GradientTransformation
  preprocess: train_state.Preprocess
  test_images: np.ndarray  # binarized once (fixed key) under preprocess=dynamic
  test_elbo: evaluators.TestELBO
  init_params: object     # [seeds, ...] stacked
  placement: parallel.Placement


def streams(seed: int) -> dict[str, Any]:
  """The run's named PRNG streams. Their derivations from the seed are the ones the
  README's tables were measured with, kept so that those runs reproduce exactly."""
  def fixed(offset: int) -> jax.Array:
    return jax.random.PRNGKey(seed + offset)
  return {"init": lambda s: jax.random.PRNGKey(seed + s),                # seed replica s
          "state": lambda s: jax.random.fold_in(jax.random.PRNGKey(seed), s + 1000),
          "test_binarization": fixed(10_000), "eval": fixed(10_001), "data": fixed(20_000),
          "snr_batch": fixed(30_000), "log_likelihood": lambda s: fixed(40_000 + s),
          "snr": lambda s: jax.random.PRNGKey(s), "ll_subset": fixed(50_000),
          "curve_ll": lambda s: fixed(60_000 + s)}


# ``models``: the architectures every variant trains on, by name (empty: the config's own):
# each posterior of genjax.models.registry (=K when it reads flow_steps), or two_layer=D.
def _model_forms() -> tuple[str, ...]:
  return tuple(f"{n}=K" if "flow_steps" in p.reads else n for n, p in parts.POSTERIORS.items()
               ) + ("two_layer=D",)


MODEL_FORMS = _model_forms()


def parse_models(text: str) -> list[tuple[str, dict[str, Any]]]:
  """``models`` -> [(name, the config fields it sets)]: a posterior's name sets
  ``posterior`` (``NAME=K``: a posterior of K flow steps); ``two_layer=D`` a stochastic
  layer of D units above z_1 (``upper_latents=(D,)``, the hierarchy's posterior).
  ValueError naming the bad entry and the allowed forms."""
  specs = []
  for name in (n.strip() for n in text.split(",") if n.strip()):
    kind, has_value, value = name.partition("=")
    flow = kind in parts.POSTERIORS and "flow_steps" in parts.posterior(kind).reads
    needs_value = flow or kind == "two_layer"
    if kind not in (*parts.POSTERIORS, "two_layer") or (
        has_value != ("=" if needs_value else "")) or (
        needs_value and not (value.isdigit() and int(value) >= 1)):
      raise ValueError(f"{name!r} is not a model; expected comma-separated "
                       f"entries of {', '.join(MODEL_FORMS)} (K, D integers >= 1)")
    if flow:
      fields = {"posterior": kind, "flow_steps": int(value), "upper_latents": ()}
    elif kind == "two_layer":
      fields = {"posterior": parts.HIERARCHY_POSTERIOR, "upper_latents": (int(value),)}
    else:
      fields = {"posterior": kind, "upper_latents": ()}
    specs.append((name, fields))
  names = [n for n, _ in specs]
  if len(set(names)) < len(names):
    raise ValueError(f"{text!r} names a model twice")
  return specs


class ModelConfig:
  """The config as one entry of ``models`` sees it: its fields, then the entry's."""

  def __init__(self, config: Any, fields: dict[str, Any]):
    self._config, self._fields = config, fields

  def __getattr__(self, name: str) -> Any:
    fields = self.__dict__["_fields"]
    return fields[name] if name in fields else getattr(self.__dict__["_config"], name)

  def __contains__(self, name: str) -> bool:
    return name in self._fields or name in self._config


def model_configs(config: Any) -> list[tuple[str, Any]]:
  """[(row prefix, config)] per trained architecture: ``[("", config)]`` without
  ``models`` (rows named by variant, as before the field existed), else one
  ``ModelConfig`` per entry (rows named MODEL:VARIANT)."""
  specs = parse_models(config.models)
  if not specs:
    return [("", config)]
  return [(f"{name}:", ModelConfig(config, fields)) for name, fields in specs]


def snr_estimators(config: Any) -> list[elbo.Objective]:
  """The variants of ``config.snr_estimators`` (empty: none)."""
  text = config.snr_estimators
  return elbo.parse_variants(text) if text.strip() else []


def _objectives(config: Any) -> list[tuple[str, list[elbo.Objective]]]:
  return [("variants", elbo.parse_variants(config.variants)),
          ("snr_estimators", snr_estimators(config))]


def _model_problem(config: Any, label: str) -> str | None:
  """What ``config``'s model (posterior, prior, stochastic layers) cannot do with the
  variants: the closed-form KL (VampPrior, flows, a hierarchy), STL and DReG (flows: log q
  only at their own samples), free bits (a non-factorized posterior)."""
  upper = tuple(config.upper_latents)
  if not parts.combines(config.prior, config.posterior, upper):
    return (f"{label}: a richer posterior or a hierarchy takes prior=standard_normal (the "
            "VampPrior is a mixture of diagonal posteriors)")
  can = parts.capabilities(config.prior, config.posterior, upper)
  flow = not can.density_anywhere
  for field, objectives in _objectives(config):
    analytic = [v.name for v in objectives if v.kl == "analytic"]
    if analytic and not can.closed_form_kl:
      return (f"config.{field}: {', '.join(analytic)} need a closed-form KL, which "
              f"{can.description} ({label}) has not; use their Monte Carlo forms (elbo_mc, "
              "elbo_k=K, iwae=K" + (")" if flow else ", elbo_stl, iwae_dreg=K)"))
    path = [v.name for v in objectives if v.estimator in ("stl", "dreg")]
    if path and flow:
      return (f"config.{field}: {', '.join(path)} evaluate log q(z|x) at stopped "
              f"parameters, which a flow ({can.description}, {label}) has only at its own "
              "samples; use elbo_mc, elbo_k=K or iwae=K")
    free_bits = [v.name for v in objectives if v.free_bits > 0]
    if free_bits and not can.factorized:
      return (f"config.{field}: {', '.join(free_bits)} need a posterior that factorizes "
              f"over latent dimensions; {can.description} ({label}) does not")


def _models_fit(config: Any) -> str | None:
  """Every architecture (``models``, or the config's own) can train every variant."""
  try:
    configs = model_configs(config)
  except ValueError as e:
    return f"config.models: {e}"
  for prefix, model_config in configs:
    label = f"models entry {prefix[:-1]}" if prefix else "this config"
    problem = _model_problem(model_config, label)
    if problem:
      return problem


def test_kl(config: Any) -> str:
  """The test ELBO's KL: closed form where the model has one, else one-sample Monte Carlo."""
  return "analytic" if parts.of_config(config).closed_form_kl else "mc"


def parse_paper_nll(text: str) -> dict[str, float]:
  """``paper_nll`` -> {variant: the paper's test NLL}: comma-separated ``VARIANT:NLL``
  (e.g. ``elbo_mc:86.76,iwae=5:85.54``). ValueError naming the bad entry."""
  numbers = {}
  for entry in (e.strip() for e in text.split(",") if e.strip()):
    name, _, value = entry.rpartition(":")
    try:
      numbers[name.strip()] = float(value)
    except ValueError:
      raise ValueError(f"{entry!r} is not VARIANT:NLL (e.g. iwae=5:85.54)") from None
    if not name.strip() or not np.isfinite(numbers[name.strip()]):
      raise ValueError(f"{entry!r} is not VARIANT:NLL (e.g. iwae=5:85.54)")
  return numbers


def _paper_nll_names(config: Any) -> str | None:
  """Every ``paper_nll`` entry names a trained variant (as ``variants`` spells it)."""
  try:
    numbers = parse_paper_nll(config.paper_nll)
  except ValueError as e:
    return f"config.paper_nll: {e}"
  known = [v.name for v in elbo.parse_variants(config.variants)]
  unknown = [n for n in numbers if n not in known]
  if unknown:
    return (f"config.paper_nll: {', '.join(unknown)} not among the variants "
            f"({', '.join(known)})")


# The fields only this experiment reads (the shared ones: experiments/framework/configuration.py).
FIELDS = {
    "adam_eps": Field("Adam's epsilon (added to the root of the second moment; optax's default "
                      "1e-8, the IWAE paper's 1e-4).", number(0.0, strict=True)),
    "lr_schedule": Field("Learning-rate schedule: constant, or iwae (Burda et al. 2016, Sec. 5: "
                         "learning_rate * 10^(-i/7) for 3^i passes, i = 0..7, 3,280 passes in "
                         "all; genjax.training.schedules).", choice(LR_SCHEDULES)),
    "models": Field("compare_elbos: architectures to train every variant on, comma-separated "
                    "entries of diagonal, full_covariance, planar=K, iaf=K (K flow steps), "
                    "two_layer=D (a stochastic layer of D units above z_1); each replaces the "
                    "config's posterior / flow_steps / upper_latents. Empty: the config's own "
                    "model.", parsed_by(parse_models)),
    "variants": Field("Comma-separated variants of the ELBO lab: "
                      + ", ".join(elbo.VARIANT_FORMS) + ".", parsed_by(elbo.parse_variants)),
    "snr_draws": Field("Gradient draws for the gradient SNR.", integer(2)),
    "snr_batch": Field("Fixed training batch for the gradient SNR.", integer(1)),
    "curve_ll_samples": Field("compare_elbos: K of a test NLL (importance sampling on the "
                              "ll_examples subset) logged at every evaluation (eval_every "
                              "epochs): the learning curve of test NLL against passes, "
                              "nll_curves.png; 0: off.", integer(0)),
    "paper_nll": Field("compare_elbos: a paper's test NLL per variant, comma-separated "
                       "VARIANT:NLL (e.g. iwae=5:85.54): drawn on nll_curves.png, with the "
                       "passes at which each learning curve would reach it.",
                       parsed_by(parse_paper_nll)),
    "snr_estimators": Field("Gradient estimators (ELBO-lab variants, comma-separated) whose SNR "
                            "is also measured at each trained variant's final parameters, on "
                            "the same batch and draws (e.g. iwae=1,iwae=50,iwae_dreg=50: SNR vs "
                            "K); empty: only the variant's own.",
                            parsed_by(lambda s: elbo.parse_variants(s) if s.strip() else [])),
}


CHECKS = (_models_fit, _paper_nll_names)


def _own_model(config: Any) -> bool:
  return not config.models.strip()


def _reads_upper_hidden(config: Any) -> bool:
  if not _own_model(config):
    return any(fields.get("upper_latents") for _, fields in parse_models(config.models))
  return bool(config.upper_latents)


# With ``models``, each entry sets the posterior, its flow steps and the stochastic layers.
READ_IF = {
    "posterior": configuration.ReadIf(_own_model, "models is empty"),
    "upper_latents": configuration.ReadIf(_own_model, "models is empty"),
    "flow_steps": configuration.ReadIf(
        lambda c: _own_model(c) and "flow_steps" in parts.posterior(c.posterior).reads,
        "models is empty and posterior=planar or iaf"),
    "upper_hidden": configuration.ReadIf(_reads_upper_hidden,
                                         "upper_latents or a two_layer=D entry of models"),
    "paper_nll": configuration.ReadIf(lambda c: c.curve_ll_samples > 0,
                                      "curve_ll_samples > 0 (passes to each paper number)"),
}


def run(config: Any) -> dict[str, float]:
  """Trains and evaluates every variant; writes every workdir file; returns results."""
  variants = elbo.parse_variants(config.variants)
  dataset, placement = runner.prepare(config)
  rows = {}
  for prefix, model_config in model_configs(config):
    setup = _setup(model_config, dataset, placement)
    for variant in variants:
      rows[prefix + variant.name] = _run_variant(config, setup, variant, prefix + variant.name)
  if workdir.is_primary():
    _write_outputs(config, list(rows), rows)
  return {f"{name}/{k}": v for name, row in rows.items() for k, v in row.items()
          if not isinstance(v, list)}


def _setup(config: Any, dataset: sources.Dataset, placement: parallel.Placement) -> Setup:
  likelihood = runner.likelihood(config)
  shape = dataset.train_images.shape[1:]
  model = runner.build_vae(config, shape, likelihood)
  keys = streams(config.seed)
  x0 = jnp.zeros((1, *shape), jnp.float32)
  init_keys = jnp.stack([keys["init"](s) for s in range(config.seeds)])
  init_params = jax.vmap(lambda k: model.init(k, x0)["params"])(init_keys)
  preprocess = runner.make_preprocess(config.preprocess)
  # One fixed binarization of the test set, shared by every variant and every metric.
  test_images = np.asarray(preprocess({"image": dataset.test_images},
                                      keys["test_binarization"])["image"])
  test_elbo = evaluators.TestELBO(model, likelihood, {"image": test_images},
                                  config.eval_batch_size, keys["eval"], kl=test_kl(config),
                                  replicas=True)
  return Setup(model, likelihood, dataset, optimizer(config, len(dataset.train_images)),
               preprocess, test_images, test_elbo, init_params, placement)


def optimizer(config: Any, num_train: int) -> optax.GradientTransformation:
  """Adam at ``learning_rate`` with epsilon ``adam_eps``, the rate constant or on the IWAE
  paper's schedule (``lr_schedule=iwae``: ``schedules.iwae_learning_rate``, a pass being
  num_train // batch_size steps, as ``runner.train`` counts an epoch)."""
  rate = config.learning_rate
  if config.lr_schedule == "iwae":
    rate = schedules.iwae_learning_rate(rate, loop.steps_per_epoch(num_train, config.batch_size))
  return optax.adam(rate, eps=config.adam_eps)


def _variant_dir(config: Any, name: str) -> str:
  return os.path.join(config.workdir, "variants", re.sub(r"[^A-Za-z0-9_.=-]", "_", name))


def _run_variant(config: Any, setup: Setup, variant: elbo.Objective, row: str) -> dict:
  """Trains one variant's seeds as vmapped replicas (resuming), then evaluates them; ``row``
  names it (the variant, or MODEL:VARIANT) and its directory."""
  start = time.perf_counter()
  vdir = _variant_dir(config, row)
  os.makedirs(vdir, exist_ok=True)
  loss_fn = elbo.make_loss(setup.model, setup.likelihood, variant)
  keys = streams(config.seed)
  rngs = jnp.stack([keys["state"](s) for s in range(config.seeds)])
  state = jax.vmap(lambda p, r: train_state.create_train_state(p, setup.optimizer, r))(
      setup.init_params, rngs)

  step = jax.vmap(train_step.make_train_step(loss_fn, setup.optimizer,
                                             axis_name=setup.placement.axis_name),
                  in_axes=(0, None))
  state = runner.train(
      config, state, step, {"image": setup.dataset.train_images}, run_dir=vdir,
      data_rng=keys["data"], preprocess=setup.preprocess,
      placement=setup.placement, evaluate=_curve_evaluator(config, setup), name=row)
  return _evaluate_variant(config, setup, variant, loss_fn, state.params, vdir,
                           setup.test_elbo(state.params), start)


def _ll_subset(config: Any, setup: Setup) -> np.ndarray:
  """The test images of the importance-sampled NLL (``ll_examples``; all for 0)."""
  n = min(config.ll_examples or len(setup.test_images), len(setup.test_images))
  return setup.test_images[evaluators.test_subset(streams(config.seed)["ll_subset"], n,
                                                  len(setup.test_images))]


def _curve_evaluator(config: Any, setup: Setup):
  """What training logs every ``eval_every`` epochs: the test ELBO of every seed and, with
  ``curve_ll_samples`` > 0, ``test_nll_curve``: each seed's -log p(x) by importance sampling
  with K = curve_ll_samples on the ``ll_examples`` subset (the learning curve of test NLL
  against passes; the same keys at every evaluation)."""
  if not config.curve_ll_samples:
    return setup.test_elbo
  log_likelihood = evaluators.LogLikelihood(setup.model, setup.likelihood,
                                            _ll_subset(config, setup), config.curve_ll_samples)
  keys = streams(config.seed)

  def evaluate(params) -> dict:
    nll = [-log_likelihood(_unstack(params, s), keys["curve_ll"](s))["log_px"]
           for s in range(config.seeds)]
    return {**setup.test_elbo(params), "test_nll_curve": nll}

  return evaluate


def _unstack(tree, i):
  return jax.tree.map(lambda a: a[i], tree)


def _estimator_snr(estimators: dict, params, batch, rng, num_draws: int, mask) -> dict:
  """``SNR_METRICS`` of each loss in ``estimators`` (name -> loss) at ``params``, keyed
  ``snr/NAME/METRIC``. Every estimator gets the same batch and keys as the variant's own
  (common random numbers: at one K, IWAE's and DReG's decoder gradients are the same
  draws, so their decoder SNRs are equal and the encoder columns differ by the estimator
  alone)."""
  out = {}
  for name, loss in estimators.items():
    snr = likelihood_metrics.gradient_snr(loss, params, batch, rng, num_draws, mask)
    out.update({f"snr/{name}/{k}": snr[k] for k in SNR_METRICS})
  return out


def _evaluate_variant(config, setup, variant, loss_fn, params, vdir, final, start) -> dict:
  """Per-seed test metrics of one variant, then their mean and std over seeds."""
  keys = streams(config.seed)
  log_likelihood = evaluators.LogLikelihood(setup.model, setup.likelihood,
                                            _ll_subset(config, setup), config.ll_samples)
  snr_batch = jax.device_put(
      {"image": setup.preprocess({"image": setup.dataset.train_images[:config.snr_batch]},
                                 keys["snr_batch"])["image"],
       "step": jnp.int32(0)})
  estimators = {e.name: elbo.make_loss(setup.model, setup.likelihood, e)
                for e in snr_estimators(config)}
  per_seed = {k: [] for k in METRICS}
  per_seed.update({f"snr/{name}/{k}": [] for name in estimators for k in SNR_METRICS})
  kl_per_dim, units_per_layer = [], []
  records = workdir.read_metrics(vdir)
  train_s, ex_per_s = runner.train_seconds(vdir), runner.steady_examples_per_s(vdir)
  for s in range(config.seeds):
    p = _unstack(params, s)
    ll = log_likelihood(p, keys["log_likelihood"](s))
    stats = likelihood_metrics.posterior_statistics(setup.model, p, setup.test_images)
    mask = protocol.encoder_mask(setup.model, p)
    snr = likelihood_metrics.gradient_snr(loss_fn, p, snr_batch, keys["snr"](s),
                                          config.snr_draws, mask)
    snr.update(_estimator_snr(estimators, p, snr_batch, keys["snr"](s), config.snr_draws,
                              mask))
    kl_per_dim.append(stats["kl_per_dim"].tolist())
    if "active_units_per_layer" in stats:
      units_per_layer.append(stats["active_units_per_layer"])
    values = {"test_ll": ll["log_px"], "test_nll": -ll["log_px"], "test_ll_se": ll["log_px_se"],
              "test_elbo": final["test_elbo"][s], "test_kl": final["test_kl"][s],
              "gap": ll["log_px"] - ll["elbo"],
              "active_units": stats["active_units"], **snr, "train_s": train_s,
              "examples_per_s": ex_per_s, "wall_s": 0.0}
    for k, v in per_seed.items():
      v.append(float("nan") if values[k] is None else float(values[k]))  # None: undefined
  per_seed["wall_s"] = [time.perf_counter() - start] * config.seeds  # all seeds at once
  row = {}
  for k, v in per_seed.items():
    row[k], row[f"{k}_std"] = runner.mean_and_std(v)
  # The standard error of the mean NLL over seeds (training's spread, not Monte Carlo's).
  row["test_nll_seed_se"] = row["test_nll_std"] / np.sqrt(config.seeds)
  row["per_seed"] = per_seed
  row["kl_per_dim"] = kl_per_dim
  if units_per_layer:
    row["active_units_per_layer"] = units_per_layer     # per seed, [z_1, ..., z_L]
  row["curve"] = [(r["epoch"], float(np.mean(r["test_elbo"])))
                  for r in records if "test_elbo" in r]
  if config.curve_ll_samples:
    row["nll_curve"] = [(r["epoch"], list(r["test_nll_curve"]))
                        for r in records if "test_nll_curve" in r]
    target = parse_paper_nll(config.paper_nll).get(variant.name)
    if target is not None:
      passes = [e for e, _ in row["nll_curve"]]
      means = [float(np.mean(v)) for _, v in row["nll_curve"]]
      row["paper_nll"] = target
      row["passes_to_paper"] = (curves.passes_to_reach(passes, means, target)
                                if len(passes) >= 2 else None)
  if workdir.is_primary():
    workdir.write_json(os.path.join(vdir, "results.json"), row)
  return row


def _write_outputs(config: Any, names: list[str], rows: dict) -> None:
  flat = {f"{name}/{k}": v for name in names for k, v in rows[name].items()
          if not isinstance(v, list)}
  flat.update(dataset=config.dataset, epochs=config.epochs, seeds=config.seeds,
              ll_samples=config.ll_samples,
              ll_examples=config.ll_examples or None, device=jax.devices()[0].device_kind)
  with open(os.path.join(config.workdir, "results.csv"), "w", newline="") as f:
    out = csv.writer(f)
    out.writerow(["variant", *[c for k in METRICS for c in (k, f"{k}_std")]])
    for name in names:
      out.writerow([name, *[rows[name][c] for k in METRICS for c in (k, f"{k}_std")]])
  shown = ("test_nll", "test_elbo", "test_kl", "active_units", *SNR_METRICS[:4], "train_s",
           "wall_s")
  table = ["| variant | " + " | ".join(shown) + " |", "|---" * (len(shown) + 1) + "|"]
  for name in names:
    table.append(f"| {name} | " + " | ".join(_cell(rows[name], k) for k in shown) + " |")
  table += _reproduction_table(config, names, rows)
  table += _estimator_snr_tables(config, names, rows)
  table += _models_table(config, names, rows)
  notes = " ".join([
      f"test_nll: -log p(x) by importance sampling with K={config.ll_samples} on",
      f"{config.ll_examples or 'all'} test examples (a fixed random subset when not all;",
      "nats; its Monte Carlo standard error is test_ll_se in results.json).",
      "test_elbo / test_kl: single-sample ELBO with closed-form KL (one-sample Monte Carlo",
      "where the model has none) on the whole test set",
      "(binarized once with a fixed key under dynamic binarization; the same binarization",
      "for every metric and variant). active_units: dimensions with Cov_x(E_q[z_d|x]) >",
      "0.01. SNR: over snr_draws draws of the variant's own gradient estimator on one fixed",
      "training batch, for the encoder (inference network) and the decoder (generative",
      "model and prior): snr_median is the median over parameters of |E g| / std g",
      "(Rainforth et al. 2018; parameters whose gradient is identically zero left out),",
      "snr_projection the SNR of g along its mean direction, estimated leave-one-out",
      "(metrics/likelihood.py snr_summary). results.json also has encoder_grad_snr /",
      "decoder_grad_snr, the legacy mean over parameters, which the few parameters whose",
      "gradient barely varies dominate; n/a: undefined. train_s: seconds of training for",
      "all seeds together (all invocations of the run); wall_s: this invocation's seconds",
      "on the variant, training and evaluation. Per-dimension KL and per-seed values:",
      "variants/NAME/results.json."])
  workdir.write_results(config.workdir, flat, table=table, notes=notes,
                        title=f"ELBO variants on {config.dataset} ({config.epochs} epochs, "
                              f"{config.seeds} seeds, mean ± std over seeds)")
  epochs = sorted({e for name in names for e, _ in rows[name]["curve"]})
  plotting.save_curves(os.path.join(config.workdir, "curves.png"), epochs,
                       {name: [v for _, v in rows[name]["curve"]] for name in names},
                       xlabel="epoch", ylabel="test ELBO (nats, mean over seeds)")
  if config.curve_ll_samples:
    plotting.save_learning_curves(
        os.path.join(config.workdir, "nll_curves.png"),
        {name: ([e for e, _ in rows[name]["nll_curve"]],
                [np.mean(v) for _, v in rows[name]["nll_curve"]],
                [_seed_se(v) for _, v in rows[name]["nll_curve"]]) for name in names},
        parse_paper_nll(config.paper_nll), xlabel="passes over the training set (log)",
        ylabel=f"test NLL, K={config.curve_ll_samples} (nats)",
        title=f"mean ± s.e. over {config.seeds} seeds; dashed: the paper")


def _seed_se(values: list[float]) -> float:
  return runner.mean_and_std(values)[1] / np.sqrt(len(values))


def _reproduction_table(config: Any, names: list[str], rows: dict) -> list[str]:
  """With ``paper_nll``: each variant's test NLL (mean ± standard error over seeds), the
  paper's, and the passes at which the learning curve's log-linear tail would reach it."""
  numbers = parse_paper_nll(config.paper_nll) if config.curve_ll_samples else {}
  if not numbers:
    return []
  lines = ["", f"Against the paper ({config.epochs} passes here, {config.seeds} seeds; test "
           f"NLL mean ± standard error over seeds; passes to the paper's number: where the "
           f"straight line through the last 3 points of the K={config.curve_ll_samples} "
           "curve against log passes reaches it, an extrapolation):", "",
           "| variant | test NLL | paper | passes to the paper's number |", "|---|---|---|---|"]
  for name in names:
    row = rows[name]
    paper = numbers.get(name)
    reach = row.get("passes_to_paper")
    lines.append(f"| {name} | {row['test_nll']:.2f} ± {row['test_nll_seed_se']:.2f} | "
                 f"{'—' if paper is None else f'{paper:.2f}'} | "
                 f"{'—' if reach is None else f'{reach:,.0f}'} |")
  return lines


def _models_table(config: Any, names: list[str], rows: dict) -> list[str]:
  """With ``models``: per architecture and variant, test NLL with its Monte Carlo standard
  error, the ELBO, the gap log p(x) - ELBO (what a richer posterior or a hierarchy
  closes: the IS estimate minus the mean log-weight of the same draws on the same
  examples), active units and training seconds."""
  if not parse_models(config.models):
    return []
  lines = ["", f"Architectures on equal footing ({config.epochs} epochs, {config.seeds} "
           "seeds, mean ± std over seeds; IS s.e.: the importance-sampling standard error of "
           "the test NLL, averaged over seeds):", "",
           "| model | variant | test NLL | IS s.e. | test ELBO | gap | active units | train s |",
           "|---|---|---|---|---|---|---|---|"]
  for name in names:
    model, variant = name.split(":", 1)
    row = rows[name]
    lines.append(f"| {model} | {variant} | {_cell(row, 'test_nll')} | {row['test_ll_se']:.3f} "
                 f"| {_cell(row, 'test_elbo')} | {_cell(row, 'gap')} "
                 f"| {_cell(row, 'active_units')} | {_cell(row, 'train_s')} |")
  return lines


def _cell(row: dict, key: str) -> str:
  """``mean ± std`` over seeds; n/a where undefined (None or NaN)."""
  def show(v):
    return "n/a" if v is None or not np.isfinite(v) else (
        f"{v:.3g}" if abs(v) < 1 else f"{v:.2f}")
  return f"{show(row[key])} ± {show(row[key + '_std'])}"


def _estimator_snr_tables(config: Any, names: list[str], rows: dict) -> list[str]:
  """Per trained variant, the SNR of each of ``snr_estimators`` at its final parameters."""
  estimators = [e.name for e in snr_estimators(config)]
  lines = []
  for name in names if estimators else ():
    lines += ["", f"Gradient SNR of each estimator at the final parameters of {name} "
              f"({config.snr_draws} draws on one batch of {config.snr_batch} training images):",
              "", "| estimator | " + " | ".join(SNR_METRICS[:4]) + " |", "|---" * 5 + "|"]
    lines += [f"| {e} | " + " | ".join(_cell(rows[name], f"snr/{e}/{k}")
                                        for k in SNR_METRICS[:4]) + " |" for e in estimators]
  return lines


def report(results: dict, config: Any) -> str:
  with open(os.path.join(config.workdir, workdir.RESULTS_MD)) as f:
    return f.read()
