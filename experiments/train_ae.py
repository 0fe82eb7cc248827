"""Train an autoencoder or denoising autoencoder; compare its latent interpolations with a VAE's.

The AE (denoising=false) or DAE (default: the encoder sees the corruption at
noise_level, the target is the clean image) trains with the reconstruction loss; with
compare_vae a VAE of the same architecture trains beside it (in vae/). Config:
experiments/configs/train_ae.py. Writes into the workdir: config.json, metrics.jsonl, checkpoints/, reconstructions.png, denoising.png
(noisy input / output / clean image), interpolations.png (AE, VAE and pixel-space paths
between test images), results.json and results.md. Interpolations are scored by the
squared distance of their interior points to the nearest training image: a path that
leaves the data manifold decodes to images unlike any real one.
"""

from __future__ import annotations

import os
import time
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from experiments.framework import evaluators, runner
from experiments.framework.checks import Field, boolean, integer
from genjax import corruptions, likelihoods, models
from genjax.io import plotting, workdir
from genjax.losses import autoencoder, elbo
from genjax.metrics import detection
from genjax.models import protocol
from genjax.models import registry as model_registry
from genjax.training import loop

NN_REFERENCE = 10_000               # training images searched for the nearest neighbour


# The fields only this experiment reads (the shared ones: experiments/framework/configuration.py).
FIELDS = {
    "denoising": Field("Train on corrupted inputs (a denoising autoencoder); false trains a "
                       "plain autoencoder (still tested on corrupted inputs).", boolean),
    "compare_vae": Field("Also train a VAE of the same architecture (in WORKDIR/vae/) and draw "
                         "its interpolations beside the autoencoder's.", boolean),
    "interpolation_pairs": Field("Pairs of test images to interpolate between.", integer(1)),
    "interpolation_steps": Field("Points on each interpolation path, ends included.",
                                 integer(3)),
}


