"""training/parallel.py: pmap and sharded placements give the single-device numbers, and
compile once.

Runs in a subprocess with 8 simulated CPU devices (XLA reads the device count only at
start-up), bounded by a timeout.
"""

import os
import pathlib
import subprocess
import sys

import launch

ROOT = pathlib.Path(__file__).resolve().parents[1]

SCRIPT = r'''
import chex, jax, jax.numpy as jnp, numpy as np, optax
from genjax import likelihoods, models
from genjax.data import sources, transforms
from genjax.losses import elbo
from genjax.training import loop, parallel
from genjax.training import state as train_state
from genjax.training import step as train_step

assert jax.device_count() == 8, jax.devices()
compiles = []
jax.monitoring.register_event_duration_secs_listener(
    lambda name, *a, **k: compiles.append(name) if name.endswith("backend_compile_duration") else None)
x = sources.synthetic(64, 8, shape=(8, 8, 1)).train_images
model = models.build_vae("mlp", (8, 8, 1), 3, (16,), 1)
lik = likelihoods.make_likelihood("bernoulli")
params = model.init(jax.random.PRNGKey(0), jnp.zeros((1, 8, 8, 1)))["params"]
opt = optax.adam(1e-2)
pre = lambda b, k: {**b, "image": transforms.preprocess(b["image"], k, "dynamic")}
for variant in ("elbo", "iwae_dreg=4"):
  loss = elbo.make_loss(model, lik, elbo.parse_variant(variant))
  results = {}
  for kind in parallel.PLACEMENTS:
    placement = parallel.make_placement(kind)
    step = train_step.make_train_step(loss, opt, axis_name=placement.axis_name)
    state = train_state.create_train_state(params, opt, jax.random.PRNGKey(1))
    logs = []
    for state, log in loop.fit(state, step, {"image": x}, batch_size=16, num_epochs=3,
                               data_rng=jax.random.PRNGKey(2), preprocess=pre,
                               steps_per_chunk=2, placement=placement):
      if not logs:
        compiled_by_first_chunk = len(compiles)
      logs.append(log["loss"])
    # Everything compiles in the first chunk: state fed back in must not recompile.
    assert len(compiles) == compiled_by_first_chunk, (variant, kind, len(compiles))
    results[kind] = (state, logs)
    print(variant, kind, placement.num_devices, logs[-1], flush=True)
  for kind in ("pmap", "sharded"):
    chex.assert_trees_all_close(results[kind][0].params, results["none"][0].params,
                                rtol=2e-4, atol=2e-5)
    np.testing.assert_allclose(results[kind][1], results["none"][1], rtol=1e-4)
  assert int(results["pmap"][0].step) == 12
try:
  parallel.check_batch_size(parallel.make_placement("sharded"), 12)
except ValueError as e:
  print("ERROR:", e)
print("OK")
'''


def _run(code, devices=8, timeout=300):
  env = {**os.environ, "XLA_FLAGS": launch.host_devices_xla_flags(devices),
         "PYTHONPATH": str(ROOT)}
  return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                        timeout=timeout, cwd=ROOT, env=env)


def test_pmap_and_sharded_steps_match_single_device_on_8_devices():
  result = _run(SCRIPT)
  assert result.returncode == 0, result.stderr[-3000:]
  assert "ERROR: batch_size=12 must divide by the 8 devices of parallel=sharded" in result.stdout
  assert result.stdout.strip().endswith("OK")
