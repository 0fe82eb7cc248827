"""The (denoising) autoencoder's reconstruction loss."""

from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from genjax import corruptions
from genjax import distributions as D
from genjax.types import Batch, LossFn, Metrics

RECONSTRUCTIONS = ("mse", "bernoulli")


def reconstruction_error(x: jax.Array, out: jax.Array, kind: str) -> jax.Array:
  """Per-example reconstruction error of a decoder output ``out`` (logits) against x.

  x, out: [batch, H, W, C] -> [batch], summed over pixels. The reconstruction is
  x_hat = sigmoid(out).
    mse:       sum_i (x_i - x_hat_i)^2
    bernoulli: -sum_i [x_i log x_hat_i + (1 - x_i) log(1 - x_hat_i)]   (cross-entropy, nats)
  """
  if kind == "mse":
    return jnp.sum(jnp.square(x - jax.nn.sigmoid(out)), axis=(1, 2, 3))
  if kind == "bernoulli":
    return -D.bernoulli_log_prob(x, out, event_ndims=3)
  raise ValueError(f"reconstruction={kind!r}: expected one of {', '.join(RECONSTRUCTIONS)}")


def make_autoencoder_loss(model: nn.Module, reconstruction: str = "bernoulli",
                          corruption: str = "none", noise_level: float = 0.0) -> LossFn:
  """The (denoising) autoencoder loss, mean over the batch of a per-example sum over pixels.

  loss = mean_b err(x_b, g(f(x~_b))),  x~ = corrupt(x) drawn from the step's key

  (Vincent et al. 2008, Extracting and Composing Robust Features with Denoising
  Autoencoders, Sec. 2.3): the encoder f sees the corrupted input, the target is the
  clean x. ``corruption="none"`` is the plain autoencoder. ``err`` is
  ``reconstruction_error`` (``mse`` or ``bernoulli``). Metrics: ``loss`` and ``recon``
  (the same number: the mean per-image error).
  """
  reconstruction_error(jnp.zeros((1, 1, 1, 1)), jnp.zeros((1, 1, 1, 1)), reconstruction)
  corruptions.check_corruption(corruption, noise_level)

  def loss_fn(params: Any, batch: Batch, rng: jax.Array) -> tuple[jax.Array, Metrics]:
    x = batch["image"]
    out = model.apply({"params": params}, corruptions.corrupt(rng, x, corruption, noise_level))
    loss = jnp.mean(reconstruction_error(x, out, reconstruction))
    return loss, {"loss": loss, "recon": loss}

  return loss_fn
