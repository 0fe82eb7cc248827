"""``GaussianMLP``: a conditional diagonal Gaussian whose mean and log-variance come from an
MLP held as arrays, the layers of a hierarchy of stochastic layers (``_hierarchical``)."""

from __future__ import annotations

from typing import Callable

import flax.struct
import jax
import jax.numpy as jnp

from genjax.distributions._gaussian import DiagonalGaussian


def _activation(name: str) -> Callable[[jax.Array], jax.Array]:
  if name not in GAUSSIAN_MLP_ACTIVATIONS:
    raise ValueError(f"activation={name!r}: expected one of "
                     f"{', '.join(GAUSSIAN_MLP_ACTIVATIONS)}")
  return GAUSSIAN_MLP_ACTIVATIONS[name]


GAUSSIAN_MLP_ACTIVATIONS: dict[str, Callable[[jax.Array], jax.Array]] = {
    "tanh": jnp.tanh, "relu": jax.nn.relu, "elu": jax.nn.elu, "gelu": jax.nn.gelu}


@flax.struct.dataclass
class GaussianMLP:
  """A conditional diagonal Gaussian N(mean(h), diag(exp(log_var(h)))) whose mean and
  log-variance come from an MLP held as arrays (not a bound module), so that a
  distribution object can apply it to its own samples outside ``Module.apply``.

  ``layers``: ({"w": [in, out], "b": [out]}, ...), the hidden layers (``activation``
  after each) and last the output layer of 2 * dim units: [mean, log_var].
  """
  layers: tuple[dict[str, jax.Array], ...]
  activation: str = flax.struct.field(pytree_node=False, default="tanh")

  def __call__(self, h: jax.Array) -> DiagonalGaussian:
    """The Gaussian given h: [..., in] -> batch [...], event [dim]."""
    act = _activation(self.activation)
    for layer in self.layers[:-1]:
      h = act(h @ layer["w"] + layer["b"])
    out = h @ self.layers[-1]["w"] + self.layers[-1]["b"]
    mean, log_var = jnp.split(out, 2, axis=-1)
    return DiagonalGaussian(mean, log_var)
