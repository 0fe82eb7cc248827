"""The fixed tiny models, data and keys behind the pre-protocol regression tests
(test_losses_elbo.py, test_metrics_likelihood.py, test_losses_semi_supervised.py,
test_models.py): an MLP VAE, CVAE and M2 on 28x28 binarized images with a 2-d latent,
parameters from fixed keys, a batch of 8 images, one key and 8 per-example keys.

Their reference numbers were computed with the implementation before the latent-variable
model protocol (``genjax.models.protocol``): hard-coded N(0, I) prior and Gaussian
posterior, ``elbo.encode/decode``, ``params["encoder"]`` string keys. The default family
must reproduce them.
"""

import jax
import jax.numpy as jnp

from genjax import likelihoods, models

SHAPE = (28, 28, 1)
RTOL = 1e-5


def images():
  """[8, 28, 28, 1] binarized images."""
  return (jax.random.uniform(jax.random.PRNGKey(1), (8, *SHAPE)) > 0.5).astype(jnp.float32)


def keys():
  """{"one_key": one key, "per_example": [8, 2] per-example keys}."""
  return {"one_key": jax.random.PRNGKey(2),
          "per_example": jax.random.split(jax.random.PRNGKey(3), 8)}


def bernoulli():
  return likelihoods.make_likelihood("bernoulli")


def vae():
  """(model, params, batch) of models.build_vae("mlp", (28, 28, 1), 2, (16,), 1)."""
  model = models.build_vae("mlp", SHAPE, 2, (16,), 1)
  x = images()
  return model, model.init(jax.random.PRNGKey(0), x)["params"], {"image": x}


def cvae():
  """(model, params, batch): the CVAE's twin, conditions one-hot(i mod 10)."""
  model = models.build_cvae("mlp", SHAPE, 2, (16,), 1)
  x, c = images(), jax.nn.one_hot(jnp.arange(8) % 10, 10)
  return model, model.init(jax.random.PRNGKey(7), x, c)["params"], {"image": x, "condition": c}


def m2():
  """(model, params, batch) of an M2 with 3 classes: 4 unlabelled and 4 labelled images."""
  model = models.build_m2("mlp", SHAPE, 2, (16,), 1, num_classes=3)
  x = images()
  params = model.init(jax.random.PRNGKey(8), x)["params"]
  return model, params, {"image": x[:4], "labelled_image": x[4:], "label": jnp.array([0, 1, 2, 1])}
