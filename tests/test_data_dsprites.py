"""data/dsprites.py: determinism and the pinned checksum, the factor grid, and the geometry
of rendered sprites (area, centroid, symmetry, rotation direction) against the formulas."""

import numpy as np
import pytest

from genjax.data import dsprites
from genjax.data.registry import NO_LABEL

SMALL = dict(num_train=60, num_test=20, seed=3, image_size=32, num_scales=2,
             num_orientations=4, num_positions=5)
# checksum(generate(**SMALL)), pinned here independently of DEFAULT_SHA256.
SMALL_SHA256 = "37c05d152f9af7831617ef1f446817c8042ba60f97ee4e07186f98e641510a71"


def _centroid(image):
  """(x, y) of the white pixels' centres, in pixels from the top-left corner."""
  rows, cols = np.nonzero(image[..., 0])
  return cols.mean() + 0.5, rows.mean() + 0.5


def test_generate_is_deterministic_and_pinned():
  first, second = dsprites.generate(**SMALL), dsprites.generate(**SMALL)
  for a, b in zip(first, second):
    np.testing.assert_array_equal(a, b)
  assert dsprites.checksum(first) == SMALL_SHA256
  default = dsprites.generate()   # checks DEFAULT_SHA256 itself; compared here too
  assert dsprites.checksum(default) == dsprites.DEFAULT_SHA256
  assert default.train_images.shape == (20_000, 64, 64, 1)
  assert default.test_images.shape == (2_000, 64, 64, 1)


def test_shapes_values_and_factor_ranges():
  sprites = dsprites.generate(**SMALL)
  sizes = (3, 2, 4, 5, 5)
  assert sprites.factor_sizes == sizes and sprites.factor_names == dsprites.FACTOR_NAMES
  assert dsprites.factor_sizes() == dsprites.FACTOR_SIZES == (3, 6, 40, 32, 32)
  for images, factors, n in ((sprites.train_images, sprites.train_factors, 60),
                             (sprites.test_images, sprites.test_factors, 20)):
    assert images.shape == (n, 32, 32, 1) and images.dtype == np.float32
    assert set(np.unique(images)) == {0.0, 1.0}
    assert np.all(images.sum((1, 2, 3)) > 0)       # every image holds a sprite
    assert factors.shape == (n, 5) and factors.dtype == np.int32
    assert np.all(factors >= 0) and np.all(factors < np.array(sizes))
  # Uniform draws: every index of every factor turns up among 60 rows.
  for k, size in enumerate(sizes):
    assert set(sprites.train_factors[:, k]) == set(range(size))
  values = dsprites.factor_values()
  np.testing.assert_allclose(values[1], [0.5, 0.6, 0.7, 0.8, 0.9, 1.0])
  assert values[2][0] == 0 and values[2][-1] < 2 * np.pi and len(values[2]) == 40
  np.testing.assert_allclose(values[3][[0, -1]], [0, 1])


def test_images_are_the_render_of_their_factors():
  sprites = dsprites.generate(**SMALL)
  grid = {k: SMALL[k] for k in ("num_scales", "num_orientations", "num_positions")}
  values = dsprites.factor_values(**grid)
  row = sprites.test_factors[7]
  one = dsprites.render(*(v[i] for v, i in zip(values, row)), image_size=32)
  np.testing.assert_array_equal(one, sprites.test_images[7])


def test_different_seeds_draw_different_sets():
  a = dsprites.generate(**SMALL)
  b = dsprites.generate(**{**SMALL, "seed": 4})
  assert not np.array_equal(a.train_factors, b.train_factors)
  assert dsprites.checksum(a) != dsprites.checksum(b)


def test_square_area_and_centroid():
  size, scale, pos_x, pos_y = 128, 0.75, 0.25, 0.8
  image = dsprites.render(0, scale, 0.0, pos_x, pos_y, image_size=size)
  side = 2 * dsprites.SQUARE_HALF_SIDE * scale * size   # 19.2 pixels
  assert abs(image.sum() - side ** 2) <= 2 * side + 1   # at most a one-pixel ring off
  np.testing.assert_allclose(_centroid(image), ((0.2 + 0.6 * pos_x) * size,
                                                (0.2 + 0.6 * pos_y) * size), atol=0.5)


