"""train_ae: a denoising autoencoder beside a VAE of the same architecture.

Defaults: MLP 784-512-256-32, Gaussian corruption 0.3, Bernoulli reconstruction loss,
grey-level MNIST, 25 epochs (the README's train_ae table).

  python launch.py train_ae --workdir=runs/ae --config.data_dir=../shared/data

Measured: test MSE 5.25 from clean input, 6.48 from noisy input; the VAE's test ELBO
-100.0. Full record: README, "Autoencoders and few labels".
Variants:
  smoke: tiny, for tests.
"""

from experiments.configs import base


def get_config(variant=None):
  c = base.model(preprocess="continuous")
  c.reconstruction = "bernoulli"
  c.corruption = "gaussian"
  c.noise_level = 0.3
  c.denoising = True
  c.compare_vae = True
  c.interpolation_pairs = 8
  c.interpolation_steps = 10
  return base.with_variant(c, variant, {
      "smoke": dict(epochs=1, batch_size=32, hidden=(16,), latent_dim=4, eval_batch_size=64,
                    interpolation_pairs=2, interpolation_steps=4),
  })
