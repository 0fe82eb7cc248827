"""data/transforms.py: dynamic and static binarization, refused for colour images."""

import jax
import numpy as np
import pytest

from genjax.data import sources, transforms


def test_dynamic_binarization_matches_intensity_and_varies_with_key():
  x = np.full((100, 1000), 0.3, np.float32)
  fn = jax.jit(transforms.binarize_dynamic)
  a, b = np.asarray(fn(jax.random.PRNGKey(0), x)), np.asarray(fn(jax.random.PRNGKey(1), x))
  assert set(np.unique(a)) == {0.0, 1.0}
  assert abs(a.mean() - 0.3) < 5 * np.sqrt(0.3 * 0.7 / a.size)
  assert not np.array_equal(a, b)
  np.testing.assert_array_equal(transforms.preprocess(x, jax.random.PRNGKey(0), "dynamic"), a)
  np.testing.assert_array_equal(transforms.preprocess(x, jax.random.PRNGKey(0), "continuous"), x)


def test_static_binarization_is_applied_once_by_prepare():
  ds = sources.synthetic(8, 4, shape=(8, 8, 1))
  static = transforms.prepare(ds, "static")
  np.testing.assert_array_equal(static.train_images, (ds.train_images > 0.5).astype(np.float32))
  assert transforms.prepare(ds, "dynamic") is ds


def test_binarization_is_refused_for_colour_images_and_kept_for_grey_levels():
  colour = sources.synthetic(4, 4, shape=(8, 8, 3))
  for mode in transforms.BINARIZING:
    with pytest.raises(ValueError, match=rf"^preprocess={mode}: synthetic has colour images "
                                         r"\(8x8x3\) and binarization is for grey levels "
                                         r"\(one channel\); use preprocess=continuous$"):
      transforms.prepare(colour, mode)
  assert transforms.prepare(colour, "continuous") is colour
  grey = sources.synthetic(4, 4, shape=(8, 8, 1))
  transforms.check_binarizable("dynamic", "grey", grey.train_images.shape[1:])   # no error
  assert transforms.prepare(grey, "dynamic") is grey
