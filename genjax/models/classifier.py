"""A classifier: an encoder of the autoencoder family with a linear head on its code.

The encoder is the same module an AE, DAE or VAE uses, so a pre-trained encoder's
parameters drop in as ``params["encoder"]`` (fine-tuning, or a frozen linear probe with
``training.state.freeze(optimizer, models.protocol.encoder_mask(classifier, params))``).
"""

from __future__ import annotations

from typing import ClassVar

import flax.linen as nn
import jax


class Classifier(nn.Module):
  """logits = head(code(x)): [batch, num_classes].

  code(x) is the encoder's output: the code z of a deterministic encoder, or the mean of
  q(z|x) of a Gaussian one (its log-variance is not used).
  """
  encoder: nn.Module
  num_classes: int
  encoder_params: ClassVar[tuple[str, ...]] = ("encoder",)

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    code = self.encoder(x)
    features = code[0] if isinstance(code, tuple) else code
    return nn.Dense(self.num_classes, name="head")(features)
