"""Train a DCGAN (minimax, non-saturating or hinge loss; optional R1, top-k) and watch its samples.

Top-k: the generator's loss on the samples D rates most real (Sinha et al. 2020).

One step updates the discriminator, then the generator against the updated
discriminator, each with its own Adam (b1 = 0.5, as in DCGAN). Config:
experiments/configs/train_gan.py. Writes into the workdir:
config.json, metrics.jsonl (+ tensorboard/), checkpoints/ (both networks and both
optimizer states), samples_epoch_XXX.png every grid_every epochs (the generator on the
same 64 noise vectors, drawn from the seed, so progress is visible), fixed_noise.npz (those
samples, by epoch), progress.png (the first samples of each grid, one row per epoch),
samples.png (the final grid; every sample is drawn from the moving average of the
generator's parameters when g_ema_decay > 0), scored_samples.png (the first 64 of the
samples scored for quality: with gan_sample_keep < 1, those D rated most real),
curves.png (the two losses, D(x) and D(G(z)), each player's gradient norm and, with top-k
training, the fraction of G's batch kept, against the step), results.json and results.md
(the last chunk's losses and D outputs, sample quality in a reference classifier's
feature space, throughput).
"""

from __future__ import annotations

import os
import time
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax

from experiments.framework import configuration, runner
from experiments.framework.checks import (Field, choice, fraction, integer, number,
                                          unit_interval)
from genjax import models
from genjax.models import registry as model_registry
from genjax.io import plotting, workdir
from genjax.losses import gan
from genjax.training import gan_step, loop

ADAM_BETAS = (0.5, 0.999)     # Radford et al. 2016, Sec. 4
GRID_SAMPLES = 64             # fixed noise vectors in each samples_epoch_XXX.png
PROGRESS_COLUMNS = 10         # of them, shown per row of progress.png
PROGRESS_ROWS = 20            # at most, evenly spaced over the grids drawn
PROBE_EXAMPLES = 1000         # test images whose mean D(x) is logged with each grid
FIXED_NOISE = "fixed_noise.npz"
# The fields only this experiment reads (the shared ones: experiments/framework/configuration.py).
FIELDS = {
    "gan_loss": Field("GAN loss: the minimax game, its non-saturating generator loss, or hinge.",
                      choice(gan.GAN_LOSSES)),
    "r1_gamma": Field("Weight gamma of the R1 penalty gamma/2 E||grad_x D(x)||^2 on real data "
                      "(Mescheder et al. 2018); 0 turns it off.", number(0.0)),
    "gan_d_width": Field("Base channel width of the discriminator when it differs from the "
                         "generator's (0: gan_width).", integer(0)),
    "gan_categories": Field("Size K of the generator's discrete code, one-hot of the argmax of "
                            "z's first K coordinates, read with z (0: none; genjax.models.gan).",
                            integer(0)),
    "gan_top_k": Field("Top-k training (Sinha et al. 2020): the smallest fraction nu of the "
                       "generator's batch its loss keeps, the samples the discriminator rates "
                       "most real (1: the whole batch, off).", fraction),
    "gan_top_k_decay": Field("Top-k training: the kept fraction starts at 1 and is multiplied "
                             "by this gamma every epoch until it reaches gan_top_k.", fraction),
    "gan_sample_keep": Field("Sampling by discriminator rejection for the scored samples: "
                             "draw quality_samples / gan_sample_keep and keep those the "
                             "discriminator rates most real, the same share per value of the "
                             "generator's code (1: every draw kept).", fraction),
    "g_ema_decay": Field("Decay of the exponential moving average of the generator's "
                         "parameters that samples are drawn from (0: no average, sample the "
                         "trained generator).", unit_interval),
    "gan_norm": Field("What the generator's hidden LayerNorms normalise: each pixel's channels "
                      "(the VAE-GAN's), each example's whole feature map, or nothing "
                      "(genjax.models.gan).", choice(models.gan.GENERATOR_NORMS)),
    "grid_every": Field("Epochs between fixed-noise sample grids (and the last epoch).",
                        integer(1)),
}


