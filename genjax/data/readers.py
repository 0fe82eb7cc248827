"""How each kind of source is read, for any registered data set: a ``<name>.npz``
archive, a TFDS-prepared copy, and (for offline copies shipped as pickles) an unpickler
that admits only NumPy arrays. Shapes, splits and label keys come from the data set's
``registry.DatasetEntry``; nothing here names a data set."""

from __future__ import annotations

import pickle
from typing import Any, Mapping
import zipfile
import zlib

import numpy as np

from genjax.data.registry import NO_LABEL, Dataset, DatasetEntry

TFDS_SPLIT = {"train": "train", "valid": "validation", "test": "test"}


def to_float(images: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
  """uint8 [N, ...] -> float32 [N, *shape] in [0, 1] (0/1 data stays 0/1)."""
  images = np.asarray(images)
  scale = 1.0 if images.max(initial=0) <= 1 else 255.0
  return (images.astype(np.float32) / scale).reshape(len(images), *shape)


def no_labels(n: int) -> np.ndarray:
  return np.full(n, NO_LABEL, np.int32)


def npz_expectation(entry: DatasetEntry) -> str:
  return (f"expected an .npz (zip) archive written by numpy.savez with arrays "
          f"{', '.join(entry.npz)}")


def read_npz(entry: DatasetEntry, path: str) -> Dataset:
  """Reads ``path``; a ValueError naming it and what is expected when it is not an .npz
  archive with ``entry.npz`` (rather than NumPy's guess that it holds pickled data, or a
  KeyError, or a zlib error from a damaged member)."""
  expected = npz_expectation(entry)
  if not zipfile.is_zipfile(path):
    raise ValueError(f"{path} is not a valid .npz (zip) archive: {expected}")
  try:
    with np.load(path) as f:
      held = f.files
      if all(k in held for k in entry.npz):
        return npzdataset_of(entry, path, f)
  except (zipfile.BadZipFile, zlib.error, EOFError, OSError, ValueError) as e:
    raise ValueError(f"{path} is a damaged .npz archive ({e}): {expected}") from None
  missing = [k for k in entry.npz if k not in held]
  raise ValueError(f"{path} lacks the arrays {', '.join(missing)} (it holds "
                   f"{', '.join(held) or 'none'}): {expected}")


def npzdataset_of(entry: DatasetEntry, path: str, f: Mapping[str, np.ndarray]) -> Dataset:
  """The ``Dataset`` of the open .npz ``f`` (its keys checked): each split's images from
  ``x_<split>`` (labels ``y_<split>``) or ``<split>`` (no labels), shaped ``entry.shape()``."""
  shape = entry.shape()
  splits = {}
  for split in entry.splits:
    if f"x_{split}" in entry.npz:
      labels = (f[f"y_{split}"].astype(np.int32) if f"y_{split}" in entry.npz
                else no_labels(len(f[f"x_{split}"])))
      splits[split] = (to_float(f[f"x_{split}"], shape), labels)
    else:
      images = to_float(f[split], shape)
      splits[split] = (images, no_labels(len(images)))
  return dataset_of(entry, splits, source=path)


def dataset_of(entry: DatasetEntry, splits: dict[str, tuple], source: str, **extra) -> Dataset:
  """The ``Dataset`` of ``splits`` (split -> (images, labels)); ``extra``: attributes."""
  valid = splits.get("valid", (None, None))
  return Dataset(entry.name, *splits["train"], *splits["test"], source=source,
                 valid_images=valid[0], valid_labels=valid[1], **extra)


def read_tfds(entry: DatasetEntry, data_dir: str | None, download: bool,
              options: Mapping[str, Any]) -> Dataset:
  """Reads every record of each split of the TFDS copy ``entry.tfds`` with
  ``tfds.data_source`` (``image`` and, where there is one, ``label``)."""
  del options   # the generic reader has none
  import tensorflow_datasets as tfds  # pylint: disable=import-outside-toplevel
  splits = {}
  for split in entry.splits:
    source = tfds.data_source(entry.tfds, split=TFDS_SPLIT[split], data_dir=data_dir,
                              download=download)
    records = [source[i] for i in range(len(source))]
    images = np.stack([r["image"] for r in records])
    labels = (np.asarray([r["label"] for r in records], np.int32) if "label" in records[0]
              else no_labels(len(records)))
    splits[split] = (to_float(images, images.shape[1:] if images.ndim == 4 else entry.shape()),
                     labels)
  return dataset_of(entry, splits, source=f"tfds:{data_dir}")


class ArraysOnlyUnpickler(pickle.Unpickler):
  """Admits only the globals NumPy needs to rebuild arrays; refuses everything else."""
  ALLOWED = {("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
             ("numpy", "ndarray"), ("numpy", "dtype")}

  def find_class(self, module: str, name: str) -> Any:
    if (module, name) not in self.ALLOWED:
      raise pickle.UnpicklingError(f"refusing to unpickle global {module}.{name}: only NumPy "
                                   "arrays are allowed in the data file")
    return super().find_class(module, name)
