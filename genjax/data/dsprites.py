"""A dSprites-style data set, drawn procedurally: ``generate(num_train, num_test, seed)``.

dSprites (Matthey, Higgins, Hassabis, Lerchner 2017, "dSprites: Disentanglement testing
Sprites dataset", https://github.com/deepmind/dsprites-dataset) has binary 64x64 images of
one white sprite on black, made from five independent factors of variation. Here the
images are rasterised from the factors by an inside-test at each pixel centre (binary, no
antialiasing), so the set needs no download and is the same on every machine: ``generate``
checks the default set against the pinned ``DEFAULT_SHA256``. The shapes are this module's
own (not the original sprites), and the factors are:

* ``shape``: 0 square, 1 ellipse, 2 heart (at scale 1, the square's side is 0.2 of the
  image width, the ellipse's semi-axes 0.14 and 0.07, the heart ~0.23 wide);
* ``scale``: ``num_scales`` values evenly in [0.5, 1] (default 6), a factor on the size;
* ``orientation``: ``num_orientations`` angles 2 pi k / num_orientations in [0, 2 pi)
  (default 40), counterclockwise on screen. The square has 4-fold and the ellipse 2-fold
  rotational symmetry, so for them orientations pi/2 (square) or pi (ellipse) apart give
  the same image (exactly, when the sprite's centre lies on a pixel centre or corner) and
  the orientation index is not recoverable from the image alone; the heart has none;
* ``pos_x``, ``pos_y``: ``num_positions`` values evenly in [0, 1] each (default 32): the
  shape's centroid sits at 0.2 + 0.6 * pos of the image width from the left (x) or from
  the top (y), so every sprite lies whole inside the frame.

Defaults are the original's grid (3 x 6 x 40 x 32 x 32 = 737,280 combinations);
``generate`` draws combinations uniformly (with replacement) rather than listing them all.
Pixel tests run in float64 so that a last-bit difference in cos/sin between machines
cannot flip a pixel (the checksum would catch it).
"""

from __future__ import annotations

import hashlib
from typing import NamedTuple

import numpy as np

from genjax.data.registry import NO_LABEL, Dataset

FACTOR_NAMES = ("shape", "scale", "orientation", "pos_x", "pos_y")
FACTOR_SIZES = (3, 6, 40, 32, 32)
SHAPE_NAMES = ("square", "ellipse", "heart")

SQUARE_HALF_SIDE = 0.1          # at scale 1, in image widths
ELLIPSE_SEMI_AXES = (0.14, 0.07)
HEART_SIZE = 0.1                # the unit of the implicit heart curve below, in image widths
HEART_CENTROID_Y = 0.29348      # centroid of (x^2 + y^2 - 1)^3 <= x^2 y^3, in its own units
POSITION_MARGIN = 0.2           # centres lie in [0.2, 0.8]: the largest extent (~0.142) fits

# generate() with every argument at its default; checksum() of that set.
DEFAULT_SHA256 = "b5a5a6861c31a0341cd9954656131e42b946d7678ce57e8bcaf74c0dc55ec4c4"
_DEFAULTS = dict(num_train=20_000, num_test=2_000, seed=0, image_size=64, num_scales=6,
                 num_orientations=40, num_positions=32)
_CHUNK = 1024                   # images rendered at once (bounds memory at ~100 MB)


class DSprites(NamedTuple):
  """Images float32 [N, S, S, 1] in {0, 1} and their factor indices int32 [N, 5].

  ``factors[:, k]`` indexes ``factor_values(...)[k]``; ``factor_names`` and
  ``factor_sizes`` give the grid the set was drawn from.
  """
  train_images: np.ndarray
  train_factors: np.ndarray
  test_images: np.ndarray
  test_factors: np.ndarray
  factor_names: tuple[str, ...]
  factor_sizes: tuple[int, ...]


def factor_sizes(num_scales: int = 6, num_orientations: int = 40,
                 num_positions: int = 32) -> tuple[int, ...]:
  """The grid (3, num_scales, num_orientations, num_positions, num_positions)."""
  sizes = (len(SHAPE_NAMES), num_scales, num_orientations, num_positions, num_positions)
  for name, size in zip(FACTOR_NAMES[1:], sizes[1:]):
    if int(size) != size or size < 1:
      raise ValueError(f"the number of {name} values must be an integer >= 1, got {size}")
  return sizes