def run(config: Any) -> dict:
  """Trains (or resumes) the AE/DAE and the VAE, evaluates, writes every workdir file."""
  wall_start = time.perf_counter()
  corruptions.check_corruption(config.corruption, config.noise_level)
  dataset, placement = runner.prepare(config)
  shape = dataset.train_images.shape[1:]
  keys = runner.streams(config.seed, "init", "state", "data", "eval", "pairs")
  eval_rng, pair_rng = keys["eval"], keys["pairs"]
  preprocess = runner.make_preprocess(config.preprocess)
  test_batches = loop.pad_batches({"image": dataset.test_images},
                                  min(config.eval_batch_size, len(dataset.test_images)))
  train_data = {"image": dataset.train_images}

  ae = model_registry.family("autoencoder").from_config(config, shape)
  ae_eval = loop.make_eval_fn(_ae_metrics(ae, config), preprocess)
  ae_loss = autoencoder.make_autoencoder_loss(
      ae, config.reconstruction, config.corruption if config.denoising else "none",
      config.noise_level)

  def ae_test(params) -> dict[str, float]:
    return {f"test_{k}": float(v) for k, v in ae_eval(params, *test_batches, eval_rng).items()}

  ae_state = runner.fit(config, ae, ae_loss, train_data, (jnp.zeros((1, *shape)),), keys,
                        run_dir=config.workdir, preprocess=preprocess, placement=placement,
                        evaluate=ae_test, name="ae")
  results = ae_test(ae_state.params)

  ae_apply = lambda method: lambda v: ae.apply({"params": ae_state.params}, v,  # noqa: E731
                                               method=method)
  paths = {"AE": _latent_paths(ae_apply(ae.encode), ae_apply(ae.decode), dataset, config,
                               pair_rng)}
  if config.compare_vae:
    vae, vae_params, vae_results = _train_vae(config, dataset, placement, preprocess,
                                              eval_rng)
    results.update(vae_results)
    paths["VAE"] = _latent_paths(lambda v: protocol.posterior(vae, vae_params, v).mean,
                                 lambda z: protocol.decode(vae, vae_params, z), dataset,
                                 config, pair_rng)
  paths["pixels"] = _pixel_paths(dataset, config, pair_rng)
  reference = dataset.train_images[:NN_REFERENCE]
  for name, path in paths.items():
    interior = path[:, 1:-1].reshape(-1, *shape)
    results[f"{name.lower()}_interp_nn_dist"] = float(
        np.mean(detection.nearest_neighbour_distance(interior, reference)))

  if workdir.is_primary():
    _write_figures(config, ae, ae_state.params, dataset, paths, eval_rng)
  results.update(
      steps=int(ae_state.step), epochs=config.epochs, denoising=config.denoising,
      corruption=config.corruption, noise_level=config.noise_level,
      **runner.throughput(config.workdir),
      train_s=runner.train_seconds(config.workdir), wall_s=time.perf_counter() - wall_start,
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


def _ae_metrics(ae, config: Any):
  """Per-example test metrics of the autoencoder (the corruption from the eval key)."""

  def metrics(params, batch, rng):
    x = batch["image"]
    noisy = corruptions.corrupt(rng, x, config.corruption, config.noise_level)
    out, denoised = ae.apply({"params": params}, x), ae.apply({"params": params}, noisy)
    return {"recon": autoencoder.reconstruction_error(x, out, config.reconstruction),
            "mse": autoencoder.reconstruction_error(x, out, "mse"),
            "denoise_mse": autoencoder.reconstruction_error(x, denoised, "mse"),
            "noisy_mse": jnp.sum(jnp.square(noisy - x), axis=(1, 2, 3))}

  return metrics


def _train_vae(config: Any, dataset, placement, preprocess, eval_rng):
  """A Bernoulli VAE with the autoencoder's architecture, in WORKDIR/vae/."""
  shape = dataset.train_images.shape[1:]
  vae = models.build_vae(config.model, shape, config.latent_dim, config.hidden, shape[-1],
                         config.activation)
  likelihood = likelihoods.make_likelihood("bernoulli")
  # The VAE's own streams (init, state, data), as the README's table was measured.
  keys = runner.streams(config.seed + 1, "init", "state", "data")
  vae_test = evaluators.TestELBO(vae, likelihood, {"image": dataset.test_images},
                                 config.eval_batch_size, eval_rng, preprocess,
                                 prefix="vae_test_")
  state = runner.fit(config, vae, elbo.make_elbo_loss(vae, likelihood),
                     {"image": dataset.train_images}, (jnp.zeros((1, *shape)),), keys,
                     run_dir=os.path.join(config.workdir, "vae"), preprocess=preprocess,
                     placement=placement, evaluate=vae_test, name="vae")
  return vae, state.params, vae_test(state.params)


def _pairs(dataset, config: Any, rng) -> tuple[np.ndarray, np.ndarray]:
  """Two [pairs, H, W, C] arrays of distinct test images (fixed by the seed)."""
  idx = np.asarray(jax.random.permutation(rng, len(dataset.test_images)))
  n = config.interpolation_pairs
  return dataset.test_images[idx[:n]], dataset.test_images[idx[n:2 * n]]


def _latent_paths(encode, decode, dataset, config: Any, rng) -> np.ndarray:
  """Decoded straight lines between the codes of image pairs: ``encode(x) -> z`` (an
  autoencoder's code, a VAE's posterior mean), ``decode(z) -> logits``.

  Returns sigmoid(decoder output) [pairs, steps, H, W, C].
  """
  a, b = _pairs(dataset, config, rng)
  za, zb = encode(a), encode(b)
  t = jnp.linspace(0.0, 1.0, config.interpolation_steps)[None, :, None]
  z = (1 - t) * za[:, None] + t * zb[:, None]                       # [pairs, steps, latent]
  out = decode(z.reshape(-1, z.shape[-1]))
  return np.asarray(jax.nn.sigmoid(out)).reshape(*z.shape[:2], *out.shape[1:])


def _pixel_paths(dataset, config: Any, rng) -> np.ndarray:
  """The baseline: straight lines in pixel space, [pairs, steps, H, W, C]."""
  a, b = _pairs(dataset, config, rng)
  t = np.linspace(0.0, 1.0, config.interpolation_steps)[None, :, None, None, None]
  return (1 - t) * a[:, None] + t * b[:, None]


def _write_figures(config: Any, ae, params, dataset, paths, eval_rng, n: int = 10) -> None:
  x = dataset.test_images[:n]
  noisy = np.asarray(corruptions.corrupt(eval_rng, x, config.corruption, config.noise_level))
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


def report(results: dict, config: Any) -> str:
  with open(os.path.join(config.workdir, workdir.RESULTS_MD)) as f:
    return f.read()
