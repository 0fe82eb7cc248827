"""Outlier detection by reconstruction error: train on all classes but one, find the one.

For each class in --holdout_classes, an autoencoder and a VAE (same architecture) train on
every training image of the other classes (in holdout<c>/ae/ and holdout<c>/vae/). Each
test image is then scored, higher meaning more anomalous, by
  ae_recon:  ||x - x_hat||^2 of the autoencoder,
  vae_elbo:  the VAE's negative ELBO (closed-form KL, mean over --score_samples draws),
  vae_recon: ||x - x_hat||^2 of the VAE's decoded posterior mean,
and each score's AUROC and average precision for telling the held-out class (positive)
from the rest of the test set are reported. Writes results.json (keys
holdout<c>/<score>_auroc, holdout<c>/<score>_ap and their means, mean/<score>_auroc ...),
results.md, and scores_holdout<c>.png (histograms of each score, normal vs held-out).
"""

from __future__ import annotations

import dataclasses
import os
import time

from absl import app, flags
import jax
import jax.numpy as jnp
import numpy as np
import optax

from experiments import common
from genjax import data, evaluate, models, objectives, plotting, train, workdir

flags.DEFINE_list("holdout_classes", [str(c) for c in range(10)],
                  "Classes held out of training, one study each (comma-separated labels).")
flags.DEFINE_integer("score_samples", 10, "Posterior samples averaged in the VAE's "
                     "negative-ELBO score.", lower_bound=1)
flags.register_validator("holdout_classes",
                         lambda v: bool(v) and all(s.strip().isdigit() for s in v),
                         message="must be comma-separated class labels, e.g. 0,1,9")
FLAGS = flags.FLAGS

DEFAULT_PREPROCESS = "continuous"
SCORES = ("ae_recon", "vae_elbo", "vae_recon")


@dataclasses.dataclass(frozen=True)
class Config(common.ModelConfig):
  """Every flag of the run, resolved once (defaults live on the flags)."""
  reconstruction: str
  holdout_classes: tuple[int, ...]
  score_samples: int


def config_from_flags() -> Config:
  return common.config_from_flags(
      Config, preprocess=common.flag_or("preprocess", DEFAULT_PREPROCESS),
      holdout_classes=tuple(int(c) for c in FLAGS.holdout_classes))


def run(config: Config) -> dict:
  """Trains (or resumes) both models per held-out class; scores, tabulates, plots."""
  wall_start = time.perf_counter()
  dataset, placement = common.prepare_run(config, needs_labels=True,
                                          check=lambda d: _check_classes(config, d))
  results = {}
  for c in config.holdout_classes:
    scores = _study(config, dataset, placement, c)
    anomalous = dataset.test_labels == c
    for name, s in scores.items():
      for metric, value in evaluate.detection_scores(s[~anomalous], s[anomalous]).items():
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


def _check_classes(config: Config, dataset: data.Dataset) -> None:
  present = set(np.unique(dataset.train_labels).tolist())
  missing = [c for c in config.holdout_classes if c not in present]
  if missing:
    raise ValueError(f"--holdout_classes={','.join(map(str, missing))}: no such class in "
                     f"--dataset={config.dataset} (classes {min(present)}..{max(present)})")


def _study(config: Config, dataset: data.Dataset, placement, c: int) -> dict[str, np.ndarray]:
  """Trains the AE and the VAE without class c; returns each score on every test image."""
  shape = dataset.train_images.shape[1:]
  train_data = {"image": dataset.train_images[dataset.train_labels != c]}
  preprocess = common.make_preprocess(config.preprocess)
  optimizer = optax.adam(config.learning_rate)
  root = os.path.join(config.workdir, f"holdout{c}")
  keys = jax.random.split(jax.random.PRNGKey(config.seed + c), 7)
  x0 = jnp.zeros((1, *shape))

  ae = models.build_autoencoder(config.model, shape, config.latent_dim, config.hidden,
                                config.activation)
  ae_state = common.fit_and_checkpoint(
      config, train.create_train_state(ae.init(keys[0], x0)["params"], optimizer, keys[1]),
      train.make_train_step(objectives.make_autoencoder_loss(ae, config.reconstruction),
                            optimizer, placement.axis_name),
      train_data, run_dir=os.path.join(root, "ae"), data_rng=keys[2], preprocess=preprocess,
      placement=placement, name=f"holdout{c}/ae")

  vae = models.build_vae(config.model, shape, config.latent_dim, config.hidden, shape[-1],
                         config.activation)
  likelihood = objectives.make_likelihood("bernoulli")
  vae_state = common.fit_and_checkpoint(
      config, train.create_train_state(vae.init(keys[3], x0)["params"], optimizer, keys[4]),
      train.make_train_step(objectives.make_elbo_loss(vae, likelihood), optimizer,
                            placement.axis_name),
      train_data, run_dir=os.path.join(root, "vae"), data_rng=keys[5], preprocess=preprocess,
      placement=placement, name=f"holdout{c}/vae")

  terms = objectives.make_elbo_terms(vae, likelihood)

  @jax.jit
  def score(ae_params, vae_params, x, rng):
    draws = jax.vmap(lambda k: objectives.elbo_metrics(terms(vae_params, {"image": x}, k))
                     ["elbo"])(jax.random.split(rng, config.score_samples))
    return {"ae_recon": objectives.reconstruction_error(
                x, ae.apply({"params": ae_params}, x), "mse"),
            "vae_elbo": -jnp.mean(draws, 0),
            "vae_recon": objectives.reconstruction_error(
                x, vae.apply({"params": vae_params}, x), "mse")}

  x_test = np.asarray(preprocess({"image": dataset.test_images}, keys[6])["image"])
  batches = [score(ae_state.params, vae_state.params, x_test[i:i + config.eval_batch_size],
                   jax.random.fold_in(keys[6], i))
             for i in range(0, len(x_test), config.eval_batch_size)]
  return {name: np.concatenate([np.asarray(b[name]) for b in batches]) for name in SCORES}


def _write_results(config: Config, results: dict) -> None:
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


def main(argv: list[str]) -> None:
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
  common.run_or_exit("anomaly", run, config_from_flags())
  if workdir.is_primary():
    print(open(os.path.join(FLAGS.workdir, workdir.RESULTS_MD)).read())
