"""train_gan: a DCGAN on MNIST grey levels (non-saturating loss, Adam 2e-4, b1 = 0.5).

Defaults: latent 64, width 64, batch 128, 10 epochs, 50 steps per fused chunk. The
README's sample-quality row is this config with epochs=5 (sample_fd 45.85). Variants:
  smoke: tiny, for tests.
"""

from experiments.configs import base


def get_config(variant=None):
  c = base.run(epochs=10, latent_dim=64, preprocess="continuous", steps_per_chunk=50)
  c.gan_loss = "non_saturating"
  c.r1_gamma = 0.0
  c.d_learning_rate = 2e-4
  c.g_learning_rate = 2e-4
  c.gan_width = 64
  c.grid_every = 1
  c.quality_samples = 10000
  return base.with_variant(c, variant, {
      "smoke": dict(epochs=2, batch_size=16, latent_dim=4, gan_width=4, steps_per_chunk=2,
                    checkpoint_every=1, quality_samples=64),
  })
