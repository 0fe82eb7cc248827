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


def test_top_k_weights_keep_the_k_most_real_samples_and_the_loss_is_their_mean():
  rng = np.random.default_rng(2)
  fake = rng.normal(size=9)
  for k in (1, 4, 9):
    weights = np.asarray(gan.top_k_weights(jnp.asarray(fake), k))
    kept = np.argsort(-fake)[:k]
    expected = np.zeros(9)
    expected[kept] = 1.0 / k
    np.testing.assert_allclose(weights, expected, rtol=1e-6)
    for kind in gan.GAN_LOSSES:
      np.testing.assert_allclose(
          gan.gan_generator_loss(jnp.asarray(fake), kind, jnp.asarray(weights)),
          _reference_losses(fake, fake[kept], kind)[1], rtol=1e-5)
  # No gradient reaches the dropped samples, nor flows through the choice itself.
  grad = jax.grad(lambda f: gan.gan_generator_loss(f, "non_saturating",
                                                   gan.top_k_weights(f, 4)))(jnp.asarray(fake))
  assert np.count_nonzero(np.asarray(grad)) == 4
  # Ties at the threshold: exactly k are kept, the earlier ones.
  np.testing.assert_allclose(gan.top_k_weights(jnp.array([1.0, 2.0, 2.0, 2.0]), 2),
                             [0.0, 0.5, 0.5, 0.0])


def test_top_k_weights_choose_from_the_global_batch_across_devices():
  """Split over two 'devices' (vmap with an axis name), each device's weights are the
  global batch's times the device count, so the pmean of the weighted losses is the global
  top-k mean, even when one device holds all k."""
  fake = jnp.array([5.0, 4.0, 3.0, -1.0, -2.0, -3.0, 0.5, 0.0])
  for k in (3, 5):
    per_device = jax.vmap(lambda f: gan.top_k_weights(f, k, "devices"),
                          axis_name="devices")(fake.reshape(2, 4))
    np.testing.assert_allclose(per_device.reshape(-1), 2 * gan.top_k_weights(fake, k),
                               rtol=1e-6)
