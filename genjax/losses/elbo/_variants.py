"""The variant registry and its parser, apart from the losses: a variant string such as
"iwae=5+beta_warmup=1000" names an ``Objective`` (``parse_variant``).

Every name is one ``Variant`` in the registry ``VARIANTS`` (its form, e.g. "iwae=K", its
value's type (``Value``), a one-line doc with the paper, and the ``Objective`` fields it
sets); ``VARIANT_FORMS`` lists the forms for help texts. Parts joined by "+" compose: their
fields merge, two parts that set one field to different values are refused, and so are
combinations the losses do not compute (``unsupported``). The library's own variants are
registered by ``_builtin``, which also builds an Objective's loss (``make_loss``).
"""

from __future__ import annotations

import dataclasses
import re
from typing import Any, Callable

import numpy as np

KL_ESTIMATORS = ("analytic", "mc")
ESTIMATORS = ("reparam", "stl", "dreg")


@dataclasses.dataclass(frozen=True)
class Objective:
  """A training objective and its gradient estimator, named by a variant string.

  ``kind`` elbo (``make_elbo_loss``) or iwae (``make_iwae_loss``); ``num_samples`` K;
  ``kl`` analytic or mc; ``estimator`` reparam, stl (ELBO) or dreg (IWAE); ``beta`` the KL
  weight, reached linearly over ``warmup_steps``; ``free_bits`` the per-dimension KL floor
  in nats (ELBO only). ``name`` is the variant string it was parsed from."""
  name: str
  kind: str = "elbo"          # elbo | iwae
  num_samples: int = 1
  kl: str = "analytic"
  estimator: str = "reparam"
  beta: float = 1.0
  warmup_steps: int = 0
  free_bits: float = 0.0


OBJECTIVE_FIELDS = tuple(f.name for f in dataclasses.fields(Objective) if f.name != "name")


@dataclasses.dataclass(frozen=True)
class Value:
  """The value a variant takes after "=": its placeholder in help texts (``metavar``), its
  type (``cast``: int or float), the smallest value allowed and how to say so."""
  metavar: str
  cast: type
  minimum: float
  description: str

  def parse(self, text: str) -> int | float:
    """The value of ``text``; a ValueError when it is no finite ``cast`` >= ``minimum``."""
    number = self.cast(text)
    if not np.isfinite(number) or number < self.minimum:
      raise ValueError(f"{self.metavar}={text!r}: expected {self.description}")
    return number


def positive_int(metavar: str) -> Value:
  """A value 1, 2, ...: a number of samples or steps."""
  return Value(metavar, int, 1, "positive integers")


def non_negative(metavar: str) -> Value:
  """A finite float >= 0: a weight or a number of nats."""
  return Value(metavar, float, 0.0, "non-negative numbers")


@dataclasses.dataclass(frozen=True)
class Variant:
  """One entry of the variant registry.

  ``name`` (lower-case, digits, "_"), ``doc`` (one line, with the paper), ``value`` (None
  for a bare name such as "elbo"; else the ``Value`` after "=", e.g. ``positive_int("K")``)
  and ``sets``: value -> the ``Objective`` fields it sets (the value is None for a bare
  name). A field a variant leaves out keeps its default unless another part sets it."""
  name: str
  doc: str
  sets: Callable[[Any], dict[str, Any]]
  value: Value | None = None

  @property
  def form(self) -> str:
    """How it is written: "elbo", "iwae=K"."""
    return self.name if self.value is None else f"{self.name}={self.value.metavar}"


def register(variant: Variant, registry: dict[str, Variant] | None = None) -> Variant:
  """Adds ``variant`` to ``registry`` (default ``VARIANTS``, whose ``VARIANT_FORMS`` it
  refreshes); a ValueError for a name already there or one that is not an identifier."""
  target = VARIANTS if registry is None else registry
  if not re.fullmatch(r"[a-z][a-z0-9_]*", variant.name):
    raise ValueError(f"variant name {variant.name!r}: use lower-case letters, digits and _")
  if variant.name in target:
    raise ValueError(f"variant {variant.name!r} is already registered: "
                     f"{target[variant.name].doc}")
  target[variant.name] = variant
  if registry is None:
    global VARIANT_FORMS
    VARIANT_FORMS = variant_forms()
  return variant


def variant_forms(registry: dict[str, Variant] | None = None) -> tuple[str, ...]:
  """The forms of the registered variants, in registration order: ("elbo", ..., "iwae=K")."""
  return tuple(v.form for v in (VARIANTS if registry is None else registry).values())


VARIANTS: dict[str, Variant] = {}   # name -> Variant: _builtin.BUILTIN_VARIANTS, then register()
VARIANT_FORMS: tuple[str, ...] = ()   # ("elbo", ..., "iwae=K"); register() refreshes it


