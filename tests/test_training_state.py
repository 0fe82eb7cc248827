"""training/state.py: freezing parameters chosen by a bool mask."""

import chex
import jax
import numpy as np
import optax

from genjax.losses import elbo
from genjax.models import protocol
from genjax.training import state as train_state
from genjax.training import step as train_step
from tests import training_helpers
from tests.training_helpers import _fit

setup = training_helpers.setup   # the shared fixture (module-scoped: one per test module)


def test_freeze_trains_only_the_unfrozen_entries(setup):
  model, lik, params, _, _ = setup
  optimizer = train_state.freeze(optax.adam(1e-2), protocol.encoder_mask(model, params))
  step = train_step.make_train_step(elbo.make_elbo_loss(model, lik), optimizer)
  state, _ = _fit(setup[:4] + (step,), train_state.create_train_state(params, optimizer,
                                                                      jax.random.PRNGKey(1)), 1)
  chex.assert_trees_all_equal(state.params["encoder"], params["encoder"])
  assert not np.allclose(state.params["decoder"]["Dense_0"]["kernel"],
                         params["decoder"]["Dense_0"]["kernel"])


def test_freeze_follows_the_mask_leaf_by_leaf(setup):
  """A mask may freeze part of an entry: here only the decoder's last layer."""
  _, _, params, _, _ = setup
  mask = jax.tree.map(lambda _: False, params)
  mask["decoder"]["Dense_1"] = jax.tree.map(lambda _: True, params["decoder"]["Dense_1"])
  optimizer = train_state.freeze(optax.sgd(1.0), mask)
  grads = jax.tree.map(np.ones_like, params)
  updates, _ = optimizer.update(grads, optimizer.init(params), params)
  chex.assert_trees_all_equal(updates["decoder"]["Dense_1"],
                              jax.tree.map(np.zeros_like, params["decoder"]["Dense_1"]))
  chex.assert_trees_all_equal(updates["encoder"], jax.tree.map(lambda g: -g, grads["encoder"]))
