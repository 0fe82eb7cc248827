"""Preprocessing of images in [0, 1]: dynamic binarization (a fresh draw per batch, inside
jit), static binarization (once per data set), or none (continuous)."""

from __future__ import annotations

import dataclasses

import jax

from genjax.data.sources import Dataset

PREPROCESSING = ("dynamic", "static", "continuous")


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


def preprocess(images: jax.Array, rng: jax.Array, mode: str) -> jax.Array:
  """Per-batch preprocessing inside jit: ``dynamic`` binarizes with ``rng``; ``static``
  (already applied once by ``prepare``) and ``continuous`` leave the batch as is."""
  _check_mode(mode)
  return binarize_dynamic(rng, images) if mode == "dynamic" else images


def prepare(dataset: Dataset, mode: str) -> Dataset:
  """Applies the once-per-data-set part of ``mode``: static binarization of every split."""
  _check_mode(mode)
  if mode != "static":
    return dataset
  fields = {f: binarize_static(getattr(dataset, f))
            for f in ("train_images", "test_images", "valid_images")
            if getattr(dataset, f) is not None}
  return dataclasses.replace(dataset, **fields)
