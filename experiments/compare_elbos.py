"""Compare ELBO variants and gradient estimators on equal footing (IWAE, DReG, STL, beta...).

Every variant trains the same architecture from the same initialisation seeds on the same
data order for the same number of epochs; the seeds of one variant train together as
replicas of one vmapped, jitted step. Each variant is then evaluated on the test set:
importance-sampled log-likelihood (K = --ll_samples, with its standard error), ELBO, KL,
active units and the gradient SNR of its own estimator. Writes results.md / results.json
/ results.csv, curves.png (test ELBO vs epoch) and, per variant, variants/NAME/ with its
checkpoints and metrics.jsonl.
"""

from __future__ import annotations

import csv
import dataclasses
import json
import os
import re
import time

from absl import app, flags, logging
import jax
import jax.numpy as jnp
import numpy as np
import optax

from experiments import common
from genjax import (data, evaluate, models, objectives, parallel, plotting, train,
                    workdir)

flags.DEFINE_string("variants", "elbo,elbo_mc,beta=0.5,iwae=5,iwae=50,iwae_dreg=50,elbo_stl",
                    "Comma-separated variants: " + ", ".join(objectives.VARIANT_FORMS) + ".")
flags.DEFINE_bool("iwae_arch", False, "Use the IWAE paper's one-stochastic-layer network "
                  "(784-200-200-50, tanh) instead of --hidden/--latent_dim/--activation.")
flags.DEFINE_integer("ll_samples", 5000, "Importance samples K for the test log-likelihood.",
                     lower_bound=1)
flags.DEFINE_integer("ll_examples", 0, "Test examples for the log-likelihood estimate: a "
                     "fixed uniform random subset (0: the whole test set).", lower_bound=0)
flags.DEFINE_integer("snr_draws", 100, "Gradient draws for the gradient SNR.", lower_bound=2)
flags.DEFINE_integer("snr_batch", 100, "Fixed training batch for the gradient SNR.",
                     lower_bound=1)
FLAGS = flags.FLAGS


def _check_variants(text: str) -> bool:
  try:
    objectives.parse_variants(text)
  except ValueError as e:
    raise flags.ValidationError(str(e)) from None
  return True


flags.register_validator("variants", _check_variants)

IWAE_ARCH = {"hidden": (200, 200), "latent_dim": 50, "activation": "tanh"}
METRICS = ("test_ll", "test_nll", "test_ll_se", "test_elbo", "test_kl", "active_units",
           "encoder_grad_snr", "decoder_grad_snr", "encoder_grad_var", "decoder_grad_var",
           "train_s", "wall_s", "examples_per_s")


@dataclasses.dataclass(frozen=True)
class Config(common.ModelConfig):
  """Every flag of the run, resolved once (defaults live on the flags)."""
  likelihood: str
  gaussian_std: float
  variants: str
  seeds: int
  iwae_arch: bool
  ll_samples: int
  ll_examples: int
  snr_draws: int
  snr_batch: int


def config_from_flags() -> Config:
  config = common.config_from_flags(Config)
  return dataclasses.replace(config, **IWAE_ARCH) if config.iwae_arch else config


@dataclasses.dataclass(frozen=True)
class Setup:
  """What every variant shares."""
  model: models.VAE
  likelihood: objectives.Likelihood
  dataset: data.Dataset
  optimizer: optax.GradientTransformation
  preprocess: train.Preprocess
  test_images: np.ndarray  # binarized once (fixed key) under --preprocess=dynamic
  elbo_eval: object
  test_batches: tuple
  init_params: object     # [seeds, ...] stacked
  placement: parallel.Placement


def run(config: Config) -> dict[str, float]:
  """Trains and evaluates every variant; writes every workdir file; returns results."""
  variants = objectives.parse_variants(config.variants)
  dataset, placement = common.prepare_run(config)
  setup = _setup(config, dataset, placement)
  rows = {}
  for variant in variants:
    rows[variant.name] = _run_variant(config, setup, variant)
  if workdir.is_primary():
    _write_outputs(config, variants, rows)
  return {f"{name}/{k}": v for name, row in rows.items() for k, v in row.items()
          if not isinstance(v, list)}