def factor_values(num_scales: int = 6, num_orientations: int = 40,
                  num_positions: int = 32) -> tuple[np.ndarray, ...]:
  """The value of each index of each factor, in ``FACTOR_NAMES`` order (float64 arrays):
  shape ids [0, 1, 2], scales in [0.5, 1], angles 2 pi k / n, positions in [0, 1]."""
  factor_sizes(num_scales, num_orientations, num_positions)
  positions = np.linspace(0.0, 1.0, num_positions)
  return (np.arange(len(SHAPE_NAMES), dtype=np.float64), np.linspace(0.5, 1.0, num_scales),
          2 * np.pi * np.arange(num_orientations) / num_orientations, positions, positions)


def render(shape, scale, orientation, pos_x, pos_y, image_size: int = 64) -> np.ndarray:
  """Sprite images from factor values (not indices): float32 [..., S, S, 1] in {0, 1}.

  Arguments broadcast against each other (scalars give one [S, S, 1] image): ``shape`` an
  id in {0, 1, 2}, ``scale`` > 0, ``orientation`` in radians (counterclockwise), ``pos_x``,
  ``pos_y`` in [0, 1]. A pixel is white when its centre, moved into the sprite's frame
  (translated to the centroid, rotated by -orientation, divided by scale), passes the
  shape's inside-test: square max(|u|, |v|) <= 0.1; ellipse (u/0.14)^2 + (v/0.07)^2 <= 1;
  heart (x^2 + y^2 - 1)^3 <= x^2 y^3 with x = u/0.1, y = v/0.1 + 0.29348 (v points up).
  """
  shape, scale, orientation, pos_x, pos_y = np.broadcast_arrays(
      *(np.asarray(a, np.float64) for a in (shape, scale, orientation, pos_x, pos_y)))
  if not np.all(np.isin(shape, range(len(SHAPE_NAMES)))):
    raise ValueError(f"shape must be ids in {{0, 1, 2}} ({SHAPE_NAMES}), got {np.unique(shape)}")
  if np.any(scale <= 0):
    raise ValueError(f"scale must be > 0, got min {scale.min()}")
  batch = shape.shape
  out = np.empty((shape.size, image_size, image_size), bool)
  flat = [a.reshape(-1) for a in (shape, scale, orientation, pos_x, pos_y)]
  for start in range(0, shape.size, _CHUNK):
    out[start:start + _CHUNK] = _render_chunk(*(a[start:start + _CHUNK] for a in flat),
                                              image_size)
  return out.reshape(batch + (image_size, image_size, 1)).astype(np.float32)


def _render_chunk(shape, scale, orientation, pos_x, pos_y, size):
  """[n, S, S] bool for 1-D factor values (see ``render``)."""
  centres = (np.arange(size) + 0.5) / size                   # pixel centres, image widths
  span = 1.0 - 2 * POSITION_MARGIN
  out = np.empty((len(shape), size, size), bool)
  for shape_id, inside in enumerate((_inside_square, _inside_ellipse, _inside_heart)):
    take = np.flatnonzero(shape == shape_id)
    if not take.size:
      continue
    cx = POSITION_MARGIN + span * pos_x[take]
    cy = POSITION_MARGIN + span * pos_y[take]
    dx = centres[None, None, :] - cx[:, None, None]          # [n, 1, S], to the right
    dy = cy[:, None, None] - centres[None, :, None]          # [n, S, 1], up (rows go down)
    cos = (np.cos(orientation[take]) / scale[take])[:, None, None]
    sin = (np.sin(orientation[take]) / scale[take])[:, None, None]
    # Rotated by -orientation and divided by scale; the products are [n, 1, S] or
    # [n, S, 1], so only the sums are full-size.
    out[take] = inside(cos * dx + sin * dy, cos * dy - sin * dx)
  return out


def _inside_square(u, v):
  return np.maximum(np.abs(u), np.abs(v)) <= SQUARE_HALF_SIDE


def _inside_ellipse(u, v):
  a, b = ELLIPSE_SEMI_AXES
  return (u / a) ** 2 + (v / b) ** 2 <= 1.0


def _inside_heart(u, v):
  x2 = (u / HEART_SIZE) ** 2
  y = v / HEART_SIZE + HEART_CENTROID_Y
  r = x2 + y * y - 1.0
  return r * r * r <= x2 * (y * y * y)


def render_factors(factors: np.ndarray, image_size: int = 64, num_scales: int = 6,
                   num_orientations: int = 40, num_positions: int = 32) -> np.ndarray:
  """Images [N, S, S, 1] of factor indices ``factors: [N, 5]`` on the given grid."""
  factors = np.asarray(factors)
  sizes = factor_sizes(num_scales, num_orientations, num_positions)
  if factors.ndim != 2 or factors.shape[1] != len(FACTOR_NAMES):
    raise ValueError(f"factors must be [N, {len(FACTOR_NAMES)}] indices of {FACTOR_NAMES}, got "
                     f"shape {factors.shape}")
  if np.any(factors < 0) or np.any(factors >= np.array(sizes)):
    raise ValueError(f"factor indices must lie in [0, size) for sizes {sizes}")
  values = factor_values(num_scales, num_orientations, num_positions)
  return render(*(v[factors[:, k]] for k, v in enumerate(values)), image_size=image_size)


