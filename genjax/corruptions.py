"""Corruptions of images in [0, 1]: the input of a denoising autoencoder (Gaussian noise,
masking, salt and pepper), with one key or one key per image."""

from __future__ import annotations

import jax
import jax.numpy as jnp

CORRUPTIONS = ("none", "gaussian", "masking", "salt_and_pepper")


def check_corruption(kind: str, level: float) -> None:
  """Refuses an unknown corruption or a level outside its range, naming the settings."""
  if kind not in CORRUPTIONS:
    raise ValueError(f"corruption={kind!r}: expected one of {', '.join(CORRUPTIONS)}")
  if kind == "gaussian" and not level >= 0:
    raise ValueError(f"noise_level={level}: the standard deviation of corruption=gaussian "
                     "must be >= 0")
  if kind in ("masking", "salt_and_pepper") and not 0 <= level <= 1:
    raise ValueError(f"noise_level={level}: the pixel rate of corruption={kind} must be "
                     "in [0, 1]")


def corrupt(rng: jax.Array, images: jax.Array, kind: str, level: float) -> jax.Array:
  """Corrupts images [batch, H, W, C] in [0, 1] (the input of a denoising autoencoder).

  gaussian:        x~ = clip(x + level * eps, 0, 1), eps ~ N(0, I) (each channel its own)
  masking:         each pixel is set to 0 with probability ``level``
  salt_and_pepper: each pixel, with probability ``level``, is set to 0 or 1 (even odds)
  none:            x~ = x
  A pixel is all its channels: a colour pixel is masked, salted or peppered whole (to
  black or white), not channel by channel (which would tint it).
  ``rng`` is one key, or one key per image ([batch, 2]: an image's corruption then
  depends only on its own key, whatever device it lands on).
  """
  check_corruption(kind, level)
  if kind == "none":
    return images
  if rng.ndim == 2:
    return jax.vmap(lambda k, x: corrupt(k, x[None], kind, level)[0])(rng, images)
  if kind == "gaussian":
    return jnp.clip(images + level * jax.random.normal(rng, images.shape, images.dtype), 0, 1)
  hit_rng, salt_rng = jax.random.split(rng)
  pixels = (*images.shape[:-1], 1)   # one draw per pixel, broadcast over its channels
  hit = jax.random.bernoulli(hit_rng, level, pixels)
  if kind == "masking":
    return jnp.where(hit, jnp.zeros_like(images), images)
  salt = jax.random.bernoulli(salt_rng, 0.5, pixels).astype(images.dtype)
  return jnp.where(hit, salt, images)
