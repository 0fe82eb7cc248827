"""train_vqvae: a VQ-VAE (van den Oord et al. 2017) with a PixelCNN prior (van den Oord et
al. 2016) on dynamically binarized MNIST.

Defaults: encoder two 4x4 stride-2 convolutions of width 32 to a 7x7 grid of 16-d vectors,
a codebook of 64 codes updated by exponential moving averages (decay 0.99; commitment
beta = 0.25), Bernoulli likelihood, Adam 1e-3, batch 128; then a PixelCNN (width 32, a 5x5
type A layer and 4 residual 3x3 type B layers) on the codes. Budget: 5 VQ-VAE epochs and
4 prior epochs, about 12 minutes for the whole run (10,000 prior samples scored included)
on this project's 2-core CPU.

  python launch.py train_vqvae --workdir=runs/vqvae --config.data_dir=../shared/data

Measured (README, "Conditional generation, GANs, and one scale for samples"): test
reconstruction 36.74 nats, prior test NLL 81.13 nats per grid, bound on log p(x) -117.88,
sample_fd 30.96. Full record, with the EMA codebook against the codebook loss:
bench/RESULTS.md, section "VQ-VAE (`train_vqvae`)".
Variants:
  smoke: tiny, for tests.
"""

from experiments.configs import base


def get_config(variant=None):
  c = base.run(epochs=5, preprocess="dynamic", steps_per_chunk=0)
  del c["latent_dim"]   # the latent is the code grid: codebook_size, code_dim
  c.learning_rate = 1e-3
  c.eval_every = 5
  c.eval_batch_size = 1000
  c.vq_width = 32
  c.codebook_size = 64
  c.code_dim = 16
  c.commitment_cost = 0.25
  c.codebook_update = "ema"
  c.ema_decay = 0.99
  c.prior_epochs = 4
  c.prior_layers = 4
  c.prior_width = 32
  c.quality_samples = 10000
  return base.with_variant(c, variant, {
      "smoke": dict(epochs=2, batch_size=16, vq_width=4, codebook_size=8, code_dim=3,
                    prior_epochs=1, prior_layers=1, prior_width=4, eval_every=1,
                    checkpoint_every=1, steps_per_chunk=2, eval_batch_size=16,
                    quality_samples=32),
  })
