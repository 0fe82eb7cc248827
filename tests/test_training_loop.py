"""training/loop.py: the fused loop is exact, resumable and sync-free; evaluation masks
padding; non-finite metrics stop it with ``Diverged``."""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from genjax.losses import elbo
from genjax.training import checkpoint, loop
from genjax.training import state as train_state
from genjax.training import step as train_step
from tests import training_helpers
from tests.training_helpers import BATCH, _data, _fit, _fresh_state

setup = training_helpers.setup   # the shared fixture (module-scoped: one per test module)


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
    chunks = loop.fit(state, step, data, batch_size=BATCH, num_epochs=2, data_rng=rng,
                      steps_per_chunk=2)
    logs = [log for _, log in chunks]
  assert [log["step"] for log in logs] == [2, 4, 6, 8]


def test_eval_fn_masks_padding(setup):
  model, lik, params, _, _ = setup
  terms = elbo.make_elbo_terms(model, lik)
  metric = lambda p, b, r: {"image_sum": jnp.sum(b["image"], axis=(1, 2, 3)),
                            **elbo.elbo_metrics(terms(p, b, r))}
  data = _data(n=37)
  evaluate = loop.make_eval_fn(metric)
  out = evaluate(params, *loop.pad_batches(data, 10), jax.random.PRNGKey(0))
  np.testing.assert_allclose(out["image_sum"], data["image"].sum((1, 2, 3)).mean(), rtol=1e-5)
  again = evaluate(params, *loop.pad_batches(data, 10), jax.random.PRNGKey(0))
  assert float(out["elbo"]) == float(again["elbo"])  # a fixed key: a reproducible test ELBO


@pytest.mark.parametrize("batches_per_call", [1, 2, 5])
def test_chunked_eval_fn_gives_the_numbers_of_one_call(setup, batches_per_call):
  """Host-side chunks of batches (for a progress bar) keep each batch's key fold_in(rng, b)
  and the one reduction over all batches: the same bits as make_eval_fn."""
  model, lik, params, _, _ = setup
  terms = elbo.make_elbo_terms(model, lik, "mc")          # random: the keys must match too
  metric = lambda p, b, r: elbo.elbo_metrics(terms(p, b, r))
  batches = loop.pad_batches(_data(n=47), 5)                # 10 batches, the last padded
  whole = loop.make_eval_fn(metric)(params, *batches, jax.random.PRNGKey(3))
  done = []
  chunked = loop.make_chunked_eval_fn(metric, batches_per_call=batches_per_call)(
      params, *batches, jax.random.PRNGKey(3), done.append)
  assert sum(done) == 10 and len(done) == 10 // batches_per_call
  for key in whole:
    np.testing.assert_array_equal(chunked[key], whole[key], err_msg=key)


def test_batch_larger_than_data_is_a_clear_error(setup):
  with pytest.raises(ValueError, match="batch_size=100 is larger than the 64"):
    next(loop.fit(_fresh_state(setup), setup[4], _data(), batch_size=100, num_epochs=1,
                  data_rng=jax.random.PRNGKey(0)))
  assert loop.steps_per_epoch(64, 10) == 6 and loop.steps_per_epoch(64, 64) == 1


def test_non_finite_metrics_raise_diverged_before_the_chunk_is_yielded(setup):
  model, lik, params, _, _ = setup
  huge = optax.adam(1e30)   # step 1 is finite; its update makes step 2's loss NaN
  step = train_step.make_train_step(elbo.make_elbo_loss(model, lik), huge)
  state = train_state.create_train_state(params, huge, jax.random.PRNGKey(1))
  logs = []
  with pytest.raises(loop.Diverged) as diverged:
    for _, log in loop.fit(state, step, _data(), batch_size=BATCH, num_epochs=1,
                           data_rng=jax.random.PRNGKey(2), steps_per_chunk=1):
      logs.append(log)
  assert [log["step"] for log in logs] == [1]      # the diverged chunk is never handed out
  e = diverged.value
  assert isinstance(e, FloatingPointError) and e.step == e.first_step == 2
  assert "loss" in e.bad and not np.isfinite(e.bad["loss"])
  assert str(e).startswith("training diverged at step 2: non-finite ")
  assert str(loop.Diverged(8, {"loss": float("inf")}, first_step=5)) == (
      "training diverged by step 8 (in steps 5-8): non-finite loss=inf")


def test_largest_divisor_at_most():
  assert loop.largest_divisor_at_most(468, 100) == 78
  assert loop.largest_divisor_at_most(468, 1000) == 468
  assert loop.largest_divisor_at_most(7, 3) == 1


def test_vmapped_replicas_train_like_separate_runs(setup):
  """Seeds as replicas of one vmapped step: each replica follows its own single run."""
  _, _, params, optimizer, step = setup
  states = [train_state.create_train_state(jax.tree.map(lambda a: a * s, params), optimizer,
                                           jax.random.PRNGKey(10 + s)) for s in (1, 2)]
  stacked = jax.tree.map(lambda *a: jnp.stack(a), *states)
  kwargs = dict(batch_size=BATCH, num_epochs=2, data_rng=jax.random.PRNGKey(2))
  together = [s for s, _ in loop.fit(stacked, jax.vmap(step, in_axes=(0, None)), _data(),
                                     **kwargs)][-1]
  for i, single in enumerate(states):
    alone = [s for s, _ in loop.fit(single, step, _data(), **kwargs)][-1]
    chex.assert_trees_all_close(jax.tree.map(lambda a: a[i], together.params), alone.params,
                                rtol=1e-5, atol=1e-6)
