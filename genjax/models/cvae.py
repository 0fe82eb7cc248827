"""Conditional VAEs: q(z|x, c) and p(x|z, c), and the semi-supervised M2 model.

The condition c: [batch, C] is a one-hot label or an attribute vector; encoders and
decoders append it to their features (``genjax.models.encoders``). Both implement the
latent-variable model protocol (``genjax.models.protocol``) with a required condition, so
every objective of ``genjax.losses.elbo`` applies unchanged given c; losses pass the
condition from ``batch["condition"]``. Generate under conditions c with
``protocol.decode(model, params, protocol.sample_prior(model, params, rng, len(c)), c)``.
"""

from __future__ import annotations

from typing import ClassVar

import flax.linen as nn
import jax

from genjax import distributions as D
from genjax.models.classifier import Classifier
from genjax.models.protocol import check_condition


class CVAE(nn.Module):
  """q(z|x, c) = N(mean(x, c), diag(exp(log_var(x, c)))), p(z) = N(0, I), p(x|z, c)."""
  encoder: nn.Module
  decoder: nn.Module
  latent_dim: int
  encoder_params: ClassVar[tuple[str, ...]] = ("encoder",)

  def posterior(self, x: jax.Array, condition: jax.Array | None = None) -> D.DiagonalGaussian:
    """q(z|x, c): mean, log_var [batch, latent_dim]."""
    check_condition(self, condition, conditional=True)
    return D.DiagonalGaussian(*self.encoder(x, condition))

  def prior(self) -> D.Distribution:
    """p(z) = N(0, I_latent_dim) (independent of c)."""
    return D.StandardNormal(self.latent_dim)

  def decode(self, z: jax.Array, condition: jax.Array | None = None) -> jax.Array:
    """Parameters of p(x|z, c): [batch, H, W, C_out]."""
    check_condition(self, condition, conditional=True)
    return self.decoder(z, condition)

  def __call__(self, x: jax.Array, condition: jax.Array) -> jax.Array:
    """Reconstructs x from the posterior mean under its own condition."""
    return self.decode(self.posterior(x, condition).mean, condition)


class M2(CVAE):
  """The M2 model of Kingma et al. 2014 (Semi-Supervised Learning with Deep Generative Models).

  p(y) = Cat(1/K), p(z) = N(0, I), p(x|y, z) = decoder(z, onehot(y)); inference
  networks q(y|x) = Cat(softmax(classifier(x))) and q(z|x, y) = encoder(x, onehot(y)).
  Its generative part is the CVAE's with condition onehot(y) (``posterior``, ``prior``,
  ``decode``); both inference networks are its encoder parameters. Its loss is
  ``losses.semi_supervised.make_m2_loss``.
  """
  classifier: Classifier | None = None
  num_classes: int = 0
  encoder_params: ClassVar[tuple[str, ...]] = ("encoder", "classifier")

  def classify(self, x: jax.Array) -> jax.Array:
    """Logits of q(y|x): [batch, num_classes]."""
    return self.classifier(x)

  def __call__(self, x: jax.Array) -> tuple[jax.Array, jax.Array]:
    """(logits of q(y|x), reconstruction under the predicted label): touches every part."""
    logits = self.classify(x)
    y = jax.nn.one_hot(logits.argmax(-1), self.num_classes)
    return logits, self.decode(self.posterior(x, y).mean, y)