READ_IF = {"gan_top_k_decay": configuration.ReadIf(lambda c: c.gan_top_k < 1.0,
                                                   "gan_top_k < 1"),
           "gan_sample_keep": configuration.ReadIf(lambda c: c.quality_samples > 0,
                                                   "quality_samples > 0")}
# Scores of every candidate too, when sampling by discriminator rejection (raw_<key>).
RAW_KEYS = ("sample_fd", "sample_score", "sample_modes", "sample_class_kl")
CURVE_PANELS = (   # curves.png: (metrics.jsonl keys, y label, y scale) per panel
    (("d_loss", "g_loss", "r1"), "loss", "linear"),
    (("d_real", "d_fake", "test_d_real", "fixed_d_fake"), "sigmoid(D)", "linear"),
    (("d_grad_norm", "g_grad_norm"), "gradient norm", "log"),
    (("g_top_k",), "fraction of G's batch in its loss", "linear"))


def run(config: Any) -> dict:
  """Trains (or resumes); writes every workdir file; returns the results."""
  wall_start = time.perf_counter()
  dataset, placement = runner.prepare(config, check=lambda ds: _check_config(config, ds))
  image_shape = dataset.train_images.shape[1:]
  generator, discriminator = model_registry.family("gan").from_config(config, image_shape)
  keys = runner.streams(config.seed, "generator", "discriminator", "state", "data", "noise",
                        "quality")
  # jit: one compile, rather than one per layer's op when run eagerly.
  g_params = jax.jit(generator.init)(keys["generator"], jnp.zeros((1, config.latent_dim)))["params"]
  d_params = jax.jit(discriminator.init)(keys["discriminator"], jnp.zeros((1, *image_shape)))["params"]
  g_optimizer = optax.adam(config.g_learning_rate, *ADAM_BETAS)
  d_optimizer = optax.adam(config.d_learning_rate, *ADAM_BETAS)
  state = gan_step.create_gan_train_state(g_params, d_params, g_optimizer, d_optimizer,
                                          keys["state"], g_ema=config.g_ema_decay > 0)
  step = gan_step.make_gan_train_step(generator, discriminator, g_optimizer, d_optimizer,
                                      config.gan_loss, config.r1_gamma, config.latent_dim,
                                      axis_name=placement.axis_name,
                                      g_ema_decay=config.g_ema_decay,
                                      g_top_k=_top_k_schedule(config, dataset))
  fixed_z = jax.random.normal(keys["noise"], (GRID_SAMPLES, config.latent_dim))
  probe = _make_probe(generator, discriminator, fixed_z, dataset.test_images[:PROBE_EXAMPLES])

  def grid(params) -> dict[str, float]:
    samples, metrics = probe(params)
    if workdir.is_primary():
      # runner.train logs the epoch's last chunk before it calls evaluate.
      _write_grid(config, round(workdir.read_metrics(config.workdir)[-1]["epoch"]), samples)
    return metrics

  state = runner.train(config, state, step, {"image": dataset.train_images},
                       run_dir=config.workdir, data_rng=keys["data"],
                       preprocess=runner.make_preprocess(config.preprocess),
                       placement=placement, evaluate=grid, eval_every=config.grid_every,
                       name="train_gan")

  samples, probed = probe(state.params)
  quality = {}
  if config.quality_samples:
    scored, raw = generate(generator, state.sampling_params, keys["quality"],
                           config.quality_samples, discriminator=discriminator,
                           d_params=state.d_params, keep=config.gan_sample_keep, with_raw=True)
    quality = runner.sample_quality(config, dataset, scored)
    if workdir.is_primary():
      plotting.save_image_grid(
          os.path.join(config.workdir, "scored_samples.png"), scored[:GRID_SAMPLES],
          title=f"the first {min(GRID_SAMPLES, len(scored))} scored samples"
                + (f" (D's best {config.gan_sample_keep:g} of the draws)"
                   if config.gan_sample_keep < 1.0 else ""))
    if config.gan_sample_keep < 1.0:   # the first draws, every one kept
      raw_quality = runner.sample_quality(config, dataset, raw, floor=False)
      quality.update({f"raw_{k}": raw_quality[k] for k in RAW_KEYS if k in raw_quality})
  if workdir.is_primary():
    plotting.save_image_grid(os.path.join(config.workdir, "samples.png"), samples,
                             title=f"G(z), {GRID_SAMPLES} fixed z, final (epoch {config.epochs})")
    _save_curves(os.path.join(config.workdir, "curves.png"), workdir.read_metrics(config.workdir))
  results = {**_last_train_metrics(config.workdir), **probed, **quality,
             **runner.run_info(config, state, dataset, placement, wall_start),
             "g_num_params": runner.count_params(state.g_params),
             "d_num_params": runner.count_params(state.d_params)}
  penalty = f", R1 gamma={config.r1_gamma:g}" if config.r1_gamma else ""
  workdir.write_results(
      config.workdir, results, title=f"DCGAN on {config.dataset} ({config.gan_loss} loss{penalty})",
      notes="d_loss, g_loss, r1, d_real = mean sigmoid(D(x)) and d_fake = mean "
            "sigmoid(D(G(z))) are means over the last chunk of training steps; test_d_real "
            "and fixed_d_fake are the final networks on test images and on the fixed noise. "
            "sample_* score quality_samples samples G(z) with the cached reference "
            "classifier (genjax.metrics.sample_quality; data_fd: real training images, the "
            "floor); with gan_sample_keep < 1 those samples are the share gan_sample_keep "
            "of more draws that D rates most real, and raw_sample_* score the same number "
            "of draws, all kept. examples_per_s excludes each process's first (compiling) chunk; "
            "wall_s is this invocation's wall time, train_s the time in training steps over "
            "every invocation of the run.")
  return results


