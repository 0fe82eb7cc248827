"""train.py: the step lowers the loss, the fused loop is exact, resumable and sync-free."""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from genjax import checkpoint, models, objectives, train

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
  lik = objectives.make_likelihood("bernoulli")
  params = model.init(jax.random.PRNGKey(0), jnp.zeros((1, *SHAPE)))["params"]
  optimizer = optax.adam(1e-2)
  step = train.make_train_step(objectives.make_elbo_loss(model, lik), optimizer)
  return model, lik, params, optimizer, step


def _fresh_state(setup):
  _, _, params, optimizer, _ = setup
  return train.create_train_state(params, optimizer, jax.random.PRNGKey(1))


def _fit(setup, state, epochs, steps_per_chunk=None):
  logs = []
  for state, log in train.fit(state, setup[4], _data(), batch_size=BATCH, num_epochs=epochs,
                              data_rng=jax.random.PRNGKey(2), steps_per_chunk=steps_per_chunk):
    logs.append(log)
  return state, logs


def test_training_lowers_the_loss(setup):
  state, logs = _fit(setup, _fresh_state(setup), epochs=8)
  assert int(state.step) == 8 * (64 // BATCH)
  assert logs[-1]["loss"] < 0.7 * logs[0]["loss"], (logs[0]["loss"], logs[-1]["loss"])
  assert {"step", "epoch", "loss", "recon", "kl", "elbo", "examples_per_s", "grad_norm"} <= set(logs[0])


def test_chunking_does_not_change_the_result(setup):
  whole, logs_a = _fit(setup, _fresh_state(setup), epochs=2)
  split, logs_b = _fit(setup, _fresh_state(setup), epochs=2, steps_per_chunk=2)
  assert len(logs_a) == 2 and len(logs_b) == 4
  assert [log["epoch_end"] for log in logs_b] == [0.0, 1.0, 0.0, 1.0]
  chex.assert_trees_all_close(whole.params, split.params, rtol=1e-5, atol=1e-6)


def test_resume_from_checkpoint_gives_the_same_parameters(setup, tmp_path):
  straight, _ = _fit(setup, _fresh_state(setup), epochs=3)
  first, _ = _fit(setup, _fresh_state(setup), epochs=1)
  manager = checkpoint.make_manager(str(tmp_path))
  checkpoint.save(manager, first, int(first.step))
  restored, step = checkpoint.restore_latest(checkpoint.make_manager(str(tmp_path)),
                                             _fresh_state(setup))
  assert step == int(first.step)
  resumed, logs = _fit(setup, restored, epochs=3)
  assert logs[0]["step"] == 2 * 64 // BATCH
  chex.assert_trees_all_close(straight.params, resumed.params, rtol=1e-6, atol=1e-7)
  chex.assert_trees_all_close(straight.opt_state, resumed.opt_state, rtol=1e-6, atol=1e-7)


def test_fit_compiles_once_and_makes_no_implicit_transfers(setup):
  """Under transfer_guard('disallow') a stray float() or host array in the loop fails."""
  step = chex.assert_max_traces(setup[4], n=1)
  data = jax.device_put(_data())
  state, rng = jax.device_put((_fresh_state(setup), jax.random.PRNGKey(2)))
  with jax.transfer_guard("disallow"):
    chunks = train.fit(state, step, data, batch_size=BATCH, num_epochs=2, data_rng=rng,
                       steps_per_chunk=2)
    logs = [log for _, log in chunks]
  assert [log["step"] for log in logs] == [2, 4, 6, 8]


def test_eval_fn_masks_padding(setup):
  model, lik, params, _, _ = setup
  terms = objectives.make_elbo_terms(model, lik)
  metric = lambda p, b, r: {"image_sum": jnp.sum(b["image"], axis=(1, 2, 3)),
                            **objectives.elbo_metrics(terms(p, b, r))}
  data = _data(n=37)
  evaluate = train.make_eval_fn(metric)
  out = evaluate(params, *train.pad_batches(data, 10), jax.random.PRNGKey(0))
  np.testing.assert_allclose(out["image_sum"], data["image"].sum((1, 2, 3)).mean(), rtol=1e-5)
  again = evaluate(params, *train.pad_batches(data, 10), jax.random.PRNGKey(0))
  assert float(out["elbo"]) == float(again["elbo"])  # a fixed key: a reproducible test ELBO


def test_batch_larger_than_data_is_a_clear_error(setup):
  with pytest.raises(ValueError, match="batch_size=100 is larger than the 64"):
    next(train.fit(_fresh_state(setup), setup[4], _data(), batch_size=100, num_epochs=1,
                   data_rng=jax.random.PRNGKey(0)))


def test_largest_divisor_at_most():
  assert train.largest_divisor_at_most(468, 100) == 78
  assert train.largest_divisor_at_most(468, 1000) == 468
  assert train.largest_divisor_at_most(7, 3) == 1


def test_vmapped_replicas_train_like_separate_runs(setup):
  """Seeds as replicas of one vmapped step: each replica follows its own single run."""
  _, _, params, optimizer, step = setup
  states = [train.create_train_state(jax.tree.map(lambda a: a * s, params), optimizer,
                                     jax.random.PRNGKey(10 + s)) for s in (1, 2)]
  stacked = jax.tree.map(lambda *a: jnp.stack(a), *states)
  kwargs = dict(batch_size=BATCH, num_epochs=2, data_rng=jax.random.PRNGKey(2))
  together = [s for s, _ in train.fit(stacked, jax.vmap(step, in_axes=(0, None)), _data(),
                                      **kwargs)][-1]
  for i, single in enumerate(states):
    alone = [s for s, _ in train.fit(single, step, _data(), **kwargs)][-1]
    chex.assert_trees_all_close(jax.tree.map(lambda a: a[i], together.params), alone.params,
                                rtol=1e-5, atol=1e-6)


def test_freeze_trains_only_the_unfrozen_entries(setup):
  model, lik, params, _, _ = setup
  optimizer = train.freeze(optax.adam(1e-2), params, frozen=("encoder",))
  step = train.make_train_step(objectives.make_elbo_loss(model, lik), optimizer)
  state, _ = _fit(setup[:4] + (step,), train.create_train_state(params, optimizer,
                                                                jax.random.PRNGKey(1)), 1)
  chex.assert_trees_all_equal(state.params["encoder"], params["encoder"])
  assert not np.allclose(state.params["decoder"]["Dense_0"]["kernel"],
                         params["decoder"]["Dense_0"]["kernel"])
