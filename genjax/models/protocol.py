"""The latent-variable model protocol, and the helpers every loss and metric calls it through.

A latent-variable model p(x, z | c) = p(z) p(x|z, c) with an inference network q(z|x, c)
is a Flax module with

  ``posterior(x, condition=None) -> distribution``   q(z|x, c); x: [batch, H, W, C]
  ``prior() -> distribution``                          p(z), event [latent_dim]
  ``decode(z, condition=None) -> parameters``          of p(x|z, c); z: [batch, latent_dim]
  ``latent_dim: int``
  ``encoder_params: ClassVar[tuple[str, ...]]``       the top-level parameter entries that
                                                       are the inference network(s)

The distributions are ``genjax.distributions`` objects (``sample``, ``log_prob``,
``log_prob_per_dim``; a closed-form KL where ``distributions.kl_divergence`` has one; a
posterior also has ``sample_and_log_prob``, the only density a flow posterior has), so
the losses never assume a Gaussian posterior or an N(0, I) prior. A conditional model
(``CVAE``, ``M2``'s generative part) takes the condition c: [batch, C] in ``posterior`` and
``decode``; an unconditional one accepts only ``condition=None`` (``check_condition``).
The prior may have parameters of its own, and may share the encoder's (the VampPrior of
``models.vamp``); ``encoder_params`` names only the inference network's entries, which
the STL and DReG estimators (``losses.elbo``) and the gradient SNR
(``metrics.likelihood.gradient_snr``) treat apart.

Each helper below is ``model.apply({"params": params}, ..., method=...)``: a pure function
of the parameters.
"""

from __future__ import annotations

from typing import Any, Mapping

import flax.linen as nn
import jax

from genjax import distributions as D


def check_condition(model: nn.Module, condition: jax.Array | None, conditional: bool) -> None:
  """Raises unless a conditional model got a condition and an unconditional one got None."""
  name = type(model).__name__
  if conditional and condition is None:
    raise ValueError(f"{name} is conditional: pass condition=[batch, C] (batch['condition'])")
  if not conditional and condition is not None:
    raise ValueError(f"{name} is unconditional: it takes no condition (got shape "
                     f"{getattr(condition, 'shape', None)})")


def posterior(model: nn.Module, params: Any, x: jax.Array,
              condition: jax.Array | None = None) -> D.Distribution:
  """q(z|x) (or q(z|x, c)): a distribution with batch shape [batch] and event [latent_dim]."""
  return model.apply({"params": params}, x, condition=condition, method=model.posterior)


def prior(model: nn.Module, params: Any) -> D.Distribution:
  """p(z): a distribution with event [latent_dim] (its parameters may be learned)."""
  return model.apply({"params": params}, method=model.prior)


def decode(model: nn.Module, params: Any, z: jax.Array,
           condition: jax.Array | None = None) -> jax.Array:
  """Parameters of p(x|z) (or p(x|z, c)) for z: [batch, latent_dim]: [batch, H, W, C_out]."""
  return model.apply({"params": params}, z, condition=condition, method=model.decode)


def sample_prior(model: nn.Module, params: Any, rng: jax.Array, num: int) -> jax.Array:
  """z ~ p(z): [num, latent_dim]. Decode them with ``decode`` (and a condition, if any).

  For the N(0, I) prior these are ``jax.random.normal(rng, (num, latent_dim))``.
  """
  return prior(model, params).sample(rng, num)


def encoder_mask(model: nn.Module, params: Mapping[str, Any]) -> Any:
  """A pytree of bools shaped like ``params``: True on the leaves of the entries the model
  declares as its encoder (``model.encoder_params``), False elsewhere."""
  names = tuple(getattr(model, "encoder_params", ()))
  missing = [n for n in names if n not in params]
  if not names or missing:
    raise ValueError(f"{type(model).__name__}.encoder_params={names}: expected names of its "
                     f"top-level parameters {sorted(params)}")
  return {k: jax.tree.map(lambda _, k=k: k in names, v) for k, v in params.items()}


def stop_gradient_except_encoder(model: nn.Module, params: Mapping[str, Any]) -> Any:
  """``params`` with stop_gradient on every leaf outside the encoder (decoder, prior, ...)."""
  return jax.tree.map(lambda p, m: p if m else jax.lax.stop_gradient(p), params,
                      encoder_mask(model, params))
