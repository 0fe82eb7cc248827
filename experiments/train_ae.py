"""Train an autoencoder or denoising autoencoder; compare its latent interpolations with a VAE's.

The AE (--denoising=false) or DAE (default: the encoder sees --corruption at
--noise_level, the target is the clean image) trains with the --reconstruction loss;
with --compare_vae a VAE of the same architecture trains beside it (in vae/). Writes into
--workdir: config.json, metrics.jsonl, checkpoints/, reconstructions.png, denoising.png
(noisy input / output / clean image), interpolations.png (AE, VAE and pixel-space paths
between test images), results.json and results.md. Interpolations are scored by the
squared distance of their interior points to the nearest training image: a path that
leaves the data manifold decodes to images unlike any real one.
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

flags.DEFINE_bool("denoising", True, "Train on corrupted inputs (a denoising autoencoder); "
                  "--nodenoising trains a plain autoencoder (still tested on corrupted inputs).")
flags.DEFINE_bool("compare_vae", True, "Also train a VAE of the same architecture (in "
                  "WORKDIR/vae/) and draw its interpolations beside the autoencoder's.")
flags.DEFINE_integer("interpolation_pairs", 8, "Pairs of test images to interpolate between.",
                     lower_bound=1)
flags.DEFINE_integer("interpolation_steps", 10, "Points on each interpolation path, ends "
                     "included.", lower_bound=3)
FLAGS = flags.FLAGS

DEFAULT_PREPROCESS = "continuous"   # grey levels: the autoencoder's target is the image itself
NN_REFERENCE = 10_000               # training images searched for the nearest neighbour


@dataclasses.dataclass(frozen=True)
class Config(common.ModelConfig):
  """Every flag of the run, resolved once (defaults live on the flags)."""
  reconstruction: str
  corruption: str
  noise_level: float
  denoising: bool
  compare_vae: bool
  interpolation_pairs: int
  interpolation_steps: int


def config_from_flags() -> Config:
  return common.config_from_flags(
      Config, preprocess=common.flag_or("preprocess", DEFAULT_PREPROCESS))


def run(config: Config) -> dict:
  """Trains (or resumes) the AE/DAE and the VAE, evaluates, writes every workdir file."""
  wall_start = time.perf_counter()
  data.check_corruption(config.corruption, config.noise_level)
  dataset, placement = common.prepare_run(config)
  shape = dataset.train_images.shape[1:]
  init_rng, state_rng, data_rng, eval_rng, pair_rng = jax.random.split(
      jax.random.PRNGKey(config.seed), 5)
  preprocess = common.make_preprocess(config.preprocess)
  optimizer = optax.adam(config.learning_rate)
  test_batches = train.pad_batches({"image": dataset.test_images},
                                   min(config.eval_batch_size, len(dataset.test_images)))
  train_data = {"image": dataset.train_images}

  ae = models.build_autoencoder(config.model, shape, config.latent_dim, config.hidden,
                                config.activation)
  ae_eval = train.make_eval_fn(_ae_metrics(ae, config), preprocess)
  ae_loss = objectives.make_autoencoder_loss(
      ae, config.reconstruction, config.corruption if config.denoising else "none",
      config.noise_level)
  ae_state = train.create_train_state(
      ae.init(init_rng, jnp.zeros((1, *shape)))["params"], optimizer, state_rng)

  def ae_test(params) -> dict[str, float]:
    return {f"test_{k}": float(v) for k, v in ae_eval(params, *test_batches, eval_rng).items()}

  ae_state = common.fit_and_checkpoint(
      config, ae_state, train.make_train_step(ae_loss, optimizer, placement.axis_name),
      train_data, run_dir=config.workdir, data_rng=data_rng, preprocess=preprocess,
      placement=placement, evaluate=ae_test, name="ae")
  results = ae_test(ae_state.params)

  paths = {"AE": _latent_paths(ae, ae_state.params, dataset, config, pair_rng)}
  if config.compare_vae:
    vae, vae_params, vae_results = _train_vae(config, dataset, placement, preprocess,
                                              test_batches, eval_rng)
    results.update(vae_results)
    paths["VAE"] = _latent_paths(vae, vae_params, dataset, config, pair_rng)
  paths["pixels"] = _pixel_paths(dataset, config, pair_rng)
  reference = dataset.train_images[:NN_REFERENCE]
  for name, path in paths.items():
    interior = path[:, 1:-1].reshape(-1, *shape)
    results[f"{name.lower()}_interp_nn_dist"] = float(
        np.mean(evaluate.nearest_neighbour_distance(interior, reference)))

  if workdir.is_primary():
    _write_figures(config, ae, ae_state.params, dataset, paths, eval_rng)
  results.update(
      steps=int(ae_state.step), epochs=config.epochs, denoising=config.denoising,
      corruption=config.corruption, noise_level=config.noise_level,
      examples_per_s=common.steady_examples_per_s(config.workdir),
      train_s=common.train_seconds(config.workdir), wall_s=time.perf_counter() - wall_start,
      num_params=int(sum(x.size for x in jax.tree.leaves(ae_state.params))),
      dataset=config.dataset, data_source=dataset.source, device=jax.devices()[0].device_kind)
  kind = "denoising autoencoder" if config.denoising else "autoencoder"
  workdir.write_results(
      config.workdir, results, title=f"{kind} on {config.dataset} ({config.model})",
      notes="Per test image, summed over pixels: test_mse = ||x - x_hat||^2 from the clean "
            "input; test_denoise_mse = ||x - x_hat||^2 from the corrupted input "
            f"({config.corruption}, level {config.noise_level}); test_noisy_mse = ||x - x~||^2 "
            "(the corruption itself, for scale); test_recon: the training loss "
            f"({config.reconstruction}) on clean inputs. *_interp_nn_dist: mean squared "
            "distance from interior points of the interpolation paths to the nearest of "
            f"{NN_REFERENCE} training images (lower: closer to real images).")
  return results


def _ae_metrics(ae, config: Config):
  """Per-example test metrics of the autoencoder (the corruption from the eval key)."""

  def metrics(params, batch, rng):
    x = batch["image"]
    noisy = data.corrupt(rng, x, config.corruption, config.noise_level)
    out, denoised = ae.apply({"params": params}, x), ae.apply({"params": params}, noisy)
    return {"recon": objectives.reconstruction_error(x, out, config.reconstruction),
            "mse": objectives.reconstruction_error(x, out, "mse"),
            "denoise_mse": objectives.reconstruction_error(x, denoised, "mse"),
            "noisy_mse": jnp.sum(jnp.square(noisy - x), axis=(1, 2, 3))}

  return metrics


def _train_vae(config: Config, dataset, placement, preprocess, test_batches, eval_rng):
  """A Bernoulli VAE with the autoencoder's architecture, in WORKDIR/vae/."""
  shape = dataset.train_images.shape[1:]
  vae = models.build_vae(config.model, shape, config.latent_dim, config.hidden, shape[-1],
                         config.activation)
  likelihood = objectives.make_likelihood("bernoulli")
  init_rng, state_rng, data_rng = jax.random.split(jax.random.PRNGKey(config.seed + 1), 3)
  optimizer = optax.adam(config.learning_rate)
  state = train.create_train_state(vae.init(init_rng, jnp.zeros((1, *shape)))["params"],
                                   optimizer, state_rng)
  terms = objectives.make_elbo_terms(vae, likelihood)
  elbo_eval = train.make_eval_fn(lambda p, b, r: objectives.elbo_metrics(terms(p, b, r)),
                                 preprocess)

  def vae_test(params) -> dict[str, float]:
    return {f"vae_test_{k}": float(v)
            for k, v in elbo_eval(params, *test_batches, eval_rng).items()}

  step = train.make_train_step(objectives.make_elbo_loss(vae, likelihood), optimizer,
                               placement.axis_name)
  state = common.fit_and_checkpoint(
      config, state, step, {"image": dataset.train_images},
      run_dir=os.path.join(config.workdir, "vae"), data_rng=data_rng, preprocess=preprocess,
      placement=placement, evaluate=vae_test, name="vae")
  return vae, state.params, vae_test(state.params)