def _setup(config: Config, dataset: data.Dataset, placement: parallel.Placement) -> Setup:
  likelihood = objectives.make_likelihood(config.likelihood, config.gaussian_std)
  shape = dataset.train_images.shape[1:]
  model = models.build_vae(config.model, shape, config.latent_dim, config.hidden,
                           shape[-1] * likelihood.params_per_channel, config.activation)
  keys = jnp.stack([jax.random.PRNGKey(config.seed + s) for s in range(config.seeds)])
  x0 = jnp.zeros((1, *shape), jnp.float32)
  init_params = jax.vmap(lambda k: model.init(k, x0)["params"])(keys)
  terms = objectives.make_elbo_terms(model, likelihood, "analytic")
  per_seed = jax.vmap(lambda p, b, r: objectives.elbo_metrics(terms(p, b, r)),
                      in_axes=(0, None, None))
  preprocess = common.make_preprocess(config.preprocess)
  # One fixed binarization of the test set, shared by every variant and every metric.
  test_images = np.asarray(preprocess({"image": dataset.test_images},
                                      jax.random.PRNGKey(config.seed + 10_000))["image"])
  test_batches = train.pad_batches({"image": test_images},
                                   min(config.eval_batch_size, len(test_images)))
  return Setup(model, likelihood, dataset, optax.adam(config.learning_rate), preprocess,
               test_images, train.make_eval_fn(per_seed), test_batches, init_params, placement)


def _variant_dir(config: Config, name: str) -> str:
  return os.path.join(config.workdir, "variants", re.sub(r"[^A-Za-z0-9_.=-]", "_", name))


def _run_variant(config: Config, setup: Setup, variant: objectives.Objective) -> dict:
  """Trains one variant's seeds as vmapped replicas (resuming), then evaluates them."""
  start = time.perf_counter()
  vdir = _variant_dir(config, variant.name)
  os.makedirs(vdir, exist_ok=True)
  loss_fn = objectives.make_loss(setup.model, setup.likelihood, variant)
  rngs = jax.vmap(lambda s: jax.random.fold_in(jax.random.PRNGKey(config.seed), s))(
      jnp.arange(config.seeds) + 1000)
  state = jax.vmap(lambda p, r: train.create_train_state(p, setup.optimizer, r))(
      setup.init_params, rngs)
  eval_rng = jax.random.PRNGKey(config.seed + 10_001)

  def test_elbo(params) -> dict[str, list[float]]:
    out = jax.device_get(setup.elbo_eval(params, *setup.test_batches, eval_rng))
    return {f"test_{k}": np.asarray(v).tolist() for k, v in out.items()}

  step = jax.vmap(train.make_train_step(loss_fn, setup.optimizer,
                                        axis_name=setup.placement.axis_name), in_axes=(0, None))
  state = common.fit_and_checkpoint(
      config, state, step, {"image": setup.dataset.train_images}, run_dir=vdir,
      data_rng=jax.random.PRNGKey(config.seed + 20_000), preprocess=setup.preprocess,
      placement=setup.placement, evaluate=test_elbo, name=variant.name)
  return _evaluate_variant(config, setup, variant, loss_fn, state.params, vdir,
                           test_elbo(state.params), start)


def _unstack(tree, i):
  return jax.tree.map(lambda a: a[i], tree)


