"""Outlier detection by reconstruction error: train on all classes but one, find the one.

For each class in holdout_classes, an autoencoder and a VAE (same architecture) train on
every training image of the other classes (in holdout<c>/ae/ and holdout<c>/vae/). Each
test image is then scored, higher meaning more anomalous, by
  ae_recon:  ||x - x_hat||^2 of the autoencoder,
  vae_elbo:  the VAE's negative ELBO (closed-form KL, mean over score_samples draws),
  vae_recon: ||x - x_hat||^2 of the VAE's decoded posterior mean,
and each score's AUROC and average precision for telling the held-out class (positive)
from the rest of the test set are reported. Writes results.json (keys
holdout<c>/<score>_auroc, holdout<c>/<score>_ap and their means, mean/<score>_auroc ...),
results.md, and scores_holdout<c>.png (histograms of each score, normal vs held-out).
"""

from __future__ import annotations

import os
import time
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from experiments.framework import runner
from experiments.framework.checks import Field, integer, integers
from genjax import likelihoods, models
from genjax.data import sources
from genjax.io import plotting, workdir
from genjax.losses import autoencoder, elbo
from genjax.metrics import detection

SCORES = ("ae_recon", "vae_elbo", "vae_recon")


# The fields only this experiment reads (the shared ones: experiments/framework/configuration.py).
FIELDS = {
    "holdout_classes": Field("Classes held out of training, one study each.", integers(0)),
    "score_samples": Field("Posterior samples averaged in the VAE's negative-ELBO score.",
                           integer(1)),
}


def run(config: Any) -> dict:
  """Trains (or resumes) both models per held-out class; scores, tabulates, plots."""
  wall_start = time.perf_counter()
  dataset, placement = runner.prepare(config, needs_labels=True,
                                          check=lambda d: _check_classes(config, d))
  results = {}
  for c in config.holdout_classes:
    scores = _study(config, dataset, placement, c)
    anomalous = dataset.test_labels == c
    for name, s in scores.items():
      for metric, value in detection.detection_scores(s[~anomalous], s[anomalous]).items():
        results[f"holdout{c}/{name}_{metric}"] = value
    if workdir.is_primary():
      plotting.save_histograms(
          os.path.join(config.workdir, f"scores_holdout{c}.png"),
          {name: (s[~anomalous], s[anomalous]) for name, s in scores.items()},
          labels=("other classes", f"held-out class {c}"))
  for name in SCORES:
    for metric in ("auroc", "ap"):
      results[f"mean/{name}_{metric}"] = float(np.mean(
          [results[f"holdout{c}/{name}_{metric}"] for c in config.holdout_classes]))
  results.update(epochs=config.epochs, dataset=config.dataset, data_source=dataset.source,
                 wall_s=time.perf_counter() - wall_start, device=jax.devices()[0].device_kind)
  _write_results(config, results)
  return results


def _check_classes(config: Any, dataset: sources.Dataset) -> None:
  present = set(np.unique(dataset.train_labels).tolist())
  missing = [c for c in config.holdout_classes if c not in present]
  if missing:
    raise ValueError(f"config.holdout_classes={','.join(map(str, missing))}: no such class in "
                     f"{config.dataset} (classes {min(present)}..{max(present)})")


def streams(seed: int, c: int) -> dict[str, Any]:
  """The named PRNG streams of the study holding out class c (init, state and data of each
  model; the scoring draws). Derived from seed + c as the README's table was measured."""
  keys = jax.random.split(jax.random.PRNGKey(seed + c), 7)
  return {"ae": dict(zip(("init", "state", "data"), keys[0:3])),
          "vae": dict(zip(("init", "state", "data"), keys[3:6])), "score": keys[6]}


def _study(config: Any, dataset: sources.Dataset, placement, c: int) -> dict[str, np.ndarray]:
  """Trains the AE and the VAE without class c; returns each score on every test image."""
  shape = dataset.train_images.shape[1:]
  train_data = {"image": dataset.train_images[dataset.train_labels != c]}
  preprocess = runner.make_preprocess(config.preprocess)
  root = os.path.join(config.workdir, f"holdout{c}")
  keys = streams(config.seed, c)
  x0 = (jnp.zeros((1, *shape)),)

  ae = models.build_autoencoder(config.model, shape, config.latent_dim, config.hidden,
                                config.activation)
  ae_state = runner.fit(
      config, ae, autoencoder.make_autoencoder_loss(ae, config.reconstruction), train_data, x0,
      keys["ae"], run_dir=os.path.join(root, "ae"), preprocess=preprocess, placement=placement,
      name=f"holdout{c}/ae")

  vae = models.build_vae(config.model, shape, config.latent_dim, config.hidden, shape[-1],
                         config.activation)
  likelihood = likelihoods.make_likelihood("bernoulli")
  vae_state = runner.fit(
      config, vae, elbo.make_elbo_loss(vae, likelihood), train_data, x0, keys["vae"],
      run_dir=os.path.join(root, "vae"), preprocess=preprocess, placement=placement,
      name=f"holdout{c}/vae")

  terms = elbo.make_elbo_terms(vae, likelihood)

  @jax.jit
  def score(ae_params, vae_params, x, rng):
    draws = jax.vmap(lambda k: elbo.elbo_metrics(terms(vae_params, {"image": x}, k))
                     ["elbo"])(jax.random.split(rng, config.score_samples))
    return {"ae_recon": autoencoder.reconstruction_error(
                x, ae.apply({"params": ae_params}, x), "mse"),
            "vae_elbo": -jnp.mean(draws, 0),
            "vae_recon": autoencoder.reconstruction_error(
                x, vae.apply({"params": vae_params}, x), "mse")}

  x_test = np.asarray(preprocess({"image": dataset.test_images}, keys["score"])["image"])
  batches = [score(ae_state.params, vae_state.params, x_test[i:i + config.eval_batch_size],
                   jax.random.fold_in(keys["score"], i))
             for i in range(0, len(x_test), config.eval_batch_size)]
  return {name: np.concatenate([np.asarray(b[name]) for b in batches]) for name in SCORES}


def _write_results(config: Any, results: dict) -> None:
  cols = [f"{s}_{m}" for s in SCORES for m in ("auroc", "ap")]
  table = ["| held-out class | " + " | ".join(cols) + " |", "|---" * (len(cols) + 1) + "|"]
  for c in [*config.holdout_classes, "mean"]:
    prefix = "mean" if c == "mean" else f"holdout{c}"
    table.append(f"| {c} | " + " | ".join(f"{results[f'{prefix}/{k}']:.3f}" for k in cols)
                 + " |")
  workdir.write_results(
      config.workdir, results, table=table,
      title=f"Outlier detection on {config.dataset}: one class held out of training",
      notes="Scores (higher = more anomalous) on every test image: ae_recon = ||x - x_hat||^2 "
            "of the autoencoder; vae_elbo = the VAE's negative ELBO (nats, mean over "
            f"{config.score_samples} posterior draws); vae_recon = ||x - x_hat||^2 of the "
            "VAE's decoded posterior mean. auroc: area under the ROC curve (0.5 = chance); ap: "
            "average precision with the held-out class as positives (chance = its share of "
            f"the test set, about 0.1). {config.epochs} epochs per model; figures: "
            "scores_holdout<c>.png.")


def report(results: dict, config: Any) -> str:
  with open(os.path.join(config.workdir, workdir.RESULTS_MD)) as f:
    return f.read()
