"""Experiment settings: config files, their validation, and ``--help``.

Every experiment's settings live in ``experiments/configs/EXPERIMENT.py`` as an
``ml_collections`` ``get_config(variant)`` (the Flax-examples / big_vision convention).
The command line is

  python launch.py EXPERIMENT --workdir=DIR [--config=experiments/configs/X.py[:variant]]
                              [--config.FIELD=VALUE ...]

parsed by absl's ``config_flags``, which type-checks each override. Then, before anything
is written, every field is checked here against ``fields.fields(experiment)``: its allowed
values (finite, in range, of the right type), the cross-field rules (``SHARED_CHECKS`` and
the experiment's ``CHECKS``), whether the experiment reads it at all, and that ``--workdir``
can be a directory. A field the experiment's default config does not
have is unknown to it; a field the experiment reads only under a condition (e.g.
``gaussian_std`` only with ``likelihood=gaussian_fixed``) may not differ from its default
while the condition is false. Either is a one-line ``ConfigError`` naming the field.

Field names are shared by every experiment (``batch_size`` means the same thing
everywhere): the shared ones are documented once (``experiments/framework/fields.py``),
the rest beside what reads them (an experiment's ``FIELDS``, a data set's options, a model
part's settings). The vocabulary to declare them is ``experiments/framework/checks.py``,
re-exported here.
"""

from __future__ import annotations

import dataclasses
import difflib
import importlib
import importlib.util
import pathlib
import sys
from typing import Any, Iterable, Mapping

from absl import flags
import ml_collections
from ml_collections import config_flags

from experiments.framework.checks import (  # noqa: F401  (re-exported: the field vocabulary)
    Check, ConfigError, Field, MAX_SEED, ReadIf, boolean, choice, fraction, integer, integers,
    names, number, optional_string, parsed_by, split_names, unit_interval)
from experiments.framework.fields import (  # noqa: F401  (re-exported)
    BUDGETS, LR_SCHEDULES, READ_IF, SHARED_CHECKS, dataset_options, fields, shared_read_if,
    with_attributes)

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
  conditions = {**shared_read_if(), **(read_if or {})}
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
  conditions = {**shared_read_if(), **(read_if or {})}
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


