"""Train a VQ-VAE (discrete codes) and a PixelCNN prior over its codes, then sample from them.

Phase 1 trains the VQ-VAE (genjax/models/vqvae.py; loss and EMA codebook in
genjax/losses/vq.py; train state and step in genjax/training/vq_step.py) on the
binarized images (grey levels or colour with preprocess=continuous, e.g. cifar10, whose
code grid is 8x8). Phase 2 (in prior/, its own checkpoints and metrics) trains a
masked-convolution PixelCNN (genjax/models/pixelcnn.py) on the codes the trained VQ-VAE
gives the freshly binarized training images. Samples: code grids drawn position by
position from the PixelCNN, decoded. Config: experiments/configs/train_vqvae.py. Writes
into the workdir: config.json, metrics.jsonl (+ tensorboard/), checkpoints/ (parameters,
optimizer state and the EMA codebook statistics), prior/ (the same for the prior),
reconstructions.png, samples.png, results.json and results.md (test reconstruction, codebook
usage and perplexity, the prior's test NLL, the bound they make on log p(x), sample quality
in a reference classifier's feature space, throughput).
"""

from __future__ import annotations

import json
import math
import os
import time
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax

from experiments.framework import configuration, runner
from experiments.framework.checks import Field, choice, integer, number, unit_interval
from genjax import likelihoods
from genjax.data import registry
from genjax.io import plotting, workdir
from genjax.losses import vq
from genjax.models import pixelcnn
from genjax.models import registry as model_registry
from genjax.training import loop, vq_step

GRID_SAMPLES = 64         # prior samples in samples.png
RECON_IMAGES = 32         # test images in reconstructions.png
SAMPLE_BATCH = 500        # code grids drawn per compiled sampling call
PRIOR_OF = "vqvae.json"   # in prior/: the VQ-VAE step whose codes the prior learned

# The fields only this experiment reads (the shared ones: experiments/framework/configuration.py).
FIELDS = {
    "vq_width": Field("Channels of the VQ-VAE's convolutions (encoder and decoder).",
                      integer(1)),
    "codebook_size": Field("Codes K in the VQ-VAE's codebook (the categories of each grid "
                           "position).", integer(2)),
    "code_dim": Field("Dimension D of each codebook vector (and of the encoder's output).",
                      integer(1)),
    "commitment_cost": Field("Weight beta of the commitment loss beta ||z_e - sg[e]||^2 "
                             "(van den Oord et al. 2017 use 0.25).", number(0.0)),
    "codebook_update": Field("How the codebook learns: loss (the codebook loss ||sg[z_e] - "
                             "e||^2, by Adam) or ema (exponential moving averages of the codes' "
                             "counts and sums, Appendix A.1).", choice(vq.CODEBOOK_UPDATES)),
    "ema_decay": Field("codebook_update=ema: decay gamma of the moving averages, in [0, 1).",
                       unit_interval),
    "prior_epochs": Field("Epochs of the PixelCNN prior on the trained VQ-VAE's codes.",
                          integer(1)),
    "prior_layers": Field("Residual masked (type B) 3x3 layers of the PixelCNN prior, after "
                          "its 5x5 type A layer.", integer(0)),
    "prior_width": Field("Channels of the PixelCNN prior's layers.", integer(1)),
}


READ_IF = {
    "ema_decay": configuration.ReadIf(lambda c: c.codebook_update == "ema",
                                      "codebook_update=ema"),
}


def _supported_dataset(config: Any) -> str | None:
  """The VQ-VAE halves the image twice: each side must be a multiple of 4."""
  height, width, _ = registry.get(config.dataset).shape()
  if height % 4 or width % 4:
    fits = [n for n in registry.names() if all(s % 4 == 0 for s in registry.get(n).shape()[:2])]
    return (f"config.dataset={config.dataset}: train_vqvae needs image sides that are "
            f"multiples of 4 (got {height}x{width}); e.g. {', '.join(fits)}")


CHECKS = (_supported_dataset,)


