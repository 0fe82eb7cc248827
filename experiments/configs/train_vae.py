"""train_vae: a VAE (Kingma & Welling 2014) on dynamically binarized MNIST (the README's
default run and table).

Defaults: MLP 784-512-256-32 encoder and mirrored decoder, Bernoulli likelihood,
closed-form KL, Adam 1e-3, batch 128, 25 epochs.

  python launch.py train_vae --workdir=runs/vae --config.data_dir=../shared/data

Measured: test ELBO -96.91 nats (README, "Results of the default run", the full record).
Variants:
  pytorch_example: the pytorch/examples VAE's size (784-400-20), 10 epochs (README: -102.9).
  smoke:           tiny, for tests.
"""

from experiments.configs import base


def get_config(variant=None):
  c = base.latent(base.likelihood(base.model()))
  c.kl = "analytic"
  c.beta = 1.0
  c.num_samples = 64
  base.evaluators(c)
  return base.with_variant(c, variant, {
      "pytorch_example": dict(hidden=(400,), latent_dim=20, epochs=10),
      "smoke": SMOKE,
  })


SMOKE = dict(epochs=2, batch_size=32, hidden=(16,), latent_dim=2, eval_every=1,
             checkpoint_every=1, num_samples=4, eval_batch_size=40, **base.SMOKE_EVALUATORS)