def _evaluate_variant(config, setup, variant, loss_fn, params, vdir, final, start) -> dict:
  """Per-seed test metrics of one variant, then their mean and std over seeds."""
  n = min(config.ll_examples or len(setup.test_images), len(setup.test_images))
  ll_batch = max(1, min(n, 20_000 // min(config.ll_samples, 500)))
  ll_eval = train.make_eval_fn(
      evaluate.make_log_likelihood_fn(setup.model, setup.likelihood, config.ll_samples,
                                      _chunk(config.ll_samples)))
  subset = _ll_subset(config.seed, n, len(setup.test_images))
  ll_batches = train.pad_batches({"image": setup.test_images[subset]}, ll_batch)
  snr_batch = jax.device_put(
      {"image": setup.preprocess({"image": setup.dataset.train_images[:config.snr_batch]},
                                 jax.random.PRNGKey(config.seed + 30_000))["image"],
       "step": jnp.int32(0)})
  per_seed = {k: [] for k in METRICS}
  kl_per_dim = []
  records = workdir.read_metrics(vdir)
  train_s, ex_per_s = common.train_seconds(vdir), common.steady_examples_per_s(vdir)
  for s in range(config.seeds):
    p = _unstack(params, s)
    ll = ll_eval(p, *ll_batches, jax.random.PRNGKey(config.seed + 40_000 + s))
    stats = evaluate.posterior_statistics(setup.model, p, setup.test_images)
    snr = evaluate.gradient_snr(loss_fn, p, snr_batch, jax.random.PRNGKey(s), config.snr_draws)
    kl_per_dim.append(stats["kl_per_dim"].tolist())
    values = {"test_ll": float(ll["log_px"]), "test_nll": -float(ll["log_px"]),
              "test_ll_se": float(np.sqrt(ll["log_px_var"] / n)),
              "test_elbo": final["test_elbo"][s], "test_kl": final["test_kl"][s],
              "active_units": stats["active_units"], **snr, "train_s": train_s,
              "examples_per_s": ex_per_s, "wall_s": 0.0}
    for k in METRICS:
      per_seed[k].append(float(values[k]))
  per_seed["wall_s"] = [time.perf_counter() - start] * config.seeds  # all seeds at once
  row = {}
  for k, v in per_seed.items():
    row[k], row[f"{k}_std"] = common.mean_and_std(v)
  row["per_seed"] = per_seed
  row["kl_per_dim"] = kl_per_dim
  row["curve"] = [(r["epoch"], float(np.mean(r["test_elbo"])))
                  for r in records if "test_elbo" in r]
  if workdir.is_primary():
    with open(os.path.join(vdir, "results.json"), "w") as f:
      json.dump(row, f, indent=2)
  return row


def _ll_subset(seed: int, n: int, total: int) -> np.ndarray:
  """Indices of the test images of the log-likelihood estimate: all of them, or a uniform
  random subset fixed by --seed (a prefix would not be representative: data sets are
  often ordered)."""
  if n >= total:
    return np.arange(total)
  return np.sort(np.asarray(jax.random.permutation(jax.random.PRNGKey(seed + 50_000),
                                                   total)[:n]))


def _chunk(num_samples: int) -> int:
  """The largest divisor of num_samples that is at most 500 (samples drawn per chunk)."""
  return train.largest_divisor_at_most(num_samples, 500)


def _write_outputs(config: Config, variants, rows: dict) -> None:
  names = [v.name for v in variants]
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
  shown = ("test_nll", "test_elbo", "test_kl", "active_units", "encoder_grad_snr",
           "decoder_grad_snr", "train_s", "wall_s")
  table = ["| variant | " + " | ".join(shown) + " |", "|---" * (len(shown) + 1) + "|"]
  for name in names:
    cells = [f"{rows[name][k]:.2f} ± {rows[name][k + '_std']:.2f}" for k in shown]
    table.append(f"| {name} | " + " | ".join(cells) + " |")
  notes = " ".join([
      f"test_nll: -log p(x) by importance sampling with K={config.ll_samples} on",
      f"{config.ll_examples or 'all'} test examples (a fixed random subset when not all;",
      "nats; its Monte Carlo standard error is test_ll_se in results.json).",
      "test_elbo / test_kl: single-sample ELBO with closed-form KL on the whole test set",
      "(binarized once with a fixed key under dynamic binarization; the same binarization",
      "for every metric and variant). active_units: dimensions with Cov_x(E_q[z_d|x]) >",
      "0.01. grad SNR: mean over parameters of |E g| / std g for the variant's own",
      "estimator on one fixed training batch. train_s: seconds of training for all seeds",
      "together (all invocations of the run); wall_s: this invocation's seconds on the",
      "variant, training and evaluation. Per-dimension KL and per-seed values:",
      "variants/NAME/results.json."])
  workdir.write_results(config.workdir, flat, table=table, notes=notes,
                        title=f"ELBO variants on {config.dataset} ({config.epochs} epochs, "
                              f"{config.seeds} seeds, mean ± std over seeds)")
  epochs = sorted({e for name in names for e, _ in rows[name]["curve"]})
  plotting.save_curves(os.path.join(config.workdir, "curves.png"), epochs,
                       {name: [v for _, v in rows[name]["curve"]] for name in names},
                       xlabel="epoch", ylabel="test ELBO (nats, mean over seeds)")


def main(argv: list[str]) -> None:
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
  start = time.perf_counter()
  results = common.run_or_exit("compare_elbos", run, config_from_flags())
  if workdir.is_primary():
    print(open(os.path.join(FLAGS.workdir, workdir.RESULTS_MD)).read())
  logging.info("%d result keys; %.0f s", len(results), time.perf_counter() - start)