def run(config: Any) -> dict:
  """Trains (or resumes) the VQ-VAE, then its prior; writes every workdir file; returns
  the results."""
  wall_start = time.perf_counter()
  prior_dir = os.path.join(config.workdir, "prior")
  dataset, placement = runner.prepare(config, check=lambda ds: _check_prior_dir(
      prior_dir, config.epochs * loop.steps_per_epoch(len(ds.train_images), config.batch_size)))
  image_shape = dataset.train_images.shape[1:]
  grid = (image_shape[0] // 4, image_shape[1] // 4)
  likelihood = likelihoods.make_likelihood("bernoulli")
  model = model_registry.family("vqvae").from_config(config, image_shape)
  keys = runner.streams(config.seed, "init", "state", "data", "eval", "prior_init",
                        "prior_state", "prior_data", "samples")
  preprocess = runner.make_preprocess(config.preprocess)
  test_batches = loop.pad_batches({"image": dataset.test_images},
                                  min(config.eval_batch_size, len(dataset.test_images)))
  train_data = {"image": dataset.train_images}

  # Phase 1: the VQ-VAE.
  params = jax.jit(model.init)(keys["init"], jnp.zeros((1, *image_shape)))["params"]
  optimizer = vq_step.make_optimizer(optax.adam(config.learning_rate), params,
                                     config.codebook_update)
  state = vq_step.create_vq_train_state(params, optimizer, keys["state"])
  loss_fn = vq.make_vqvae_loss(model, likelihood, config.commitment_cost,
                               config.codebook_update)
  ema_decay = config.ema_decay if config.codebook_update == "ema" else None
  step = vq_step.make_vq_train_step(loss_fn, optimizer, config.codebook_update, ema_decay,
                                    axis_name=placement.axis_name)
  vq_test = _make_vq_test(model, likelihood, preprocess, test_batches, keys["eval"])
  state = runner.train(config, state, step, train_data, run_dir=config.workdir,
                       data_rng=keys["data"], preprocess=preprocess, placement=placement,
                       evaluate=vq_test, name="vqvae")
  vq_params = jax.device_get(state.params)   # host arrays: constants of the prior's step
  results = vq_test(vq_params)

  # Phase 2: the PixelCNN prior over the codes of the trained VQ-VAE.
  if workdir.is_primary():
    os.makedirs(prior_dir, exist_ok=True)
    workdir.write_json(os.path.join(prior_dir, PRIOR_OF), {"vqvae_step": int(state.step)})
  prior = model_registry.family("pixelcnn").from_config(config)
  encode_codes = lambda x: model.apply({"params": vq_params}, x,  # noqa: E731
                                       method=model.encode_codes)
  prior_test = _make_prior_test(prior, encode_codes, preprocess, test_batches, keys["eval"])
  prior_state = runner.fit(
      config, prior, vq.make_prior_loss(prior, encode_codes), train_data,
      (jnp.zeros((1, *grid), jnp.int32),),
      {"init": keys["prior_init"], "state": keys["prior_state"], "data": keys["prior_data"]},
      run_dir=prior_dir, preprocess=preprocess,
      placement=placement, evaluate=prior_test, epochs=config.prior_epochs, name="prior")
  results.update(prior_test(prior_state.params))
  results["prior_bits_per_dim"] = results["prior_test_nll"] / (grid[0] * grid[1] * math.log(2))
  results["test_elbo"] = -(results["test_recon"] + results["prior_test_nll"])

  # One set of samples: the first GRID_SAMPLES are drawn, the first quality_samples scored.
  samples = _generate(model, vq_params, prior, prior_state.params, grid, keys["samples"],
                      max(config.quality_samples, GRID_SAMPLES))
  if config.quality_samples:
    results.update(runner.sample_quality(config, dataset, samples[:config.quality_samples]))
  if workdir.is_primary():
    _write_figures(config, model, vq_params, dataset, samples[:GRID_SAMPLES])
  results.update(**runner.run_info(config, state, dataset, placement, wall_start),
                 prior_epochs=config.prior_epochs, prior_steps=int(prior_state.step),
                 prior_num_params=runner.count_params(prior_state.params),
                 prior_train_s=runner.train_seconds(prior_dir))
  workdir.write_results(
      config.workdir, results,
      title=f"VQ-VAE + PixelCNN prior on {config.dataset} ({config.codebook_size} codes of "
            f"dimension {config.code_dim}, codebook by {config.codebook_update})",
      notes="Per test example, in nats: test_recon = -log p(x|z_q) (Bernoulli, summed over "
            f"pixels), test_commitment = ||z_e - e||^2 (summed over the {grid[0]}x{grid[1]} "
            "grid and the code dimension); codebook_usage: the fraction of codes used on the "
            "test set, codebook_perplexity: exp(H(p)) of the test set's average code "
            "distribution p. prior_test_nll = -log p(k) of the test images' code grids under "
            "the PixelCNN (nats per grid; prior_bits_per_dim per grid position); test_elbo = "
            "-(test_recon + prior_test_nll), a lower bound on log p(x) (q(k|x) is a point "
            f"mass, so KL(q || p) = -log p(k)), on the same {_test_images(config)}. "
            "sample_* score quality_samples decoded prior samples (means of p(x|z)) with the "
            "cached reference classifier (genjax.metrics.sample_quality; data_fd: real "
            "training images, the floor). steps, num_params, examples_per_s and train_s are the "
            "VQ-VAE's (prior_*: the prior's); examples_per_s excludes each process's first "
            "(compiling) chunk; wall_s is this invocation's wall time.")
  return results


def _test_images(config: Any) -> str:
  """The images test_elbo is computed on, for results.md: binarized ones, whose log p(x) it
  bounds, or continuous ones (grey levels, colour), of which the Bernoulli is no density."""
  if config.preprocess == "continuous":
    return ("test images kept continuous, of which a Bernoulli p(x|z_q) is no density: "
            "test_recon is then a cross-entropy and test_elbo no bound")
  return "binarized test images"


def _check_prior_dir(prior_dir: str, vq_steps: int) -> None:
  """A prior already in ``prior_dir`` was trained on the codes of the VQ-VAE at the step its
  ``PRIOR_OF`` records: resuming it is right only when this run's VQ-VAE ends at that same
  step (``vq_steps``). Otherwise (epochs changed since) a one-line ValueError, before any
  training: the prior would have learned another VQ-VAE's codes."""
  path = os.path.join(prior_dir, PRIOR_OF)
  if not os.path.exists(path):
    return
  with open(path) as f:
    trained_on = json.load(f).get("vqvae_step")
  if trained_on != vq_steps:
    raise ValueError(f"{prior_dir} holds a prior trained on the VQ-VAE's codes at step "
                     f"{trained_on}, but this run's VQ-VAE ends at step {vq_steps} (epochs "
                     f"changed): remove {prior_dir} to train the prior again on the new codes")


def _make_vq_test(model, likelihood, preprocess, test_batches, rng):
  """``test(params) -> {test_recon, test_commitment, codebook_usage, codebook_perplexity}``
  on the test set (binarized with ``rng``: the same images at every evaluation)."""

  def metrics(params, batch, rng):
    del rng
    out = model.apply({"params": params}, batch["image"])
    _, commitment = vq.vq_terms(out.z_e, out.e)
    return {"recon": -likelihood.log_prob(batch["image"], out.logits),
            "commitment": commitment,
            "code_distribution": vq.code_distribution(out.codes, model.codebook_size)}

  evaluate = loop.make_eval_fn(metrics, preprocess)

  def test(params) -> dict[str, float]:
    means = jax.device_get(evaluate(params, *test_batches, rng))
    p = means["code_distribution"]
    return {"test_recon": float(means["recon"]), "test_commitment": float(means["commitment"]),
            "codebook_usage": float(vq.codebook_usage(p)),
            "codebook_perplexity": float(vq.perplexity(p))}

  return test


def _make_prior_test(prior, encode_codes, preprocess, test_batches, rng):
  """``test(params) -> {prior_test_nll}``: -log p(k) of the test set's codes (nats per code
  grid), on the images ``_make_vq_test`` binarizes with the same ``rng``."""

  def metrics(params, batch, rng):
    del rng
    codes = encode_codes(batch["image"])
    return {"nll": vq.prior_nll(prior.apply({"params": params}, codes), codes)}

  evaluate = loop.make_eval_fn(metrics, preprocess)
  return lambda params: {"prior_test_nll": float(evaluate(params, *test_batches, rng)["nll"])}


def _generate(model, vq_params, prior, prior_params, grid: tuple[int, int], rng: jax.Array,
              num: int) -> np.ndarray:
  """``num`` images [num, H, W, C]: code grids drawn from the prior (``pixelcnn.sample``),
  decoded to the means sigmoid(logits) of p(x|z_q); min(num, ``SAMPLE_BATCH``) grids per
  compiled call, call b with ``fold_in(rng, b)``."""
  batch = min(num, SAMPLE_BATCH)

  @jax.jit
  def one(key):
    codes = pixelcnn.sample(prior, prior_params, key, batch, grid)
    return jax.nn.sigmoid(model.apply({"params": vq_params}, codes, method=model.decode_codes))

  out = [np.asarray(one(jax.random.fold_in(rng, b))) for b in range(-(-num // batch))]
  return np.concatenate(out)[:num]


def _write_figures(config: Any, model, params, dataset, samples: np.ndarray) -> None:
  plotting.save_image_grid(os.path.join(config.workdir, "samples.png"), samples,
                           title=f"{len(samples)} PixelCNN prior samples, decoded (means)")
  inputs = dataset.test_images[:RECON_IMAGES]
  recon = jax.nn.sigmoid(model.apply({"params": params}, inputs).logits)
  plotting.save_reconstructions(os.path.join(config.workdir, "reconstructions.png"), inputs,
                                np.asarray(recon))


def report(results: dict, config: Any) -> str:
  quality = f"sample_fd {results['sample_fd']:.2f}; " if "sample_fd" in results else ""
  return (f"test recon {results['test_recon']:.2f} nats, codebook usage "
          f"{results['codebook_usage']:.2f}, perplexity {results['codebook_perplexity']:.1f}; "
          f"prior NLL {results['prior_test_nll']:.2f} nats per grid; test ELBO "
          f"{results['test_elbo']:.2f}; {quality}"
          f"{runner.format_rate(results['examples_per_s'])} examples/s; "
          f"wall {results['wall_s']:.0f} s; results in {config.workdir}/results.md")
