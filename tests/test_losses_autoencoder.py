"""losses/autoencoder.py: reconstruction errors against direct formulas, and the denoising
loss."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from genjax import corruptions, models
from genjax.losses import autoencoder

from tests.loss_helpers import IMG, _sigmoid


def test_reconstruction_errors_against_direct_formulas():
  rng = np.random.default_rng(0)
  x = rng.random((3, *IMG)).astype(np.float32)
  out = rng.normal(size=(3, *IMG)).astype(np.float32) * 3
  p = _sigmoid(out)
  np.testing.assert_allclose(autoencoder.reconstruction_error(x, out, "mse"),
                             ((x - p) ** 2).sum((1, 2, 3)), rtol=1e-5)
  bce = -(x * np.log(p) + (1 - x) * np.log(1 - p)).sum((1, 2, 3))
  np.testing.assert_allclose(autoencoder.reconstruction_error(x, out, "bernoulli"), bce,
                             rtol=1e-5)
  with pytest.raises(ValueError, match="reconstruction='l1': expected one of mse, bernoulli"):
    autoencoder.reconstruction_error(x, out, "l1")


@pytest.fixture(scope="module")
def tiny_ae():
  ae = models.build_autoencoder("mlp", IMG, latent_dim=2, hidden=(8,))
  params = ae.init(jax.random.PRNGKey(0), jnp.zeros((1, *IMG)))["params"]
  x = jax.random.uniform(jax.random.PRNGKey(1), (5, *IMG))
  return ae, params, {"image": x}


def test_denoising_loss_encodes_the_corrupted_input_and_targets_the_clean_image(tiny_ae):
  ae, params, batch = tiny_ae
  rng = jax.random.PRNGKey(7)
  loss, metrics = autoencoder.make_autoencoder_loss(ae, "mse", "masking", 0.5)(params, batch, rng)
  noisy = corruptions.corrupt(rng, batch["image"], "masking", 0.5)
  out = ae.apply({"params": params}, noisy)
  clean_target = ((batch["image"] - _sigmoid(out)) ** 2).sum((1, 2, 3)).mean()
  noisy_target = ((noisy - _sigmoid(out)) ** 2).sum((1, 2, 3)).mean()
  np.testing.assert_allclose(loss, clean_target, rtol=1e-5)
  assert abs(float(loss) - noisy_target) > 1e-3
  assert float(metrics["recon"]) == float(loss)
  # Without corruption it is the plain autoencoder: the input is the target.
  plain, _ = autoencoder.make_autoencoder_loss(ae, "bernoulli")(params, batch, rng)
  out = ae.apply({"params": params}, batch["image"])
  np.testing.assert_allclose(
      plain, autoencoder.reconstruction_error(batch["image"], out, "bernoulli").mean(), rtol=1e-6)
