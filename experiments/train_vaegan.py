"""Train a VAE-GAN (Larsen et al. 2016): a VAE that reconstructs in a GAN discriminator's features.

The encoder, the decoder (the DCGAN's generator) and the discriminator each minimize their
own loss (``genjax.losses.vaegan``, Algorithm 1: all three updated from one forward pass),
each with its own Adam. Adam (b1 = 0.5, as the DCGAN here) replaces the paper's RMSProp:
it is the optimizer this codebase's GAN settings were measured with, and with b1 = 0 it
would be RMSProp with bias correction. Config: experiments/configs/train_vaegan.py. Writes
into the workdir: config.json, metrics.jsonl (+ tensorboard/), checkpoints/ (the three
networks and their optimizer states), reconstructions.png (test images and Dec(E_q[z|x])),
samples.png (the decoder on 64 prior draws z ~ N(0, I)), curves.png (the VAE terms; the GAN
losses; D(x), D(Dec(z)) and D(Dec(z_p)) against the step), results.json and results.md (the
last chunk's losses and D outputs, the test set's KL, feature-space and pixel
reconstruction errors, sample quality in the reference classifier's feature space,
throughput).
"""

from __future__ import annotations

import os
import time
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax

from experiments.framework import runner
from experiments.framework.checks import Field, integer, number
from genjax import models
from genjax.io import plotting, workdir
from genjax.losses import vaegan as vaegan_losses
from genjax.models import protocol, vaegan
from genjax.models import registry as model_registry
from genjax.training import loop

ADAM_BETAS = (0.5, 0.999)     # Radford et al. 2016, Sec. 4 (train_gan's)
GRID_SAMPLES = 64             # prior draws in samples.png
RECONSTRUCTED = 32            # test images in reconstructions.png
TRAIN_KEYS = ("kl", "feature_nll", "pixel_sq_error", "d_loss", "g_loss", "encoder_loss",
              "decoder_loss", "d_real", "d_recon", "d_fake")


# The fields only this experiment reads (the shared ones: experiments/framework/configuration.py).
FIELDS = {
    "vaegan_gamma": Field("Weight gamma of the feature-space reconstruction error L_llike in the "
                          "VAE-GAN decoder's loss gamma L_llike - L_GAN (content against style; "
                          "Larsen et al. 2016, Algorithm 1).", number(0.0)),
    "feature_layer": Field("The discriminator's conv layer l whose features Dis_l(x) the VAE-GAN "
                           "reconstructs (1: first, 2: second).",
                           integer(min(vaegan.FEATURE_LAYERS), max(vaegan.FEATURE_LAYERS))),
    "e_learning_rate": Field("Encoder Adam learning rate.", number(0.0, strict=True)),
}


def run(config: Any) -> dict:
  """Trains (or resumes); writes every workdir file; returns the results."""
  wall_start = time.perf_counter()
  dataset, placement = runner.prepare(config, check=lambda ds: _check_images(config, ds))
  image_shape = dataset.train_images.shape[1:]
  model = model_registry.family("vaegan").from_config(config, image_shape)
  keys = runner.streams(config.seed, "init", "state", "data", "eval", "figures", "quality")
  loss_fn = vaegan_losses.make_vaegan_loss(model, config.vaegan_gamma, config.feature_layer)
  preprocess = runner.make_preprocess(config.preprocess)
  test = TestMetrics(model, config.feature_layer, dataset.test_images, config.eval_batch_size,
                     keys["eval"], preprocess)
  state = runner.fit(config, model, loss_fn, {"image": dataset.train_images},
                     (jnp.zeros((1, *image_shape), jnp.float32),), keys,
                     run_dir=config.workdir, preprocess=preprocess, placement=placement,
                     optimizer=make_optimizer(config), evaluate=test, name="train_vaegan")

  final = test(state.params)
  quality = {}
  if config.quality_samples:
    quality = runner.sample_quality(config, dataset, generate(
        model, state.params, keys["quality"], config.quality_samples))
  if workdir.is_primary():
    _write_figures(config, model, state.params, dataset, keys["figures"])
  results = {**_last_train_metrics(config.workdir), **final, **quality,
             **runner.run_info(config, state, dataset, placement, wall_start),
             **{f"{p}_num_params": runner.count_params(state.params[p])
                for p in vaegan.PLAYERS}}
  workdir.write_results(
      config.workdir, results,
      title=f"VAE-GAN on {config.dataset} (gamma={config.vaegan_gamma:g}, "
            f"Dis_{config.feature_layer} features)",
      notes="kl, feature_nll (L_llike: -log N(Dis_l(x); Dis_l(Dec(z)), I), nats per example "
            "in the discriminator's feature space), pixel_sq_error (||x - Dec(z)||^2, summed "
            "over pixels), d_loss (-L_GAN), g_loss (the decoder's non-saturating GAN term) "
            "and d_real / d_recon / d_fake = mean sigmoid(Dis) of x, Dec(z), z ~ q(z|x), and "
            "Dec(z_p), z_p ~ N(0, I), are means over the last chunk of training steps; "
            "test_* are the final networks on the test set, with test_pixel_sq_error the "
            "reconstruction error of Dec(E_q[z|x]) (test_feature_nll depends on the final "
            "discriminator: compare it within a run only). sample_* score quality_samples "
            "decoded prior draws with the cached reference classifier "
            "(genjax.metrics.sample_quality; data_fd: real training images, the floor). "
            "examples_per_s excludes each process's first (compiling) chunk; wall_s is "
            "this invocation's wall time, train_s the time in training steps over every "
            "invocation of the run.")
  return results


