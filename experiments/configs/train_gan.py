"""train_gan: a DCGAN (Radford et al. 2016) on MNIST grey levels, non-saturating loss,
Adam b1 = 0.5 (the generator's learning rate 1e-3, the discriminator's 2e-4).

Defaults: latent 32, whose first 10 coordinates also give the generator a 10-way discrete
code (gan_categories: the one-hot of their argmax, read with z; genjax.models.gan), widths
G 32 / D 48 (gan_d_width), batch 30 (2,000 steps per epoch, 50 per fused chunk), G's
LayerNorm over each example's whole feature map (gan_norm="map"), top-k training (Sinha et
al. 2020: G's loss on the share of its batch D rates most real, 1 in epoch 1 shrinking 0.9x
per epoch to gan_top_k = 0.5), 10 epochs; samples from a moving average of G's parameters
(g_ema_decay 0.999), and 10,000 scored by the reference classifier, the half of 20,000
draws D rates most real within each value of the code (gan_sample_keep 0.5; discriminator
rejection, after Azadi et al. 2019). Budget: the whole command within 10 minutes of this
project's 2-core CPU.

  python launch.py train_gan --workdir=runs/gan --config.data_dir=../shared/data

Measured (seeds 0 / 1 / 2): sample_score 8.26 / 8.03 / 8.05, sample_fd 6.07 / 8.66 / 9.33,
10 classes; every draw kept (raw_sample_*) 7.88 / 7.77 / 7.78; 480-593 s for the whole
command. Full record, with every variant tried on the way: bench/RESULTS.md, section
"DCGAN (`train_gan`, default config, 10 epochs)".
Variants:
  smoke: tiny, for tests.
"""

from experiments.configs import base


def get_config(variant=None):
  c = base.run(epochs=10, batch_size=30, latent_dim=32, preprocess="continuous",
               steps_per_chunk=50)
  c.gan_loss = "non_saturating"
  c.r1_gamma = 0.0
  c.d_learning_rate = 2e-4
  c.g_learning_rate = 1e-3
  c.gan_width = 32
  c.gan_d_width = 48    # the discriminator's width (0: gan_width)
  c.gan_norm = "map"
  c.gan_categories = 10   # the generator's discrete code (models.gan; 0: none)
  c.gan_top_k = 0.5       # top-k training: G's loss on the best half of its batch ...
  c.gan_top_k_decay = 0.9   # ... reached by shrinking the kept fraction 0.9x per epoch
  c.gan_sample_keep = 0.5   # score the half of twice the draws D rates most real, per code
  c.g_ema_decay = 0.999   # sample from a moving average of G's parameters
  c.grid_every = 1
  c.quality_samples = 10000
  return base.with_variant(c, variant, {
      "smoke": dict(epochs=2, batch_size=16, latent_dim=4, gan_width=4, gan_d_width=0,
                    gan_categories=3, gan_top_k=0.5, gan_top_k_decay=0.5,
                    gan_sample_keep=0.5,
                    steps_per_chunk=2,
                    checkpoint_every=1, quality_samples=64),
  })
