"""The two operations every registry of genjax shares (data sets, priors and posteriors,
model families, architectures, evaluators): add an entry under its name, and look a name
up with an error that lists the registered ones."""

from __future__ import annotations

from typing import Any, Mapping, MutableMapping


def add(table: MutableMapping[str, Any], entry: Any, kind: str) -> Any:
  """``table[entry.name] = entry``; a ValueError naming the ``kind`` if the name is taken.
  Returns the entry."""
  if entry.name in table:
    raise ValueError(f"{kind} {entry.name!r} is already registered")
  table[entry.name] = entry
  return entry


def lookup(table: Mapping[str, Any], name: str, label: str) -> Any:
  """``table[name]``; a ValueError ``label='name': expected one of ...`` if there is none."""
  if name not in table:
    raise ValueError(f"{label}{name!r}: expected one of {', '.join(table)}")
  return table[name]
