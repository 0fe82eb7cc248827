"""The data-set registry: one ``DatasetEntry`` per data set, by name.

An entry says everything the rest of genjax may know about a data set: its image shape
and value range, whether it has class labels (how many) or binary attributes, its splits,
where it comes from and how to obtain it, and how each source reads it (a TFDS builder, a
``<name>.npz`` archive, an offline default). Experiments and validation ask the entry
(``get(name).num_classes``, ``.shape(...)``, ``.options``) instead of comparing names, so
a new data set is one ``register(DatasetEntry(...))`` call (the built-in ones are in
``genjax.data.datasets``; ``genjax.data.sources.load`` reads any of them).
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable, Mapping

import numpy as np

from genjax import registries

NO_LABEL = -1
SPLITS = ("train", "valid", "test")


@dataclasses.dataclass(frozen=True)
class Dataset:
  """Train and test splits; images float32 [N, H, W, C] in [0, 1], labels int32 [N].

  A data set without class labels has every label -1 (``NO_LABEL``); one with binary
  attributes has ``*_attributes`` [N, A] float32 in {0, 1}, named by ``attribute_names``;
  one with known factors of variation has ``*_factors`` [N, K] int32 (each factor's
  index on its grid), named by ``factor_names``.
  ``valid_*`` hold a validation split where the source has one, else None. ``source``
  says where it came from.
  """
  name: str
  train_images: np.ndarray
  train_labels: np.ndarray
  test_images: np.ndarray
  test_labels: np.ndarray
  source: str
  valid_images: np.ndarray | None = None
  valid_labels: np.ndarray | None = None
  train_attributes: np.ndarray | None = None
  test_attributes: np.ndarray | None = None
  valid_attributes: np.ndarray | None = None
  attribute_names: tuple[str, ...] | None = None
  train_factors: np.ndarray | None = None
  test_factors: np.ndarray | None = None
  factor_names: tuple[str, ...] | None = None


class DataNotFoundError(FileNotFoundError):
  """No source holds the data set; the message lists where we looked and the fix."""


@dataclasses.dataclass(frozen=True)
class Option:
  """A setting the data set's loader reads (experiments expose it as a config field of
  the same name, read only with this data set): its meaning, default and allowed values
  (``check(value)`` -> None when fine, else what is expected)."""
  doc: str
  default: Any
  check: Callable[[Any], str | None]


@dataclasses.dataclass(frozen=True)
class OfflineSource:
  """A copy that works with no network and no ``data_dir``: ``locate()`` -> its path, or
  None when absent (``missing`` says why); ``read(path)`` -> the ``Dataset``;
  ``install``: the command that provides it."""
  description: str
  locate: Callable[[], str | None]
  read: Callable[[str], Dataset]
  install: str
  missing: str = "not installed"


@dataclasses.dataclass(frozen=True)
class DatasetEntry:
  """One data set: what it is and how each source reads it.

  Attributes:
    name: its registry name (``config.dataset``).
    shape_default: image shape (H, W, C) as loaded with the default options.
    provenance: where the data come from (paper, URL), one sentence.
    obtain: how to get a copy onto an offline machine, one sentence.
    num_classes: number of class labels, or None for a data set without labels.
    num_attributes: number of binary attributes per image (0: none).
    factors: the names of its known factors of variation (empty: none), each image's
      indices in ``Dataset.*_factors``.
    binary: pixel values are in {0, 1} already (e.g. a fixed binarization).
    value_range: the range of the loaded float32 pixel values.
    splits: the splits every source provides, from ``SPLITS``.
    tfds: the TFDS builder name (a TFDS-prepared copy in ``data_dir/<tfds>/``), or None.
    npz: the arrays of ``data_dir/<name>.npz`` (``x_<split>`` images with ``y_<split>``
      labels, or ``<split>`` images alone), or None when there is no npz source.
    offline: the offline default, or None.
    scored_by: for a data set without labels, the labelled data set whose reference
      classifier scores its samples (same image shape), or None.
    options: settings its loader reads, by name (e.g. an image size).
    read_tfds: ``(entry, data_dir, download, options) -> Dataset`` for a custom TFDS
      layout; None: the generic reader (``genjax.data.readers.read_tfds``).
    shape_of: ``options -> (H, W, C)`` when options change the shape; None: fixed.
  """
  name: str
  shape_default: tuple[int, int, int]
  provenance: str
  obtain: str
  num_classes: int | None = None
  num_attributes: int = 0
  factors: tuple[str, ...] = ()
  binary: bool = False
  value_range: tuple[float, float] = (0.0, 1.0)
  splits: tuple[str, ...] = ("train", "test")
  tfds: str | None = None
  npz: tuple[str, ...] | None = None
  offline: OfflineSource | None = None
  scored_by: str | None = None
  options: Mapping[str, Option] = dataclasses.field(default_factory=dict)
  read_tfds: Callable[..., Dataset] | None = None
  shape_of: Callable[[Mapping[str, Any]], tuple[int, int, int]] | None = None

  @property
  def labelled(self) -> bool:
    return self.num_classes is not None

  @property
  def reference(self) -> str | None:
    """The labelled data set whose classifier scores samples of this one: itself when it
    has labels, else ``scored_by``."""
    return self.name if self.labelled else self.scored_by

  def resolve_options(self, options: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Every option with its value (``options`` over the defaults); ValueError naming an
    unknown option or a bad value."""
    options = dict(options or {})
    unknown = sorted(set(options) - set(self.options))
    if unknown:
      known = ", ".join(self.options) or "none"
      raise ValueError(f"dataset={self.name}: no option {', '.join(unknown)} (its options: "
                       f"{known})")
    resolved = {k: options.get(k, o.default) for k, o in self.options.items()}
    for k, value in resolved.items():
      problem = self.options[k].check(value)
      if problem:
        raise ValueError(f"{k}={value}: {problem}")
    return resolved

  def shape(self, options: Mapping[str, Any] | None = None) -> tuple[int, int, int]:
    """The image shape (H, W, C) the loader returns with ``options``."""
    if self.shape_of is None:
      return self.shape_default
    return tuple(self.shape_of(self.resolve_options(options)))

  def describe(self) -> str:
    """One line: shape, labels, sources, provenance."""
    labels = (f"{self.num_classes} classes" if self.labelled else
              f"{self.num_attributes} attributes" if self.num_attributes else "no labels")
    sources = [s for s, has in (("TFDS", self.tfds), ("npz", self.npz),
                                ("offline", self.offline)) if has]
    h, w, c = self.shape_default
    return f"{self.name}: {h}x{w}x{c}, {labels}; {', '.join(sources)}. {self.provenance}"


