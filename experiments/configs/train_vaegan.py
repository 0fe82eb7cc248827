"""train_vaegan: a VAE-GAN (Larsen et al. 2016) on MNIST grey levels.

Defaults: latent 32; the conv VAE's encoder (3x3 stride-2 convs 32, 64; dense 256); the
DCGAN's generator as decoder and its discriminator at width 32; L_llike on the
discriminator's second conv layer (feature_layer=2); gamma = 0.01; one Adam per player
(learning rate 3e-4, b1 = 0.5); batch 100 (600 steps per epoch, so 100-step fused chunks
tile it; 64, the paper's, gives a prime 937); 2 epochs; 10,000 samples scored by the
reference classifier. The budget: at most ~15 minutes of wall time on this project's shared
2-core CPU; measured 594 s in all (494 s of training) while other jobs shared the cores
(sample_fd 51.06, test_pixel_sq_error 18.38). gamma = 0.01 balances the two ends measured
after one epoch (2,000 samples): 0.1 reconstructs best (pixel error 15.5) with the worst
samples (sample_fd 86.7), 0.001 the reverse (25.9, 53.0); 0.01 gives 20.7 and 58.3.
Variants:
  smoke: tiny, for tests.
"""

from experiments.configs import base


def get_config(variant=None):
  c = base.run(epochs=2, batch_size=100, latent_dim=32, preprocess="continuous",
               steps_per_chunk=100)
  c.hidden = (256,)
  c.gan_width = 32
  c.feature_layer = 2
  c.vaegan_gamma = 0.01
  c.e_learning_rate = 3e-4
  c.g_learning_rate = 3e-4
  c.d_learning_rate = 3e-4
  c.eval_every = 1
  c.eval_batch_size = 1000
  c.quality_samples = 10000
  return base.with_variant(c, variant, {
      "smoke": dict(epochs=2, batch_size=16, latent_dim=4, hidden=(8,), gan_width=4,
                    steps_per_chunk=2, checkpoint_every=1, eval_batch_size=16,
                    quality_samples=64),
  })
