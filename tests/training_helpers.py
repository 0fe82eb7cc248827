"""Shared by the training tests: tiny learnable data, a VAE with its step (the ``setup``
fixture), a fresh state and a fit to the end."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from genjax import likelihoods, models
from genjax.losses import elbo
from genjax.training import loop
from genjax.training import state as train_state
from genjax.training import step as train_step

SHAPE = (8, 8, 1)
BATCH = 16


def _data(n=64, seed=0):
  rng = np.random.default_rng(seed)
  # Two prototypes plus noise: learnable structure in a few steps.
  protos = (rng.random((2, *SHAPE)) > 0.5).astype(np.float32)
  x = protos[rng.integers(0, 2, n)]
  flip = rng.random(x.shape) < 0.05
  return {"image": np.where(flip, 1 - x, x).astype(np.float32)}


@pytest.fixture(scope="module")
def setup():
  model = models.build_vae("mlp", SHAPE, latent_dim=2, hidden=(32,), output_channels=1)
  lik = likelihoods.make_likelihood("bernoulli")
  params = model.init(jax.random.PRNGKey(0), jnp.zeros((1, *SHAPE)))["params"]
  optimizer = optax.adam(1e-2)
  step = train_step.make_train_step(elbo.make_elbo_loss(model, lik), optimizer)
  return model, lik, params, optimizer, step


def _fresh_state(setup):
  _, _, params, optimizer, _ = setup
  return train_state.create_train_state(params, optimizer, jax.random.PRNGKey(1))


def _fit(setup, state, epochs, steps_per_chunk=None):
  logs = []
  for state, log in loop.fit(state, setup[4], _data(), batch_size=BATCH, num_epochs=epochs,
                             data_rng=jax.random.PRNGKey(2), steps_per_chunk=steps_per_chunk):
    logs.append(log)
  return state, logs
