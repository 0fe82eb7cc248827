"""Type aliases shared by the losses, the metrics and the train loop (no other genjax
module is imported here, so any module may import it)."""

from __future__ import annotations

from typing import Any, Callable

import jax

Batch = dict[str, jax.Array]
Metrics = dict[str, jax.Array]
LossFn = Callable[[Any, Batch, jax.Array], tuple[jax.Array, Metrics]]