def make_optimizer(config: Any) -> optax.GradientTransformation:
  """One Adam per player (b1 = 0.5), each at its own learning rate: e_learning_rate
  (encoder), g_learning_rate (decoder), d_learning_rate (discriminator), applied to the
  parameter entry of that name (``optax.multi_transform``)."""
  rates = {"encoder": config.e_learning_rate, "decoder": config.g_learning_rate,
           "discriminator": config.d_learning_rate}
  labels = lambda params: {k: jax.tree.map(lambda _, k=k: k, v)   # noqa: E731
                           for k, v in params.items()}
  return optax.multi_transform({p: optax.adam(rates[p], *ADAM_BETAS) for p in vaegan.PLAYERS},
                               labels)


def _check_images(config: Any, dataset) -> None:
  try:
    models.build_vaegan(dataset.train_images.shape[1:], config.latent_dim, config.hidden,
                        config.gan_width)
  except ValueError as e:
    raise ValueError(f"config.dataset={config.dataset}: {e}") from None


class TestMetrics:
  """The final (or current) networks on ``images``: ``test_kl``, ``test_feature_nll`` (one
  z ~ q(z|x) each), ``test_pixel_sq_error`` (||x - Dec(E_q[z|x])||^2, summed over pixels),
  ``test_d_real`` and ``test_d_fake`` (mean D(x) and D(Dec(z_p))): means over every image,
  evaluated ``batch_size`` at a time with key ``rng`` (the same draws at every call)."""

  def __init__(self, model, feature_layer: int, images: np.ndarray, batch_size: int,
               rng: jax.Array, preprocess=loop.identity_preprocess):
    def metrics(params, batch, key):
      x = batch["image"]
      terms = vaegan_losses.vaegan_terms(model, params, x, key, feature_layer)
      recon = protocol.decode(model, params, protocol.posterior(model, params, x).mean)
      return {"kl": terms["kl"], "feature_nll": terms["feature_nll"],
              "pixel_sq_error": jnp.sum(jnp.square(x - recon).reshape(x.shape[0], -1), -1),
              "d_real": jax.nn.sigmoid(terms["real_logits"]),
              "d_fake": jax.nn.sigmoid(terms["prior_logits"])}

    self._evaluate = loop.make_eval_fn(metrics, preprocess)
    self._batches = loop.pad_batches({"image": images}, min(batch_size, len(images)))
    self._rng = rng

  def __call__(self, params: Any) -> dict[str, float]:
    out = jax.device_get(self._evaluate(params, *self._batches, self._rng))
    return {f"test_{k}": float(v) for k, v in out.items()}


def generate(model, params, rng: jax.Array, num: int, batch_size: int = 1000) -> np.ndarray:
  """``num`` decoded prior draws Dec(z_p), z_p ~ N(0, I), ``batch_size`` at a time:
  [num, H, W, C]."""
  batch_size = min(batch_size, num)

  @jax.jit
  def one(key):
    return protocol.decode(model, params, protocol.sample_prior(model, params, key, batch_size))

  out = [np.asarray(one(jax.random.fold_in(rng, i))) for i in range(-(-num // batch_size))]
  return np.concatenate(out)[:num]


def _write_figures(config: Any, model, params, dataset, rng: jax.Array) -> None:
  plotting.save_image_grid(os.path.join(config.workdir, "samples.png"),
                           generate(model, params, rng, GRID_SAMPLES),
                           title=f"Dec(z_p), {GRID_SAMPLES} draws z_p ~ N(0, I)")
  inputs = dataset.test_images[:RECONSTRUCTED]
  recon = jax.jit(lambda x: protocol.decode(model, params,
                                            protocol.posterior(model, params, x).mean))(inputs)
  plotting.save_reconstructions(os.path.join(config.workdir, "reconstructions.png"), inputs,
                                np.asarray(recon))
  _save_curves(os.path.join(config.workdir, "curves.png"), workdir.read_metrics(config.workdir))


def _last_train_metrics(run_dir: str) -> dict[str, float]:
  """The last logged chunk's training metrics (NaN before any chunk was logged here)."""
  train_records = [r for r in workdir.read_metrics(run_dir) if "d_loss" in r]
  last = train_records[-1] if train_records else {}
  return {k: float(last.get(k, float("nan"))) for k in TRAIN_KEYS}


def _save_curves(path: str, records: list[dict]) -> None:
  """Three panels against the step: the VAE terms (log scale), the GAN losses, and the
  discriminator's outputs (training batches; test images at each evaluation)."""
  plotting.save_metric_panels(path, records, (
      (("kl", "feature_nll", "pixel_sq_error", "test_feature_nll", "test_pixel_sq_error"),
       "nats / squared error per example", "log"),
      (("d_loss", "g_loss"), "loss", "linear"),
      (("d_real", "d_recon", "d_fake", "test_d_real", "test_d_fake"), "sigmoid(Dis)",
       "linear")))


def report(results: dict, config: Any) -> str:
  quality = f"sample_fd {results['sample_fd']:.2f}; " if "sample_fd" in results else ""
  return (f"test KL {results['test_kl']:.2f}, test pixel error "
          f"{results['test_pixel_sq_error']:.2f}; D(x) {results['d_real']:.2f}, D(Dec(z_p)) "
          f"{results['d_fake']:.2f}; {quality}"
          f"{runner.format_rate(results['examples_per_s'])} examples/s; "
          f"wall {results['wall_s']:.0f} s; results in {config.workdir}/results.md")
