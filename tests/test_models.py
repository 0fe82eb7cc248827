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


@pytest.mark.parametrize("arch", models.ARCHITECTURES)
def test_autoencoder_is_deterministic_with_one_code_head(arch):
  ae = models.build_autoencoder(arch, SHAPE, latent_dim=3, hidden=(16,))
  x = jax.random.uniform(jax.random.PRNGKey(0), (2, *SHAPE))
  variables = ae.init(jax.random.PRNGKey(1), x)
  z = ae.apply(variables, x, method=ae.encode)
  chex.assert_shape(z, (2, 3))
  assert set(variables["params"]["encoder"]) >= {"code"}
  assert not {"mean", "log_var"} & set(variables["params"]["encoder"])
  out = ae.apply(variables, x)
  chex.assert_shape(out, (2, *SHAPE))
  recon = jax.nn.sigmoid(out)
  assert float(recon.min()) >= 0 and float(recon.max()) <= 1
  np.testing.assert_array_equal(out, ae.apply(variables, x))   # no noise anywhere


@pytest.mark.parametrize("stochastic", [False, True])
def test_classifier_takes_a_pretrained_encoder_unchanged(stochastic):
  """A classifier's encoder has the same parameter tree as the AE's (or the VAE's)."""
  x = jnp.ones((2, *SHAPE))
  pre = (models.build_vae("mlp", SHAPE, 4, (8,), 1) if stochastic
         else models.build_autoencoder("mlp", SHAPE, 4, (8,)))
  pre_params = pre.init(jax.random.PRNGKey(0), x)["params"]
  clf = models.build_classifier("mlp", 4, (8,), num_classes=10, stochastic=stochastic)
  params = clf.init(jax.random.PRNGKey(1), x)["params"]
  chex.assert_trees_all_equal_shapes(params["encoder"], pre_params["encoder"])
  logits = clf.apply({"params": {**params, "encoder": pre_params["encoder"]}}, x)
  chex.assert_shape(logits, (2, 10))
  # The head reads the code (the posterior mean for a VAE encoder).
  code = pre.apply({"params": pre_params}, x, method=pre.encode)
  code = code[0] if stochastic else code
  np.testing.assert_allclose(logits, code @ params["head"]["kernel"] + params["head"]["bias"],
                             rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("arch", models.ARCHITECTURES)
def test_cvae_condition_enters_encoder_and_decoder(arch):
  cvae = models.build_cvae(arch, SHAPE, latent_dim=3, hidden=(16,), output_channels=1)
  x = jax.random.uniform(jax.random.PRNGKey(0), (2, *SHAPE))
  y = jax.nn.one_hot(jnp.array([1, 4]), 10)
  variables = cvae.init(jax.random.PRNGKey(1), x, y)
  mean, log_var = cvae.apply(variables, x, y, method=cvae.encode)
  chex.assert_shape([mean, log_var], (2, 3))
  other = jax.nn.one_hot(jnp.array([2, 7]), 10)
  assert not np.allclose(mean, cvae.apply(variables, x, other, method=cvae.encode)[0])
  out = cvae.apply(variables, mean, y, method=cvae.decode)
  chex.assert_shape(out, (2, *SHAPE))
  assert not np.allclose(out, cvae.apply(variables, mean, other, method=cvae.decode))
  chex.assert_shape(cvae.apply(variables, jax.random.PRNGKey(2), y, method=cvae.generate),
                    (2, *SHAPE))


def test_m2_has_a_classifier_and_a_conditional_vae():
  m2 = models.build_m2("mlp", SHAPE, latent_dim=3, hidden=(16,), output_channels=1,
                       num_classes=10)
  x = jax.random.uniform(jax.random.PRNGKey(0), (2, *SHAPE))
  params = m2.init(jax.random.PRNGKey(1), x)["params"]
  assert set(params) == {"encoder", "decoder", "classifier"}
  logits = m2.apply({"params": params}, x, method=m2.classify)
  chex.assert_shape(logits, (2, 10))
  y = jax.nn.one_hot(jnp.array([0, 9]), 10)
  mean, _ = m2.apply({"params": params}, x, y, method=m2.encode)
  chex.assert_shape(m2.apply({"params": params}, mean, y, method=m2.decode), (2, *SHAPE))
