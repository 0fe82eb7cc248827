"""The vocabulary for declaring config fields: a ``Field`` (doc and ``Check``), the checks
(``integer``, ``number``, ``choice``, ``names``, ...), ``ReadIf`` (when an experiment reads a
field) and ``ConfigError``. Shared fields use it in ``fields``; an experiment, a data set
or a model part declares its own with it beside the code that reads them."""

from __future__ import annotations

import dataclasses
import math
from typing import Any, Callable, Iterable


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


def unit_interval(v) -> str | None:
  """A number in [0, 1) (a moving average's decay)."""
  if isinstance(v, bool) or not isinstance(v, (int, float)) or not 0.0 <= v < 1.0:
    return "expected a number in [0, 1)"


def fraction(v) -> str | None:
  """A number in (0, 1] (a share of a batch, a per-epoch factor)."""
  if isinstance(v, bool) or not isinstance(v, (int, float)) or not 0.0 < v <= 1.0:
    return "expected a number in (0, 1]"