def _bad_variant(part: str, text: str, registry: dict[str, Variant]) -> ValueError:
  """The one-line error for a part that is no registered form, listing every form."""
  metavars: dict[str, list[str]] = {}          # "positive integers" -> ["K", "STEPS"]
  for v in registry.values():
    if v.value is not None and v.value.metavar not in metavars.get(v.value.description, []):
      metavars.setdefault(v.value.description, []).append(v.value.metavar)
  values = "; ".join(f"{', '.join(m)}: {d}" for d, m in metavars.items())
  where = repr(part) if part == text.strip() else f"{part!r} in {text!r}"
  return ValueError(f"bad variant {where}: expected one of "
                    f"{', '.join(variant_forms(registry))} ({values}), or several joined "
                    "by '+', e.g. iwae=5+beta_warmup=1000")


def _parse_part(part: str, text: str, registry: dict[str, Variant]) -> tuple[str, dict]:
  """(name, the Objective fields it sets) of one part such as "iwae=5"."""
  name, sep, value = part.partition("=")
  variant = registry.get(name)
  if variant is None or bool(sep) != (variant.value is not None):
    raise _bad_variant(part, text, registry)
  try:
    number = variant.value.parse(value) if sep else None
  except ValueError:
    raise _bad_variant(part, text, registry) from None
  fields = variant.sets(number)
  unknown = sorted(set(fields) - set(OBJECTIVE_FIELDS))
  if unknown:
    raise ValueError(f"variant {name!r} sets {', '.join(unknown)}, which Objective has "
                     f"not (its fields: {', '.join(OBJECTIVE_FIELDS)})")
  return name, fields


def unsupported(objective: Objective, by: Callable[[str], str] | None = None) -> str | None:
  """Why the losses cannot compute ``objective`` (one line), or None when they can.

  ``by(field)`` names what set a field (a variant part); default "field=value"."""
  by = by or (lambda f: f"{f}={getattr(objective, f)!r}")
  o = objective
  if o.kind not in ("elbo", "iwae") or o.kl not in KL_ESTIMATORS or (
      o.estimator not in ESTIMATORS):
    return (f"{by('kind')}, {by('kl')}, {by('estimator')}: expected kind elbo or iwae, kl "
            f"{' or '.join(KL_ESTIMATORS)}, estimator {', '.join(ESTIMATORS)}")
  if o.kind == "iwae" and o.estimator == "stl":
    return (f"{by('estimator')} with {by('kind')}: STL is biased for IWAE (Tucker et al. "
            "2019); use iwae_dreg=K for a lower-variance IWAE gradient")
  if o.kind == "elbo" and o.estimator == "dreg":
    return (f"{by('estimator')} with {by('kind')}: DReG is an estimator of the IWAE "
            "gradient; use iwae_dreg=K (or elbo_stl for the ELBO)")
  if o.kind == "iwae" and o.free_bits > 0:
    return (f"{by('free_bits')} with {by('kind')}: free bits floors the ELBO's KL term, "
            "which the IWAE bound has not; use elbo_k=K+free_bits=NATS")
  if o.kind == "iwae" and o.kl != "mc":
    return f"{by('kl')} with {by('kind')}: IWAE has no closed-form KL term; set kl='mc'"
  if o.estimator == "stl" and o.kl != "mc":
    return (f"{by('estimator')} with {by('kl')}: STL drops the score term of the sampled "
            "KL, which the closed-form KL has not; use elbo_stl")
  return None


def parse_variant(text: str, registry: dict[str, Variant] | None = None) -> Objective:
  """The ``Objective`` of a variant string: one registered form or several joined by "+".

  Each part ("iwae=5", "beta_warmup=1000") sets the fields its ``Variant`` declares; the
  parts' fields merge, and the rest keep ``Objective``'s defaults. A ValueError (one line,
  naming the parts) for an unknown or malformed part, a part given twice, two parts that
  set one field to different values (``iwae=5+elbo_k=3``) and a combination the losses do
  not compute (``unsupported``). The Objective's ``name`` is the stripped text.
  """
  registry = VARIANTS if registry is None else registry
  fields: dict[str, Any] = {}
  origin: dict[str, str] = {}
  seen: set[str] = set()
  for part in (p.strip() for p in text.strip().split("+")):
    name, sets = _parse_part(part, text, registry)
    if name in seen:
      raise ValueError(f"variant {text.strip()!r}: {name} is given twice")
    seen.add(name)
    for field, value in sets.items():
      if field in fields and fields[field] != value:
        raise ValueError(f"variant {text.strip()!r}: {origin[field]} sets {field}="
                         f"{fields[field]!r} but {part} sets {field}={value!r}; drop one")
      fields[field], origin[field] = value, part
  objective = Objective(text.strip(), **fields)

  def by(field: str) -> str:
    value = getattr(objective, field)
    return origin[field] if field in origin else f"the default {field}={value!r}"

  why = unsupported(objective, by)
  if why:
    raise ValueError(f"variant {text.strip()!r}: {why}")
  return objective


def parse_variants(text: str, registry: dict[str, Variant] | None = None) -> list[Objective]:
  """Comma-separated variants; each parsed by ``parse_variant``; no duplicate names."""
  variants = [parse_variant(v, registry) for v in text.split(",")]
  names = [v.name for v in variants]
  if len(set(names)) != len(names):
    raise ValueError(f"duplicate variant in {text!r}")
  return variants

