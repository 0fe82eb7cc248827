"""Model shapes and the VAE's methods."""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from genjax import models

SHAPE = (28, 28, 1)


@pytest.mark.parametrize("arch", models.ARCHITECTURES)
@pytest.mark.parametrize("out_channels", [1, 2])
def test_vae_shapes(arch, out_channels):
  vae = models.build_vae(arch, SHAPE, latent_dim=5, hidden=(16,), output_channels=out_channels)
  x = jnp.ones((3, *SHAPE))
  variables = vae.init(jax.random.PRNGKey(0), x)
  mean, log_var = vae.apply(variables, x, method=vae.encode)
  chex.assert_shape([mean, log_var], (3, 5))
  chex.assert_shape(vae.apply(variables, mean, method=vae.decode), (3, 28, 28, out_channels))
  chex.assert_shape(vae.apply(variables, x), (3, 28, 28, out_channels))
  samples = vae.apply(variables, jax.random.PRNGKey(1), 7, method=vae.generate)
  chex.assert_shape(samples, (7, 28, 28, out_channels))
  chex.assert_tree_all_finite(samples)


def test_conv_encoder_uses_strided_convolutions():
  enc = models.ConvEncoder(latent_dim=4, features=(8, 16), hidden=())
  params = enc.init(jax.random.PRNGKey(0), jnp.ones((1, 32, 32, 3)))["params"]
  # Two stride-2 convs: 32 -> 16 -> 8, so the dense head sees 8 * 8 * 16 inputs.
  assert params["mean"]["kernel"].shape == (8 * 8 * 16, 4)


def test_call_reconstructs_from_the_posterior_mean():
  vae = models.build_vae("mlp", SHAPE, 4, (8,), 1)
  x = jax.random.uniform(jax.random.PRNGKey(2), (2, *SHAPE))
  variables = vae.init(jax.random.PRNGKey(0), x)
  mean, _ = vae.apply(variables, x, method=vae.encode)
  np.testing.assert_allclose(vae.apply(variables, x),
                             vae.apply(variables, mean, method=vae.decode), rtol=1e-6)


def test_generate_depends_on_the_key():
  vae = models.build_vae("mlp", SHAPE, 4, (8,), 1)
  variables = vae.init(jax.random.PRNGKey(0), jnp.ones((1, *SHAPE)))
  a = vae.apply(variables, jax.random.PRNGKey(1), 2, method=vae.generate)
  b = vae.apply(variables, jax.random.PRNGKey(2), 2, method=vae.generate)
  assert not np.allclose(a, b)


def test_bad_arguments_name_the_allowed_values():
  with pytest.raises(ValueError, match="model='resnet'.*mlp, conv"):
    models.build_vae("resnet", SHAPE, 4, (8,), 1)
  with pytest.raises(ValueError, match="activation='swish'.*relu"):
    models.build_vae("mlp", SHAPE, 4, (8,), 1, activation="swish")
  dec = models.ConvDecoder(output_shape=(30, 30, 1))
  with pytest.raises(ValueError, match="divisible by 4"):
    dec.init(jax.random.PRNGKey(0), jnp.ones((1, 3)))