def _check_config(config: Any, dataset) -> None:
  if not 0 <= config.gan_categories <= config.latent_dim:
    raise ValueError(f"config.gan_categories={config.gan_categories}: expected 0 (no code) to "
                     f"config.latent_dim={config.latent_dim} (the code is the argmax of z's "
                     "first gan_categories coordinates)")
  try:
    models.build_gan(dataset.train_images.shape[1:], config.latent_dim, config.gan_width,
                     config.gan_d_width)
  except ValueError as e:
    raise ValueError(f"config.dataset={config.dataset}: {e}") from None


def _top_k_schedule(config: Any, dataset):
  """The fraction of G's batch its loss keeps, by step (None: the whole batch)."""
  if config.gan_top_k >= 1.0:
    return None
  steps = loop.steps_per_epoch(len(dataset.train_images), config.batch_size)
  return gan_step.top_k_schedule(steps, config.gan_top_k, config.gan_top_k_decay)


def generate(generator, g_params, rng: jax.Array, num: int, batch_size: int = 1000,
             discriminator=None, d_params=None, keep: float = 1.0, with_raw: bool = False
             ) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
  """``num`` samples G(z), z ~ N(0, I), drawn ``batch_size`` at a time: [num, H, W, C].

  With ``keep`` < 1 (and the discriminator), sampling by discriminator rejection: ceil(num
  / keep) candidates are drawn and the ``num`` that D rates most real are kept, the same
  share within each value of the generator's code (``models.gan.most_real``). The first
  ``num`` candidates are what ``keep`` = 1 returns with the same ``rng``; ``with_raw``
  returns them too: (kept, first num candidates).
  """
  if keep < 1.0 and discriminator is None:
    raise ValueError(f"generate: keep={keep} < 1 ranks the draws by the discriminator; "
                     "pass discriminator= and d_params=, or keep=1.0")
  candidates = num if keep >= 1.0 else int(np.ceil(num / keep))
  batch_size = min(batch_size, num)   # the same batches as keep = 1, then more

  @jax.jit
  def one(params, key):
    z = jax.random.normal(key, (batch_size, generator.latent_dim))
    x = generator.apply({"params": params["generator"]}, z)
    logits = (jnp.zeros(batch_size) if discriminator is None
              else discriminator.apply({"params": params["discriminator"]}, x))
    return x, logits, models.gan.code_of(z, generator.categories)

  params = {"generator": g_params, "discriminator": d_params}
  parts = [jax.device_get(one(params, jax.random.fold_in(rng, i)))
           for i in range(-(-candidates // batch_size))]
  images, logits, codes = (np.concatenate(p)[:candidates] for p in zip(*parts))
  kept = images if candidates == num else images[models.gan.most_real(logits, codes, num)]
  return (kept, images[:num]) if with_raw else kept


def _make_probe(generator, discriminator, fixed_z: jax.Array, test_images: np.ndarray):
  """``probe(params) -> (G(fixed_z) [n, H, W, C], {test_d_real, fixed_d_fake})`` on the host:
  mean sigmoid(D) on ``test_images`` and on the fixed-noise samples."""

  @jax.jit
  def probe(params, z, x):
    def mean_d(images):
      logits = discriminator.apply({"params": params["discriminator"]}, images)
      return jnp.mean(jax.nn.sigmoid(logits))

    # params["generator"] is the moving average when the run keeps one (GANTrainState.params).
    samples = generator.apply({"params": params["generator"]}, z)
    return samples, {"test_d_real": mean_d(x), "fixed_d_fake": mean_d(samples)}

  fixed_z, test_images = jax.device_put((fixed_z, test_images))

  def host_probe(params):
    samples, metrics = jax.device_get(probe(params, fixed_z, test_images))
    return np.asarray(samples), {k: float(v) for k, v in metrics.items()}

  return host_probe


def _write_grid(config: Any, epoch: int, samples: np.ndarray) -> None:
  """samples_epoch_XXX.png, the samples added to fixed_noise.npz, progress.png redrawn."""
  plotting.save_image_grid(os.path.join(config.workdir, f"samples_epoch_{epoch:03d}.png"),
                           samples, title=f"G(z), {len(samples)} fixed z, epoch {epoch}")
  path = os.path.join(config.workdir, FIXED_NOISE)
  grids = dict(np.load(path)) if os.path.exists(path) else {}
  grids[f"epoch_{epoch:03d}"] = np.rint(np.clip(samples, 0, 1) * 255).astype(np.uint8)
  with open(path + ".tmp", "wb") as f:
    np.savez(f, **grids)
  os.replace(path + ".tmp", path)
  names = sorted(grids)
  shown = [names[i] for i in np.unique(np.linspace(0, len(names) - 1, PROGRESS_ROWS).round()
                                                   .astype(int))]
  plotting.save_image_rows(
      os.path.join(config.workdir, "progress.png"),
      {f"epoch {int(name.split('_')[1])}": grids[name][:PROGRESS_COLUMNS] / 255.0
       for name in shown},
      title="the same noise vectors through the generator, by epoch")


def _last_train_metrics(run_dir: str) -> dict[str, float]:
  """The last logged chunk's GAN metrics (NaN before any chunk was logged here)."""
  keys = ("d_loss", "g_loss", "d_real", "d_fake", "r1")
  train_records = [r for r in workdir.read_metrics(run_dir) if "d_loss" in r]
  last = train_records[-1] if train_records else {}
  return {k: float(last.get(k, float("nan"))) for k in keys}


def _save_curves(path: str, records: list[dict]) -> dict[str, list[str]]:
  """Three panels against the step: the losses; D(x) and D(G(z)) on training batches (and
  on test images and the fixed noise at each grid); each player's gradient norm (log
  scale: a discriminator whose gradients grow by decades while the generator's vanish is
  winning the game); with top-k training, a fourth: the fraction of G's batch its loss
  kept. Returns the keys drawn, by panel (its y label)."""
  top_k = any("g_top_k" in r for r in records)
  return plotting.save_metric_panels(path, records, CURVE_PANELS if top_k else CURVE_PANELS[:-1])


def report(results: dict, config: Any) -> str:
  quality = f"sample_fd {results['sample_fd']:.2f}; " if "sample_fd" in results else ""
  return (f"d_loss {results['d_loss']:.3f}, g_loss {results['g_loss']:.3f}, D(x) "
          f"{results['d_real']:.2f}, D(G(z)) {results['d_fake']:.2f}; {quality}"
          f"{runner.format_rate(results['examples_per_s'])} examples/s; "
          f"wall {results['wall_s']:.0f} s; results in {config.workdir}/results.md")
