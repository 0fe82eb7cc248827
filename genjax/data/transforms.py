"""Preprocessing of images in [0, 1]: dynamic binarization (a fresh draw per batch, inside
jit), static binarization (once per data set), or none (continuous). Binarization is for
grey levels: ``prepare`` refuses it for colour images."""

from __future__ import annotations

import dataclasses

import jax

from genjax.data.sources import Dataset

PREPROCESSING = ("dynamic", "static", "continuous")
BINARIZING = ("dynamic", "static")   # the modes that turn grey levels into {0, 1}


def binarize_dynamic(rng: jax.Array, images: jax.Array) -> jax.Array:
  """x_bin ~ Bernoulli(x) pixelwise, a fresh draw per key (dynamic binarization).

  ``rng`` is one key, or one key per image (``[batch, 2]``: each image's draw then depends
  only on its own key, whatever device it lands on).
  """
  # Drawn on flat pixels (the same bits as on [H, W, C]: keys count elements row-major):
  # XLA's CPU backend vectorizes poorly over grey images' last axis of one.
  flat = images.reshape(images.shape[0], -1)
  if rng.ndim == 1:
    drawn = jax.random.bernoulli(rng, flat)
  else:
    drawn = jax.vmap(jax.random.bernoulli)(rng, flat)
  return drawn.astype(images.dtype).reshape(images.shape)


def binarize_static(images):
  """x_bin = 1[x > 0.5] (numpy or jax arrays)."""
  return (images > 0.5).astype(images.dtype)


def _check_mode(mode: str) -> None:
  if mode not in PREPROCESSING:
    raise ValueError(f"preprocess={mode!r}: expected one of {', '.join(PREPROCESSING)}")


def check_binarizable(mode: str, name: str, image_shape: tuple[int, ...]) -> None:
  """Refuses a binarizing ``mode`` for images ``image_shape`` (H, W, C) with more than one
  channel: a grey level is the probability of a binarized pixel being on, but a colour
  image's channels, binarized apart, would be an image in eight colours, not the data set."""
  if mode in BINARIZING and image_shape[-1] != 1:
    height, width, channels = image_shape
    raise ValueError(f"preprocess={mode}: {name} has colour images ({height}x{width}x"
                     f"{channels}) and binarization is for grey levels (one channel); use "
                     "preprocess=continuous")


def preprocess(images: jax.Array, rng: jax.Array, mode: str) -> jax.Array:
  """Per-batch preprocessing inside jit: ``dynamic`` binarizes with ``rng``; ``static``
  (already applied once by ``prepare``) and ``continuous`` leave the batch as is."""
  _check_mode(mode)
  return binarize_dynamic(rng, images) if mode == "dynamic" else images


def prepare(dataset: Dataset, mode: str) -> Dataset:
  """Applies the once-per-data-set part of ``mode``: static binarization of every split.

  Raises ValueError for a binarizing ``mode`` on colour images (``check_binarizable``).
  """
  _check_mode(mode)
  check_binarizable(mode, dataset.name, dataset.train_images.shape[1:])
  if mode != "static":
    return dataset
  fields = {f: binarize_static(getattr(dataset, f))
            for f in ("train_images", "test_images", "valid_images")
            if getattr(dataset, f) is not None}
  return dataclasses.replace(dataset, **fields)
