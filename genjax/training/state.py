"""The train state (a pytree, checkpointed as is) and ``freeze``, an optimizer that leaves
chosen parameters (a bool mask pytree) unchanged."""

from __future__ import annotations

from typing import Any, Callable

import flax
import jax
import jax.numpy as jnp
import optax

from genjax.types import Batch, Metrics

Preprocess = Callable[[Batch, jax.Array], Batch]
StepFn = Callable[["TrainState", Batch], tuple["TrainState", Metrics]]


@flax.struct.dataclass
class TrainState:
  """Everything a run needs to continue: a pytree, checkpointed as is.

  ``rng`` is a raw uint32[2] key; step t uses ``fold_in(rng, t)``, so a resumed run
  draws the same noise as an uninterrupted one.
  """
  step: jax.Array
  params: Any
  opt_state: Any
  rng: jax.Array


def create_train_state(params: Any, optimizer: optax.GradientTransformation,
                       rng: jax.Array) -> TrainState:
  return TrainState(step=jnp.zeros((), jnp.int32), params=params,
                    opt_state=optimizer.init(params), rng=rng)


def freeze(optimizer: optax.GradientTransformation,
           frozen_mask: Any) -> optax.GradientTransformation:
  """``optimizer`` for every parameter whose leaf in ``frozen_mask`` (a pytree of bools
  shaped like the parameters) is False; the updates of the True leaves are zero. E.g. a
  linear probe on a pre-trained encoder:
  ``freeze(adam, models.protocol.encoder_mask(classifier, params))``."""
  labels = jax.tree.map(lambda frozen: "frozen" if frozen else "trained", frozen_mask)
  return optax.multi_transform({"trained": optimizer, "frozen": optax.set_to_zero()}, labels)
