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
variants/NAME/ with its checkpoints and metrics.jsonl. Configs:
experiments/configs/compare_elbos.py, iwae_table1.py (the IWAE paper's Table 1 protocol)
and snr_vs_k.py (gradient SNR vs K for IWAE and DReG).
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

from experiments import evaluators, runner
from genjax import likelihoods, models
from genjax.data import sources
from genjax.io import plotting, workdir
from genjax.losses import elbo
from genjax.metrics import likelihood as likelihood_metrics
from genjax.models import protocol
from genjax.training import parallel
from genjax.training import state as train_state
from genjax.training import step as train_step

# The gradient SNR's robust summaries (``likelihood_metrics.snr_summary``), reported for the
# variant's own estimator and for each of ``snr_estimators``.
SNR_METRICS = ("encoder_snr_median", "encoder_snr_projection", "decoder_snr_median",
               "decoder_snr_projection", "encoder_grad_var", "decoder_grad_var")
# encoder_grad_snr / decoder_grad_snr: the legacy mean over parameters (see snr_summary).
METRICS = ("test_ll", "test_nll", "test_ll_se", "test_elbo", "test_kl", "active_units",
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
          "snr": lambda s: jax.random.PRNGKey(s), "ll_subset": fixed(50_000)}


def snr_estimators(config: Any) -> list[elbo.Objective]:
  """The variants of ``config.snr_estimators`` (empty: none)."""
  text = config.snr_estimators
  return elbo.parse_variants(text) if text.strip() else []


def _closed_form_kl(config: Any) -> str | None:
  """The VampPrior has no closed-form KL: variants that need one are refused up front."""
  if config.prior != "vamp":
    return None
  for field, objectives in (("variants", elbo.parse_variants(config.variants)),
                            ("snr_estimators", snr_estimators(config))):
    analytic = [v.name for v in objectives if v.kl == "analytic"]
    if analytic:
      return (f"config.{field}: {', '.join(analytic)} need a closed-form KL, which the "
              "VampPrior (prior=vamp) has not; use their Monte Carlo forms (elbo_mc, "
              "elbo_stl, elbo_k=K, iwae=K, iwae_dreg=K)")


def _posterior_fits(config: Any) -> str | None:
  """Flow posteriors have no density away from their own samples: the closed-form KL, STL,
  DReG and the per-dimension statistics (active units, KL per dimension) are refused."""
  if config.posterior != "diagonal" and config.prior != "standard_normal":
    return (f"config.posterior={config.posterior}: a richer posterior takes "
            "prior=standard_normal (the VampPrior is a mixture of diagonal posteriors)")
  if config.posterior in ("planar", "iaf"):
    return (f"config.posterior={config.posterior}: compare_elbos reports per-dimension "
            "posterior statistics and trains closed-form, STL and DReG variants, which need "
            "log q(z|x) away from the flow's own samples; train flows with train_vae (kl=mc)")
  if config.posterior == "full_covariance":
    free_bits = [v.name for v in elbo.parse_variants(config.variants) if v.free_bits > 0]
    if free_bits:
      return (f"config.variants: {', '.join(free_bits)} need a posterior that factorizes "
              "over latent dimensions; posterior=full_covariance does not")


CHECKS = (_closed_form_kl, _posterior_fits)


def run(config: Any) -> dict[str, float]:
  """Trains and evaluates every variant; writes every workdir file; returns results."""
  variants = elbo.parse_variants(config.variants)
  dataset, placement = runner.prepare(config)
  setup = _setup(config, dataset, placement)
  rows = {}
  for variant in variants:
    rows[variant.name] = _run_variant(config, setup, variant)
  if workdir.is_primary():
    _write_outputs(config, variants, rows)
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
                                  config.eval_batch_size, keys["eval"], replicas=True)
  return Setup(model, likelihood, dataset, optax.adam(config.learning_rate), preprocess,
               test_images, test_elbo, init_params, placement)


def _variant_dir(config: Any, name: str) -> str:
  return os.path.join(config.workdir, "variants", re.sub(r"[^A-Za-z0-9_.=-]", "_", name))


def _run_variant(config: Any, setup: Setup, variant: elbo.Objective) -> dict:
  """Trains one variant's seeds as vmapped replicas (resuming), then evaluates them."""
  start = time.perf_counter()
  vdir = _variant_dir(config, variant.name)
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
      placement=setup.placement, evaluate=setup.test_elbo, name=variant.name)
  return _evaluate_variant(config, setup, variant, loss_fn, state.params, vdir,
                           setup.test_elbo(state.params), start)


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
  n = min(config.ll_examples or len(setup.test_images), len(setup.test_images))
  keys = streams(config.seed)
  subset = evaluators.test_subset(keys["ll_subset"], n, len(setup.test_images))
  log_likelihood = evaluators.LogLikelihood(setup.model, setup.likelihood,
                                            setup.test_images[subset], config.ll_samples)
  snr_batch = jax.device_put(
      {"image": setup.preprocess({"image": setup.dataset.train_images[:config.snr_batch]},
                                 keys["snr_batch"])["image"],
       "step": jnp.int32(0)})
  estimators = {e.name: elbo.make_loss(setup.model, setup.likelihood, e)
                for e in snr_estimators(config)}
  per_seed = {k: [] for k in METRICS}
  per_seed.update({f"snr/{name}/{k}": [] for name in estimators for k in SNR_METRICS})
  kl_per_dim = []
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
    values = {"test_ll": ll["log_px"], "test_nll": -ll["log_px"], "test_ll_se": ll["log_px_se"],
              "test_elbo": final["test_elbo"][s], "test_kl": final["test_kl"][s],
              "active_units": stats["active_units"], **snr, "train_s": train_s,
              "examples_per_s": ex_per_s, "wall_s": 0.0}
    for k, v in per_seed.items():
      v.append(float("nan") if values[k] is None else float(values[k]))  # None: undefined
  per_seed["wall_s"] = [time.perf_counter() - start] * config.seeds  # all seeds at once
  row = {}
  for k, v in per_seed.items():
    row[k], row[f"{k}_std"] = runner.mean_and_std(v)
  row["per_seed"] = per_seed
  row["kl_per_dim"] = kl_per_dim
  row["curve"] = [(r["epoch"], float(np.mean(r["test_elbo"])))
                  for r in records if "test_elbo" in r]
  if workdir.is_primary():
    workdir.write_json(os.path.join(vdir, "results.json"), row)
  return row


def _write_outputs(config: Any, variants, rows: dict) -> None:
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
  shown = ("test_nll", "test_elbo", "test_kl", "active_units", *SNR_METRICS[:4], "train_s",
           "wall_s")
  table = ["| variant | " + " | ".join(shown) + " |", "|---" * (len(shown) + 1) + "|"]
  for name in names:
    table.append(f"| {name} | " + " | ".join(_cell(rows[name], k) for k in shown) + " |")
  table += _estimator_snr_tables(config, names, rows)
  notes = " ".join([
      f"test_nll: -log p(x) by importance sampling with K={config.ll_samples} on",
      f"{config.ll_examples or 'all'} test examples (a fixed random subset when not all;",
      "nats; its Monte Carlo standard error is test_ll_se in results.json).",
      "test_elbo / test_kl: single-sample ELBO with closed-form KL on the whole test set",
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