def generate(num_train: int = 20_000, num_test: int = 2_000, seed: int = 0,
             image_size: int = 64, num_scales: int = 6, num_orientations: int = 40,
             num_positions: int = 32, expected_sha256: str | None = None) -> DSprites:
  """Draws ``num_train`` then ``num_test`` factor combinations uniformly from the grid
  (each factor's index independently uniform, ``np.random.default_rng(seed)``) and renders
  them.

  The set is checked against ``expected_sha256`` when given, else, when every other
  argument is at its default, against ``DEFAULT_SHA256``; a mismatch is a ValueError.
  The default set (20,000 + 2,000 images at 64x64) takes ~3 s on one CPU core, checksum
  included (measured 2.4-3.6 s on a shared 2-core machine).
  """
  for name, n in (("num_train", num_train), ("num_test", num_test)):
    if int(n) != n or n < 0:
      raise ValueError(f"{name} must be an integer >= 0, got {n}")
  if int(image_size) != image_size or image_size < 8:
    raise ValueError(f"image_size must be an integer >= 8, got {image_size}")
  grid = dict(num_scales=num_scales, num_orientations=num_orientations,
              num_positions=num_positions)
  sizes = factor_sizes(**grid)
  rng = np.random.default_rng(seed)
  train_factors = rng.integers(0, sizes, size=(num_train, len(sizes))).astype(np.int32)
  test_factors = rng.integers(0, sizes, size=(num_test, len(sizes))).astype(np.int32)
  sprites = DSprites(render_factors(train_factors, image_size, **grid), train_factors,
                     render_factors(test_factors, image_size, **grid), test_factors,
                     FACTOR_NAMES, sizes)
  arguments = dict(num_train=num_train, num_test=num_test, seed=seed, image_size=image_size,
                   **grid)
  if expected_sha256 is None and arguments == _DEFAULTS:
    expected_sha256 = DEFAULT_SHA256
  if expected_sha256 is not None:
    digest = checksum(sprites)
    if digest != expected_sha256:
      raise ValueError(f"dSprites checksum mismatch for generate({arguments}): expected sha256 "
                       f"{expected_sha256}, got {digest}. The generator (or NumPy's random "
                       f"stream) differs from the one the pin was made with; do not compare "
                       f"results across the two.")
  return sprites


def checksum(sprites: DSprites) -> str:
  """SHA-256 (hex) of a set's arrays: each split's shapes, its images as bits (they are
  binary; a non-binary image is a ValueError) and its factors as little-endian int32."""
  digest = hashlib.sha256()
  for images, factors in ((sprites.train_images, sprites.train_factors),
                          (sprites.test_images, sprites.test_factors)):
    bits = np.asarray(images).astype(np.uint8)
    if not np.array_equal(bits, images):
      raise ValueError("checksum: images must be binary (values in {0, 1})")
    digest.update(repr((bits.shape, np.shape(factors))).encode())
    digest.update(np.packbits(bits).tobytes())
    digest.update(np.ascontiguousarray(factors, "<i4").tobytes())
  return digest.hexdigest()


def to_dataset(sprites: DSprites, label_factor: str | None = None) -> Dataset:
  """The set as a ``registry.Dataset`` with its factors (``*_factors``, ``factor_names``):
  labels are the indices of factor ``label_factor`` (e.g. "shape"), or all ``NO_LABEL``
  when None."""
  if label_factor is not None and label_factor not in sprites.factor_names:
    raise ValueError(f"label_factor must be one of {sprites.factor_names} or None, "
                     f"got {label_factor!r}")

  def labels(factors: np.ndarray) -> np.ndarray:
    if label_factor is None:
      return np.full(len(factors), NO_LABEL, np.int32)
    return factors[:, sprites.factor_names.index(label_factor)].astype(np.int32)

  return Dataset("dsprites", sprites.train_images, labels(sprites.train_factors),
                 sprites.test_images, labels(sprites.test_factors),
                 source=f"genjax.data.dsprites.generate, grid {sprites.factor_sizes}",
                 train_factors=sprites.train_factors, test_factors=sprites.test_factors,
                 factor_names=tuple(sprites.factor_names))

