"""Model shapes and the latent-variable model protocol of the VAE, CVAE and M2."""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from genjax import distributions as D
from genjax import models
from genjax.models import protocol
from tests import regression_helpers as reg

SHAPE = (28, 28, 1)


@pytest.mark.parametrize("arch", models.ARCHITECTURES)
@pytest.mark.parametrize("out_channels", [1, 2])
def test_vae_shapes(arch, out_channels):
  vae = models.build_vae(arch, SHAPE, latent_dim=5, hidden=(16,), output_channels=out_channels)
  x = jnp.ones((3, *SHAPE))
  params = vae.init(jax.random.PRNGKey(0), x)["params"]
  q = protocol.posterior(vae, params, x)
  assert isinstance(q, D.DiagonalGaussian)
  chex.assert_shape([q.mean, q.log_var], (3, 5))
  assert protocol.prior(vae, params) == D.StandardNormal(5)
  chex.assert_shape(protocol.decode(vae, params, q.mean), (3, 28, 28, out_channels))
  chex.assert_shape(vae.apply({"params": params}, x), (3, 28, 28, out_channels))
  z = protocol.sample_prior(vae, params, jax.random.PRNGKey(1), 7)
  chex.assert_shape(z, (7, 5))
  samples = protocol.decode(vae, params, z)
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
  params = vae.init(jax.random.PRNGKey(0), x)["params"]
  mean = protocol.posterior(vae, params, x).mean
  np.testing.assert_allclose(vae.apply({"params": params}, x),
                             protocol.decode(vae, params, mean), rtol=1e-6)


def test_prior_samples_depend_on_the_key_and_keep_the_pre_protocol_numbers():
  """z ~ N(0, I) is jax.random.normal(rng, (num, latent)); decoded, the tiny VAE's and CVAE's
  prior samples equal those of the pre-protocol ``model.generate``
  (``tests/regression_helpers.py``)."""
  vae, params, _ = reg.vae()
  z = protocol.sample_prior(vae, params, jax.random.PRNGKey(6), 3)
  np.testing.assert_array_equal(z, jax.random.normal(jax.random.PRNGKey(6), (3, 2)))
  out = protocol.decode(vae, params, z)
  np.testing.assert_allclose((jnp.sum(out), out[0, 0, 0, 0], jnp.sum(jnp.abs(out))),
                             (33.0867653, -0.143649876, 1034.39478), rtol=reg.RTOL)
  assert not np.allclose(z, protocol.sample_prior(vae, params, jax.random.PRNGKey(7), 3))
  cvae, cparams, batch = reg.cvae()
  c = batch["condition"][:3]
  out = protocol.decode(cvae, cparams, protocol.sample_prior(cvae, cparams,
                                                             jax.random.PRNGKey(6), 3), c)
  np.testing.assert_allclose((jnp.sum(out), jnp.sum(jnp.abs(out))), (12.9545069, 501.338013),
                             rtol=reg.RTOL)


def test_conditions_are_required_exactly_by_conditional_models():
  vae, params, batch = reg.vae()
  with pytest.raises(ValueError, match="VAE is unconditional: it takes no condition"):
    protocol.posterior(vae, params, batch["image"], jnp.zeros((8, 10)))
  cvae, cparams, cbatch = reg.cvae()
  with pytest.raises(ValueError, match=r"CVAE is conditional: pass condition=\[batch, C\]"):
    protocol.decode(cvae, cparams, jnp.zeros((8, 2)))


def test_encoder_mask_marks_the_declared_encoder_entries():
  m2, params, _ = reg.m2()
  mask = protocol.encoder_mask(m2, params)
  assert all(jax.tree.leaves(mask["encoder"])) and all(jax.tree.leaves(mask["classifier"]))
  assert not any(jax.tree.leaves(mask["decoder"]))
  chex.assert_trees_all_equal_structs(mask, params)
  chex.assert_trees_all_equal(protocol.stop_gradient_except_encoder(m2, params), params)
  grads = jax.grad(lambda p: sum(jnp.sum(v) for v in jax.tree.leaves(
      protocol.stop_gradient_except_encoder(m2, p))))(params)
  assert all(np.all(g == 1) for g in jax.tree.leaves(grads["encoder"]))
  assert all(np.all(g == 1) for g in jax.tree.leaves(grads["classifier"]))
  assert all(np.all(g == 0) for g in jax.tree.leaves(grads["decoder"]))
  with pytest.raises(ValueError, match=r"encoder_params=\('encoder',\): expected names"):
    protocol.encoder_mask(models.build_vae("mlp", SHAPE, 2, (8,), 1), {"decoder": {}})


def test_bad_arguments_name_the_allowed_values():
  with pytest.raises(ValueError, match="model='resnet'.*mlp, conv"):
    models.build_vae("resnet", SHAPE, 4, (8,), 1)
  with pytest.raises(ValueError, match="activation='swish'.*relu"):
    models.build_vae("mlp", SHAPE, 4, (8,), 1, activation="swish")
  with pytest.raises(ValueError, match="prior='gmm': expected one of standard_normal, vamp"):
    models.build_vae("mlp", SHAPE, 4, (8,), 1, prior="gmm")
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
  code = (protocol.posterior(pre, pre_params, x).mean if stochastic
          else pre.apply({"params": pre_params}, x, method=pre.encode))
  np.testing.assert_allclose(logits, code @ params["head"]["kernel"] + params["head"]["bias"],
                             rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("arch", models.ARCHITECTURES)
def test_cvae_condition_enters_encoder_and_decoder(arch):
  cvae = models.build_cvae(arch, SHAPE, latent_dim=3, hidden=(16,), output_channels=1)
  x = jax.random.uniform(jax.random.PRNGKey(0), (2, *SHAPE))
  y = jax.nn.one_hot(jnp.array([1, 4]), 10)
  params = cvae.init(jax.random.PRNGKey(1), x, y)["params"]
  q = protocol.posterior(cvae, params, x, y)
  chex.assert_shape([q.mean, q.log_var], (2, 3))
  other = jax.nn.one_hot(jnp.array([2, 7]), 10)
  assert not np.allclose(q.mean, protocol.posterior(cvae, params, x, other).mean)
  out = protocol.decode(cvae, params, q.mean, y)
  chex.assert_shape(out, (2, *SHAPE))
  assert not np.allclose(out, protocol.decode(cvae, params, q.mean, other))
  z = protocol.sample_prior(cvae, params, jax.random.PRNGKey(2), 2)
  chex.assert_shape(protocol.decode(cvae, params, z, y), (2, *SHAPE))


def test_m2_has_a_classifier_and_a_conditional_vae():
  m2 = models.build_m2("mlp", SHAPE, latent_dim=3, hidden=(16,), output_channels=1,
                       num_classes=10)
  x = jax.random.uniform(jax.random.PRNGKey(0), (2, *SHAPE))
  params = m2.init(jax.random.PRNGKey(1), x)["params"]
  assert set(params) == {"encoder", "decoder", "classifier"}
  logits = m2.apply({"params": params}, x, method=m2.classify)
  chex.assert_shape(logits, (2, 10))
  y = jax.nn.one_hot(jnp.array([0, 9]), 10)
  mean = protocol.posterior(m2, params, x, y).mean
  chex.assert_shape(protocol.decode(m2, params, mean, y), (2, *SHAPE))
  assert m2.encoder_params == ("encoder", "classifier")
