"""losses/gan.py: the GAN losses and R1 against direct formulas."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from genjax.losses import gan


def _sigmoid(x):
  return 1.0 / (1.0 + np.exp(-x))


def _reference_losses(real, fake, kind):
  """(D loss, G loss) written out with explicit sigmoids and logs, in float64."""
  sr, sf = _sigmoid(real), _sigmoid(fake)
  if kind == "hinge":
    return np.mean(np.maximum(0, 1 - real)) + np.mean(np.maximum(0, 1 + fake)), -np.mean(fake)
  d_loss = np.mean(-np.log(sr)) + np.mean(-np.log(1 - sf))
  g_loss = np.mean(np.log(1 - sf)) if kind == "minimax" else np.mean(-np.log(sf))
  return d_loss, g_loss


@pytest.mark.parametrize("kind", gan.GAN_LOSSES)
def test_gan_losses_match_direct_formulas_and_stay_finite(kind):
  rng = np.random.default_rng(0)
  real, fake = rng.uniform(-4, 4, 5), rng.uniform(-4, 4, 7)   # unequal sizes: separate means
  d_ref, g_ref = _reference_losses(real, fake, kind)
  np.testing.assert_allclose(gan.gan_discriminator_loss(jnp.asarray(real),
                                                        jnp.asarray(fake), kind),
                             d_ref, rtol=1e-5)
  np.testing.assert_allclose(gan.gan_generator_loss(jnp.asarray(fake), kind), g_ref,
                             rtol=1e-5)
  # Logits far past where 1 - sigmoid rounds to 0 in float32: values and gradients finite.
  big = jnp.array([-200.0, 200.0])
  for value, grad in [jax.value_and_grad(lambda f: gan.gan_generator_loss(f, kind))(big),
                      jax.value_and_grad(lambda r: gan.gan_discriminator_loss(
                          r, big, kind))(big)]:
    assert np.isfinite(value) and np.all(np.isfinite(grad))


def test_bad_gan_loss_is_a_one_line_error_listing_the_kinds():
  for fn in (lambda: gan.gan_generator_loss(jnp.zeros(2), "wasserstein"),
             lambda: gan.gan_discriminator_loss(jnp.zeros(2), jnp.zeros(2), "wgan")):
    with pytest.raises(ValueError, match="expected one of minimax, non_saturating, hinge$"):
      fn()


def test_r1_penalty_matches_the_closed_form_input_gradient():
  # D(x) = <w, x> + c/2 ||x||^2 has grad_x D(x) = w + c x, different for every image.
  rng = np.random.default_rng(1)
  w, x, c, gamma = rng.normal(size=(3, 3, 2)), rng.normal(size=(4, 3, 3, 2)), 0.7, 2.5
  apply = lambda p, xs: (jnp.sum(p["w"] * xs, axis=(1, 2, 3))              # noqa: E731
                         + 0.5 * p["c"] * jnp.sum(xs ** 2, axis=(1, 2, 3)))
  got = gan.r1_penalty(apply, {"w": jnp.asarray(w), "c": c}, jnp.asarray(x), gamma)
  expected = gamma / 2 * np.mean(np.sum((w + c * x) ** 2, axis=(1, 2, 3)))
  np.testing.assert_allclose(got, expected, rtol=1e-5)
