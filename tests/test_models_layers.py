"""models/layers.py: Conv and ConvTranspose against nn.Conv / nn.ConvTranspose (parameters,
values, gradients) under both implementations; the one place that chooses between them;
the conv models' parameter trees unchanged from the nn.Conv / nn.ConvTranspose ones."""

import chex
import flax.linen as nn
import jax
import jax.numpy as jnp
import pytest

from genjax import models
from genjax.models import decoders, encoders, layers

IMPLS = layers.IMPLEMENTATIONS
SHAPES = [(2, 7, 6, 3), (1, 14, 28, 1)]     # odd, even, non-square: every padding edge


@pytest.fixture(autouse=True)
def _float32_matmuls():
  """Compare at float32 precision on any backend (GPUs otherwise multiply in TF32)."""
  with jax.default_matmul_precision("float32"):
    yield


def _flax_conv(features, k, stride):
  return nn.Conv(features, (k, k), strides=(stride, stride), padding="SAME")


def _flax_conv_transpose(features, k, stride):
  return nn.ConvTranspose(features, (k, k), strides=(stride, stride), padding="SAME")


def _assert_equals_flax(layer, reference, x, impl, monkeypatch):
  """Same parameters from the same key; same values and (params, x) gradients."""
  monkeypatch.setenv(layers.ENV_VAR, impl)
  variables = layer.init(jax.random.PRNGKey(1), x)
  chex.assert_trees_all_equal(variables, reference.init(jax.random.PRNGKey(1), x))
  variables = jax.tree.map(lambda v: v + 0.1, variables)      # a nonzero bias too
  y = layer.apply(variables, x)
  cotangent = jax.random.normal(jax.random.PRNGKey(2), y.shape)

  def grads(module):
    return jax.grad(lambda v, xb: jnp.sum(module.apply(v, xb) * cotangent), (0, 1))(variables, x)

  chex.assert_trees_all_close(y, reference.apply(variables, x), atol=1e-5, rtol=1e-5)
  chex.assert_trees_all_close(grads(layer), grads(reference), atol=1e-4, rtol=1e-5)


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("kernel,stride", [(3, 1), (3, 2), (4, 2)])
def test_conv_is_flax_conv(kernel, stride, shape, impl, monkeypatch):
  x = jax.random.normal(jax.random.PRNGKey(0), shape)
  _assert_equals_flax(layers.Conv(4, kernel, stride), _flax_conv(4, kernel, stride), x, impl,
                      monkeypatch)


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("kernel,stride", [(3, 2), (4, 2)])
def test_conv_transpose_is_flax_conv_transpose(kernel, stride, shape, impl, monkeypatch):
  x = jax.random.normal(jax.random.PRNGKey(0), shape)
  _assert_equals_flax(layers.ConvTranspose(4, kernel, stride),
                      _flax_conv_transpose(4, kernel, stride), x, impl, monkeypatch)


@pytest.mark.parametrize("kernel,stride", [(1, 2), (2, 2), (3, 1), (5, 2), (4, 3), (4, 2),
                                           (6, 3)])
def test_both_patch_forms_hold_for_other_kernels_and_strides(kernel, stride):
  """The phase taps follow lax.conv_transpose's "SAME" padding for any k and s, in the
  sub-pixel form and the per-tap form alike (``conv_transpose`` picks one by k % s)."""
  x = jax.random.normal(jax.random.PRNGKey(0), (1, 5, 4, 2))
  w = jax.random.normal(jax.random.PRNGKey(1), (kernel, kernel, 2, 3))
  native = layers.conv_transpose(x, w, stride, "native")
  chex.assert_trees_all_close(layers.conv_transpose_patches(x, w, stride), native, atol=1e-5)
  chex.assert_trees_all_close(layers.conv_transpose_taps(x, w, stride), native, atol=1e-5)
  chex.assert_trees_all_close(layers.conv_transpose(x, w, stride, "patches"), native, atol=1e-5)


