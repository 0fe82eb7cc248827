"""train_vaegan: a VAE-GAN (Larsen et al. 2016, Autoencoding beyond pixels using a learned
similarity metric) on MNIST grey levels.

Defaults: latent 32; the conv VAE's encoder (3x3 stride-2 convs 32, 64; dense 256); the
DCGAN's generator as decoder and its discriminator at width 32; L_llike on the
discriminator's second conv layer (feature_layer=2); gamma = 0.01 (between the best
reconstructions, at 0.1, and the best samples, at 0.001); one Adam per player (learning
rate 3e-4, b1 = 0.5); batch 100 (600 steps per epoch, so 100-step fused chunks tile it;
64, the paper's, gives a prime 937); 2 epochs; 10,000 samples scored by the reference
classifier. Budget: at most ~15 minutes of wall time on this project's 2-core CPU.

  python launch.py train_vaegan --workdir=runs/vaegan --config.data_dir=../shared/data

Measured: sample_fd 51.06, test_pixel_sq_error 18.38, 594 s in all while other jobs
shared the cores. Full record, with the gamma sweep: bench/RESULTS.md, section
"VAE-GAN (`train_vaegan`)".
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