REGISTRY: dict[str, DatasetEntry] = {}


def register(entry: DatasetEntry, registry: dict[str, DatasetEntry] | None = None
             ) -> DatasetEntry:
  """Adds ``entry`` under its name (a ValueError if the name is taken or the entry is
  inconsistent: unknown splits, a ``scored_by`` on a labelled set); returns it."""
  registry = REGISTRY if registry is None else registry
  if not entry.splits or any(s not in SPLITS for s in entry.splits) or "train" not in entry.splits:
    raise ValueError(f"data set {entry.name!r}: splits {entry.splits} must include train and "
                     f"come from {', '.join(SPLITS)}")
  if entry.labelled and entry.scored_by is not None:
    raise ValueError(f"data set {entry.name!r} has labels: its own classifier scores it "
                     "(drop scored_by)")
  return registries.add(registry, entry, "data set")


def names(registry: Mapping[str, DatasetEntry] | None = None) -> tuple[str, ...]:
  """The registered names, in registration order."""
  return tuple(REGISTRY if registry is None else registry)


def get(name: str, registry: Mapping[str, DatasetEntry] | None = None) -> DatasetEntry:
  """The entry of ``name``; a ValueError listing the registered names if there is none."""
  return registries.lookup(REGISTRY if registry is None else registry, name, "dataset=")


def labelled_names(registry: Mapping[str, DatasetEntry] | None = None) -> tuple[str, ...]:
  """The names of the data sets with class labels."""
  registry = REGISTRY if registry is None else registry
  return tuple(n for n, e in registry.items() if e.labelled)