def _pairs(dataset, config: Config, rng) -> tuple[np.ndarray, np.ndarray]:
  """Two [pairs, H, W, C] arrays of distinct test images (fixed by the seed)."""
  idx = np.asarray(jax.random.permutation(rng, len(dataset.test_images)))
  n = config.interpolation_pairs
  return dataset.test_images[idx[:n]], dataset.test_images[idx[n:2 * n]]


def _latent_paths(model, params, dataset, config: Config, rng) -> np.ndarray:
  """Decoded straight lines between the codes (a VAE's posterior means) of image pairs.

  Returns sigmoid(decoder output) [pairs, steps, H, W, C].
  """
  a, b = _pairs(dataset, config, rng)
  apply = lambda method, v: model.apply({"params": params}, v, method=method)   # noqa: E731
  za, zb = apply(model.encode, a), apply(model.encode, b)
  za, zb = (za[0], zb[0]) if isinstance(za, tuple) else (za, zb)
  t = jnp.linspace(0.0, 1.0, config.interpolation_steps)[None, :, None]
  z = (1 - t) * za[:, None] + t * zb[:, None]                       # [pairs, steps, latent]
  out = apply(model.decode, z.reshape(-1, z.shape[-1]))
  return np.asarray(jax.nn.sigmoid(out)).reshape(*z.shape[:2], *out.shape[1:])


def _pixel_paths(dataset, config: Config, rng) -> np.ndarray:
  """The baseline: straight lines in pixel space, [pairs, steps, H, W, C]."""
  a, b = _pairs(dataset, config, rng)
  t = np.linspace(0.0, 1.0, config.interpolation_steps)[None, :, None, None, None]
  return (1 - t) * a[:, None] + t * b[:, None]


def _write_figures(config: Config, ae, params, dataset, paths, eval_rng, n: int = 10) -> None:
  x = dataset.test_images[:n]
  noisy = np.asarray(data.corrupt(eval_rng, x, config.corruption, config.noise_level))
  out = lambda v: np.asarray(jax.nn.sigmoid(ae.apply({"params": params}, v)))  # noqa: E731
  plotting.save_reconstructions(os.path.join(config.workdir, "reconstructions.png"), x, out(x),
                                ncols=n)
  plotting.save_image_rows(
      os.path.join(config.workdir, "denoising.png"),
      {"noisy input": noisy, "output": out(noisy), "clean": x},
      title=f"{config.corruption} corruption, level {config.noise_level}")
  rows = {f"{p + 1} {name}": path[p] for p in range(min(4, config.interpolation_pairs))
          for name, path in paths.items()}
  plotting.save_image_rows(os.path.join(config.workdir, "interpolations.png"), rows,
                           title="interpolations between test images, per pair: "
                                 + ", ".join(paths))


def main(argv: list[str]) -> None:
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
  common.run_or_exit("train_ae", run, config_from_flags())
  if workdir.is_primary():
    print(open(os.path.join(FLAGS.workdir, workdir.RESULTS_MD)).read())
