"""Placing one train step on 1, N and many devices and hosts.

The step is written once, for one device (``training.step.make_train_step``). A ``Placement``
runs a fused chunk of such steps:

* ``none``: plain ``jax.jit`` on the first device;
* ``pmap``: ``jax.pmap`` over the local devices; the step averages gradients and metrics
  with ``lax.pmean`` over the axis ``"batch"`` (``make_train_step(..., axis_name=...)``),
  each device gathers its slice of the global batch;
* ``sharded``: ``jax.jit`` over a device mesh (``jax.make_mesh``) with the batch sharded
  on the ``"data"`` axis and everything else replicated; XLA inserts the all-reduces.

Randomness is per example: example ``j`` of step ``t``'s global batch draws its noise
from ``fold_in(key_t, j)``, so each device draws different noise and the global result
equals the single-device result on the same global batch, whatever the placement
(``tests/test_training_parallel.py``). Across processes (``jax.distributed``), ``sharded``
spans every process's devices and each process computes its share of the batch.
"""

from __future__ import annotations

import dataclasses
import itertools
from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import NamedSharding, PartitionSpec as P

PLACEMENTS = ("none", "pmap", "sharded")
PMAP_AXIS = "batch"
MESH_AXIS = "data"


@dataclasses.dataclass(frozen=True)
class Placement:
  """Where the train step runs. ``num_devices`` counts every process's devices;
  ``devices`` are this process's devices it uses (pmap)."""
  kind: str
  num_devices: int
  mesh: jax.sharding.Mesh | None = None
  devices: tuple = ()

  @property
  def axis_name(self) -> str | None:
    """The collective axis the step must ``pmean`` over (only under pmap)."""
    return PMAP_AXIS if self.kind == "pmap" else None


def make_placement(kind: str, num_devices: int | None = None) -> Placement:
  """``none`` uses one device; ``pmap`` the local devices; ``sharded`` all devices.

  ``num_devices`` restricts pmap / sharded to the first that many devices (for scaling
  studies); by default they use all there are.
  """
  if kind not in PLACEMENTS:
    raise ValueError(f"parallel={kind!r}: expected one of {', '.join(PLACEMENTS)}")
  if kind == "none":
    return Placement(kind, 1, devices=(jax.local_devices()[0],))
  available = jax.local_devices() if kind == "pmap" else jax.devices()
  n = num_devices or len(available)
  if not 1 <= n <= len(available):
    raise ValueError(f"num_devices={n}: parallel={kind} has {len(available)} devices")
  if kind == "pmap":
    if jax.process_count() > 1:
      raise ValueError("parallel=pmap runs on one process's devices; use parallel=sharded "
                       "across processes")
    return Placement(kind, n, devices=tuple(available[:n]))
  mesh = jax.make_mesh((n,), (MESH_AXIS,), axis_types=(jax.sharding.AxisType.Auto,),
                       devices=available[:n])
  return Placement(kind, n, mesh)


def check_batch_size(placement: Placement, batch_size: int) -> None:
  """The global batch must split evenly over the devices."""
  if batch_size % placement.num_devices:
    raise ValueError(f"batch_size={batch_size} must divide by the {placement.num_devices} "
                     f"devices of parallel={placement.kind}")


def replicate(placement: Placement, tree: Any) -> Any:
  """A copy of ``tree`` on every device the placement uses (host or device arrays)."""
  if placement.kind == "none":
    return jax.tree.map(jnp.copy, jax.device_put(tree))
  if placement.kind == "pmap":  # a leading device axis, one slice per device
    # The sharding pmap gives its outputs, so state fed back in does not recompile.
    devices = placement.devices
    stacked = NamedSharding(jax.sharding.Mesh(np.array(devices), (PMAP_AXIS,)), P(PMAP_AXIS))
    return jax.tree.map(lambda x: jax.device_put(
        np.broadcast_to(np.asarray(x), (len(devices), *np.shape(x))), stacked), tree)
  sharding = NamedSharding(placement.mesh, P())
  return jax.tree.map(lambda x: jax.device_put(np.asarray(x), sharding), tree)


