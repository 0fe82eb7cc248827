"""corruptions.py: each corruption hits its rate, per-example keys, and the refusals."""

import jax
import numpy as np
import pytest

from genjax import corruptions


def test_corruptions_hit_the_requested_rate():
  x = np.full((200, 10, 10, 1), 0.5, np.float32)
  n = x.size
  masked = np.asarray(corruptions.corrupt(jax.random.PRNGKey(0), x, "masking", 0.3))
  assert abs((masked == 0).mean() - 0.3) < 5 * np.sqrt(0.3 * 0.7 / n)
  np.testing.assert_array_equal(masked[masked != 0], 0.5)
  sp = np.asarray(corruptions.corrupt(jax.random.PRNGKey(1), x, "salt_and_pepper", 0.2))
  assert abs((sp != 0.5).mean() - 0.2) < 5 * np.sqrt(0.2 * 0.8 / n)
  assert abs((sp == 1).mean() - 0.1) < 5 * np.sqrt(0.1 * 0.9 / n)   # salt and pepper alike
  assert set(np.unique(sp)) == {0.0, 0.5, 1.0}
  noisy = np.asarray(corruptions.corrupt(jax.random.PRNGKey(2), x, "gaussian", 0.1))
  assert abs((noisy - x).std() - 0.1) < 0.005 and 0 <= noisy.min() and noisy.max() <= 1
  np.testing.assert_array_equal(corruptions.corrupt(jax.random.PRNGKey(3), x, "none", 0.9), x)


@pytest.mark.parametrize("kind", ["masking", "salt_and_pepper"])
def test_a_colour_pixel_is_corrupted_whole_and_grey_pixels_by_the_same_draws(kind):
  rng = jax.random.PRNGKey(4)
  grey = np.full((50, 8, 8, 1), 0.5, np.float32)
  colour = np.broadcast_to(np.array([0.2, 0.5, 0.8], np.float32), (50, 8, 8, 3))
  hit = np.asarray(corruptions.corrupt(rng, colour, kind, 0.3)) != colour   # [50, 8, 8, 3]
  assert abs(hit.any(-1).mean() - 0.3) < 5 * np.sqrt(0.3 * 0.7 / hit[..., 0].size)
  np.testing.assert_array_equal(hit.any(-1), hit.all(-1))   # every channel, or none
  out = np.asarray(corruptions.corrupt(rng, colour, kind, 0.3))[hit.all(-1)]
  assert np.all((out.min(-1) == out.max(-1)) & np.isin(out[:, 0], (0.0, 1.0)))   # black, white
  # One draw per pixel: on a grey image, whose values are its pixels, the draws of its shape.
  grey_hit = np.asarray(corruptions.corrupt(rng, grey, kind, 0.3)) != grey
  np.testing.assert_array_equal(grey_hit, hit[..., :1])
  direct = jax.random.bernoulli(jax.random.split(rng)[0], 0.3, grey.shape)
  np.testing.assert_array_equal(grey_hit, np.asarray(direct))


def test_corruption_with_per_example_keys_depends_only_on_each_key():
  x = np.random.default_rng(0).random((4, 6, 6, 1)).astype(np.float32)
  keys = jax.random.split(jax.random.PRNGKey(0), 4)
  batch = np.asarray(corruptions.corrupt(keys, x, "salt_and_pepper", 0.5))
  for i in range(4):
    np.testing.assert_array_equal(batch[i], corruptions.corrupt(keys[i], x[i:i + 1],
                                                                "salt_and_pepper", 0.5)[0])


@pytest.mark.parametrize("kind,level,message", [
    ("blur", 0.1, "corruption='blur': expected one of none, gaussian, masking, "
                  "salt_and_pepper"),
    ("masking", 1.5, r"noise_level=1.5: the pixel rate of corruption=masking must be in "
                     r"\[0, 1\]"),
    ("gaussian", -0.1, "noise_level=-0.1: the standard deviation"),
])
def test_bad_corruption_names_the_flag(kind, level, message):
  with pytest.raises(ValueError, match=message):
    corruptions.check_corruption(kind, level)
