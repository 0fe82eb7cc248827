"""Conditional VAEs: q(z|x, c) and p(x|z, c), and the semi-supervised M2 model.

The condition c: [batch, C] is a one-hot label or an attribute vector; encoders and
decoders append it to their features (``genjax.models.encoders``). The ELBO is
unchanged given c, so every objective of ``genjax.objectives`` applies; losses pass the
condition from ``batch["condition"]``.
"""

from __future__ import annotations

import flax.linen as nn
import jax

from genjax.models.classifier import Classifier


class CVAE(nn.Module):
  """q(z|x, c) = N(mean(x, c), diag(exp(log_var(x, c)))), p(z) = N(0, I), p(x|z, c)."""
  encoder: nn.Module
  decoder: nn.Module
  latent_dim: int

  def encode(self, x: jax.Array, condition: jax.Array) -> tuple[jax.Array, jax.Array]:
    """(mean, log_var) of q(z|x, c), each [batch, latent_dim]."""
    return self.encoder(x, condition)

  def decode(self, z: jax.Array, condition: jax.Array) -> jax.Array:
    """Parameters of p(x|z, c): [batch, H, W, C_out]."""
    return self.decoder(z, condition)

  def __call__(self, x: jax.Array, condition: jax.Array) -> jax.Array:
    """Reconstructs x from the posterior mean under its own condition."""
    return self.decode(self.encode(x, condition)[0], condition)

  def generate(self, rng: jax.Array, condition: jax.Array) -> jax.Array:
    """Decodes z ~ N(0, I), one per row of ``condition``: [batch, H, W, C_out]."""
    z = jax.random.normal(rng, (condition.shape[0], self.latent_dim))
    return self.decode(z, condition)


class M2(nn.Module):
  """The M2 model of Kingma et al. 2014 (Semi-Supervised Learning with Deep Generative Models).

  p(y) = Cat(1/K), p(z) = N(0, I), p(x|y, z) = decoder(z, onehot(y)); inference
  networks q(y|x) = Cat(softmax(classifier(x))) and q(z|x, y) = encoder(x, onehot(y)).
  Its loss is ``objectives.make_m2_loss``.
  """
  encoder: nn.Module
  decoder: nn.Module
  classifier: Classifier
  latent_dim: int
  num_classes: int

  def classify(self, x: jax.Array) -> jax.Array:
    """Logits of q(y|x): [batch, num_classes]."""
    return self.classifier(x)

  def encode(self, x: jax.Array, condition: jax.Array) -> tuple[jax.Array, jax.Array]:
    return self.encoder(x, condition)

  def decode(self, z: jax.Array, condition: jax.Array) -> jax.Array:
    return self.decoder(z, condition)

  def __call__(self, x: jax.Array) -> tuple[jax.Array, jax.Array]:
    """(logits of q(y|x), reconstruction under the predicted label): touches every part."""
    logits = self.classify(x)
    y = jax.nn.one_hot(logits.argmax(-1), self.num_classes)
    return logits, self.decode(self.encode(x, y)[0], y)

  def generate(self, rng: jax.Array, condition: jax.Array) -> jax.Array:
    z = jax.random.normal(rng, (condition.shape[0], self.latent_dim))
    return self.decode(z, condition)
