"""The VAE with a VampPrior (Tomczak & Welling 2018, VAE with a VampPrior).

The prior is the aggregate posterior at K learned pseudo-inputs u_k (Eq. 9):

  p(z) = 1/K sum_k q(z | u_k),   q(z|u) = N(mean(u), diag(exp(log_var(u))))  (the encoder's),

a ``distributions.MixtureOfDiagonalGaussians``. The pseudo-inputs have the image's shape
and live in the parameter entry ``params["pseudo_inputs"]`` as unconstrained logits a_k;
the encoder sees u_k = sigmoid(a_k), so they stay in the image range (0, 1) without
clipping (the paper clips with a hard-tanh; a sigmoid keeps a gradient everywhere). They
belong to the prior, not to the encoder (``encoder_params`` is ``("encoder",)``), though
the prior also depends on the encoder's weights through q(z|u_k). KL(q(z|x) || p(z)) has no
closed form: train it with a Monte Carlo KL (``kl="mc"``: elbo_mc, elbo_stl, elbo_k=K,
iwae=K, iwae_dreg=K).
"""

from __future__ import annotations

from typing import Sequence

import flax.linen as nn
import jax

from genjax import distributions as D
from genjax.models import builders, registry
from genjax.models.vae import VAE


class VampPriorVAE(VAE):
  """The VAE's q(z|x) and p(x|z) with p(z) = 1/K sum_k q(z | sigmoid(a_k)).

  ``image_shape``: (H, W, C) of the pseudo-inputs (the encoder's input shape);
  ``num_pseudo_inputs``: K. Pseudo-input logits are initialized N(0, 1), so the u_k start
  spread around 0.5.
  """
  image_shape: Sequence[int] = ()
  num_pseudo_inputs: int = 500

  def setup(self):
    if len(self.image_shape) != 3 or self.num_pseudo_inputs < 1:
      raise ValueError(f"VampPriorVAE: image_shape={tuple(self.image_shape)} must be (H, W, C) "
                       f"and num_pseudo_inputs={self.num_pseudo_inputs} >= 1")
    self.pseudo_input_logits = self.param(
        "pseudo_inputs", nn.initializers.normal(1.0),
        (self.num_pseudo_inputs, *self.image_shape))

  def pseudo_inputs(self) -> jax.Array:
    """u_k = sigmoid(a_k): [K, H, W, C], in (0, 1)."""
    return jax.nn.sigmoid(self.pseudo_input_logits)

  def prior(self) -> D.MixtureOfDiagonalGaussians:
    """p(z) = 1/K sum_k N(z; mean(u_k), diag(exp(log_var(u_k)))) (Tomczak & Welling, Eq. 9)."""
    return D.MixtureOfDiagonalGaussians(*self.encoder(self.pseudo_inputs()))


def _build_vamp(model, image_shape, latent_dim, hidden, output_channels, activation,
                num_pseudo_inputs):
  if num_pseudo_inputs < 1:
    raise ValueError(f"num_pseudo_inputs={num_pseudo_inputs} must be >= 1")
  encoder = builders.build_encoder(model, latent_dim, hidden, activation)
  decoder = builders.build_decoder(model, image_shape, hidden, output_channels, activation)
  return VampPriorVAE(encoder, decoder, latent_dim, tuple(image_shape), num_pseudo_inputs)


registry.register_prior(registry.Part(
    "vamp", "the VampPrior (prior=vamp)", reads={"pseudo_inputs": "num_pseudo_inputs"},
    settings={"pseudo_inputs": registry.Setting(
        "number of learned pseudo-inputs (mixture components)", registry.positive_integer)},
    closed_form_kl=False, only_with=("diagonal",),
    no_kl_reason="the VampPrior (prior=vamp) has no closed-form KL", build=_build_vamp))