@pytest.mark.parametrize("impl", IMPLS)
def test_the_environment_variable_picks_what_the_layers_compute(impl, monkeypatch):
  monkeypatch.setenv(layers.ENV_VAR, impl)
  assert layers.implementation() == impl
  x = jnp.ones((1, 4, 4, 2))
  for layer in (layers.Conv(3, 3, 2), layers.ConvTranspose(3, 3, 2)):
    variables = layer.init(jax.random.PRNGKey(0), x)
    jaxpr = str(jax.make_jaxpr(layer.apply)(variables, x))
    assert ("conv_general_dilated" in jaxpr) == (impl == "native"), (layer, jaxpr)


def test_the_default_is_patches_on_cpu_and_gpu_and_native_elsewhere(monkeypatch):
  monkeypatch.delenv(layers.ENV_VAR, raising=False)
  expected = "native" if jax.default_backend() == "tpu" else "patches"
  assert layers.implementation() == expected
  monkeypatch.setenv(layers.ENV_VAR, "")
  assert layers.implementation() == expected


def test_a_bad_choice_names_the_variable_and_the_allowed_values(monkeypatch):
  monkeypatch.setenv(layers.ENV_VAR, "fft")
  with pytest.raises(ValueError, match="GENJAX_CONV='fft': expected one of patches, native"):
    layers.implementation()
  with pytest.raises(ValueError, match="GENJAX_CONV='fft'"):
    layers.Conv(2, 3).init(jax.random.PRNGKey(0), jnp.ones((1, 4, 4, 1)))
  with pytest.raises(ValueError, match="impl='fft': expected one of patches, native"):
    layers.conv(jnp.ones((1, 4, 4, 1)), jnp.ones((3, 3, 1, 2)), 1, "fft")


def _flax_layers(monkeypatch):
  """Make the conv encoder and decoder build nn.Conv / nn.ConvTranspose, as before layers.py."""
  monkeypatch.setattr(encoders, "Conv", lambda f, k, stride: _flax_conv(f, k, stride))
  monkeypatch.setattr(decoders, "ConvTranspose",
                      lambda f, k, stride: _flax_conv_transpose(f, k, stride))


def test_conv_vae_parameter_tree_is_the_flax_layers_one(monkeypatch):
  """Paths and shapes of the conv VAE (the default run's size) as with nn.Conv /
  nn.ConvTranspose, so existing checkpoints load."""
  x = jax.ShapeDtypeStruct((2, 28, 28, 1), jnp.float32)
  vae = models.build_vae("conv", (28, 28, 1), 32, (256,), 1)
  tree = jax.eval_shape(vae.init, jax.random.PRNGKey(0), x)["params"]
  assert {"Conv_0", "Conv_1"} <= set(tree["encoder"])
  assert {"ConvTranspose_0", "ConvTranspose_1"} <= set(tree["decoder"])
  with monkeypatch.context() as patch:
    _flax_layers(patch)
    flax_tree = jax.eval_shape(vae.init, jax.random.PRNGKey(0), x)["params"]
  chex.assert_trees_all_equal_structs(tree, flax_tree)
  chex.assert_trees_all_equal_shapes_and_dtypes(tree, flax_tree)


@pytest.mark.parametrize("impl", IMPLS)
def test_conv_vae_is_the_flax_layers_one(impl, monkeypatch):
  """Same parameters from the same key, same output, on a tiny conv VAE."""
  monkeypatch.setenv(layers.ENV_VAR, impl)
  x = jax.random.uniform(jax.random.PRNGKey(2), (2, 28, 28, 1))
  vae = models.build_vae("conv", (28, 28, 1), 2, (8,), 1)
  params = vae.init(jax.random.PRNGKey(0), x)
  out = vae.apply(params, x)
  with monkeypatch.context() as patch:
    _flax_layers(patch)
    chex.assert_trees_all_equal(params, vae.init(jax.random.PRNGKey(0), x))
    chex.assert_trees_all_close(out, vae.apply(params, x), atol=1e-5, rtol=1e-5)