def local(placement: Placement, tree: Any) -> Any:
  """One device's copy of a replicated tree (for evaluation, checkpoints, figures)."""
  if placement.kind == "pmap":
    return jax.tree.map(lambda x: x[0], tree)
  if placement.kind == "sharded":
    return jax.tree.map(lambda x: x.addressable_data(0), tree)
  return tree


_BARRIERS = itertools.count()  # every process passes the same barriers in the same order


def sync_processes(name: str, timeout_s: int = 900) -> None:
  """Waits until every process reaches this point (no-op with one process).

  A barrier of the coordination service behind ``jax.distributed``, not a collective:
  Gloo sets up its context at the first cross-process collective and waits only 30 s
  for the other processes there, so a process still compiling on a loaded host would
  fail it. Meeting here first, with a long timeout, removes that race.
  """
  if jax.process_count() == 1:
    return
  from jax._src import distributed  # pylint: disable=import-outside-toplevel
  distributed.global_state.client.wait_at_barrier(f"genjax:{name}:{next(_BARRIERS)}",
                                                  timeout_in_ms=timeout_s * 1000)


def per_example_keys(rng: jax.Array, index: jax.Array) -> jax.Array:
  """keys[j] = fold_in(rng, index[j]): one key per example of the global batch."""
  return jax.vmap(jax.random.fold_in, in_axes=(None, 0))(rng, index)


def make_chunk_fn(step: Callable, batch_size: int, num_steps: int,
                  preprocess: Callable, placement: Placement):
  """Fuses ``num_steps`` steps into one compiled call placed by ``placement``.

  ``chunk(state, data, perm, first, step0, data_rng) -> (state, mean metrics)``: step i
  (global step ``step0 + i``) trains on the global batch ``data[perm[(first + i) * B :
  (first + i + 1) * B]]``; example j of it carries ``batch["index"] = j`` and is
  preprocessed with key ``fold_in(fold_in(data_rng, step0 + i), j)``. ``state``, ``data``
  and ``perm`` must come from ``replicate``; ``state`` is donated.
  """
  local_batch = batch_size // placement.num_devices if placement.kind == "pmap" else batch_size

  def body(carry, i):
    state, data, perm, first, step0, data_rng = carry
    offset = jax.lax.axis_index(PMAP_AXIS) * local_batch if placement.kind == "pmap" else 0
    idx = jax.lax.dynamic_slice(perm, ((first + i) * batch_size + offset,), (local_batch,))
    batch = {k: jnp.take(v, idx, axis=0) for k, v in data.items()}
    batch["index"] = offset + jnp.arange(local_batch)
    if placement.kind == "sharded":
      batch = jax.lax.with_sharding_constraint(batch, NamedSharding(placement.mesh,
                                                                    P(MESH_AXIS)))
    keys = per_example_keys(jax.random.fold_in(data_rng, step0 + i), batch["index"])
    state, metrics = step(state, preprocess(batch, keys))
    return (state, data, perm, first, step0, data_rng), metrics

  def chunk(state, data, perm, first, step0, data_rng):
    (state, *_), metrics = jax.lax.scan(body, (state, data, perm, first, step0, data_rng),
                                        jnp.arange(num_steps))
    return state, jax.tree.map(jnp.mean, metrics)

  if placement.kind == "pmap":
    return jax.pmap(chunk, axis_name=PMAP_AXIS, in_axes=(0, 0, 0, None, None, None),
                    donate_argnums=0, devices=placement.devices)
  if placement.kind == "sharded":
    rep = NamedSharding(placement.mesh, P())
    return jax.jit(chunk, in_shardings=rep, out_shardings=rep, donate_argnums=0)
  return jax.jit(chunk, donate_argnums=0)