def test_ellipse_and_heart_area_and_centroid():
  size, centre = 128, (0.2 + 0.6 * 0.5) * 128
  ellipse = dsprites.render(1, 1.0, 0.0, 0.5, 0.5, image_size=size)
  a, b = np.array(dsprites.ELLIPSE_SEMI_AXES) * size
  np.testing.assert_allclose(ellipse.sum(), np.pi * a * b, rtol=0.03)
  # The heart's centroid, not its bounding box, sits at the position (at any angle).
  for angle in (0.0, 1.0, 4.0):
    heart = dsprites.render(2, 1.0, angle, 0.5, 0.5, image_size=size)
    np.testing.assert_allclose(_centroid(heart), (centre, centre), atol=0.5)
  # Area of (x^2 + y^2 - 1)^3 <= x^2 y^3 is ~3.6601 (numerical, fine grid).
  np.testing.assert_allclose(heart.sum(), 3.6601 * (dsprites.HEART_SIZE * size) ** 2, rtol=0.03)


def test_rotation_symmetries_and_direction():
  def render(shape, angle):   # centre on a pixel corner: the grid is 90-degree symmetric
    return dsprites.render(shape, 1.0, angle, 0.5, 0.5, image_size=64)

  square = render(0, 0.3)
  assert not np.array_equal(square, render(0, 0.0))           # the angle does something
  np.testing.assert_array_equal(render(0, 0.3 + np.pi / 2), square)
  ellipse = render(1, 0.3)
  np.testing.assert_array_equal(render(1, 0.3 + np.pi), ellipse)
  assert not np.array_equal(render(1, 0.3 + np.pi / 2), ellipse)
  # Counterclockwise on screen, as np.rot90 turns an image with rows going down.
  heart = render(2, 0.3)
  np.testing.assert_array_equal(render(2, 0.3 + np.pi / 2), np.rot90(heart))
  # At angle 0 the heart's tip points down (farther below the centroid than its lobes
  # reach above it); turned by 90 degrees counterclockwise it points right.
  # (16.5 against 12.1 pixels at 128x128).
  rows, cols = np.nonzero(dsprites.render(2, 1.0, 0.0, 0.5, 0.5, image_size=128)[..., 0])
  assert rows.max() - rows.mean() > rows.mean() - rows.min() + 2
  rows, cols = np.nonzero(dsprites.render(2, 1.0, np.pi / 2, 0.5, 0.5, image_size=128)[..., 0])
  assert cols.max() - cols.mean() > cols.mean() - cols.min() + 2


def test_render_broadcasts_and_checks_its_arguments():
  batch = dsprites.render([0, 1, 2], 1.0, 0.0, [0.0, 0.5, 1.0], 0.5, image_size=16)
  assert batch.shape == (3, 16, 16, 1)
  np.testing.assert_array_equal(batch[1], dsprites.render(1, 1.0, 0.0, 0.5, 0.5, image_size=16))
  with pytest.raises(ValueError, match="shape must be ids"):
    dsprites.render(3, 1.0, 0.0, 0.5, 0.5)
  with pytest.raises(ValueError, match="scale must be > 0"):
    dsprites.render(0, 0.0, 0.0, 0.5, 0.5)
  with pytest.raises(ValueError, match="factor indices must lie in"):
    dsprites.render_factors(np.array([[0, 6, 0, 0, 0]]))
  with pytest.raises(ValueError, match="num_train must be"):
    dsprites.generate(num_train=-1)


def test_checksum_mismatch_and_sensitivity():
  sprites = dsprites.generate(**SMALL)
  with pytest.raises(ValueError, match="checksum mismatch.*expected sha256 0{64}"):
    dsprites.generate(**SMALL, expected_sha256="0" * 64)
  dsprites.generate(**SMALL, expected_sha256=SMALL_SHA256)   # the right pin passes
  flipped = sprites.train_images.copy()
  flipped[0, 0, 0, 0] = 1 - flipped[0, 0, 0, 0]
  assert dsprites.checksum(sprites._replace(train_images=flipped)) != dsprites.checksum(sprites)
  factors = sprites.test_factors.copy()
  factors[0, 2] = (factors[0, 2] + 1) % 4
  assert dsprites.checksum(sprites._replace(test_factors=factors)) != dsprites.checksum(sprites)
  with pytest.raises(ValueError, match="must be binary"):
    dsprites.checksum(sprites._replace(train_images=sprites.train_images * 0.5))


def test_to_dataset_labels():
  sprites = dsprites.generate(**SMALL)
  by_shape = dsprites.to_dataset(sprites, "shape")
  np.testing.assert_array_equal(by_shape.train_labels, sprites.train_factors[:, 0])
  assert by_shape.test_images is sprites.test_images
  assert np.all(dsprites.to_dataset(sprites).test_labels == NO_LABEL)
  with pytest.raises(ValueError, match="label_factor must be one of"):
    dsprites.to_dataset(sprites, "colour")
