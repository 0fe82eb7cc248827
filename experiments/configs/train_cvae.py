"""train_cvae: a conditional VAE (Sohn et al. 2015), q(z|x, c) and p(x|z, c), with labels
as the condition.

Defaults are train_vae's (MLP 784-512-256, Bernoulli, dynamically binarized MNIST) with a
smaller z and a longer budget: latent_dim 8, 50 epochs, evaluated every 2 epochs (test ELBO
and the conditional-accuracy curve on 1,000 prior samples, conditional_accuracy.png). Given
c, z only has to carry what the label does not say; with train_vae's 32-d z the samples
obey c less often, hence 8.

  python launch.py train_cvae --workdir=runs/cvae --config.data_dir=../shared/data

Measured (seed 0, 10,000 prior samples): conditional_accuracy 0.971, test ELBO given c
-94.84 nats, sample_fd 4.33 (z = 32 at 25 epochs: 0.888, -93.40, 10.36). Full record,
with the latent_dim and condition_every_layer sweep: bench/RESULTS.md, section
"CVAE (`train_cvae`, default config, 50 epochs): the size of z".
Variants:
  celeb_a: faces with their 40 attributes as the condition (conv model, grey levels,
           32x32, 20 epochs, latent_dim 32; needs a TFDS-prepared celeb_a in data_dir).
  smoke:   tiny, for tests.
"""

from experiments.configs import base


def get_config(variant=None):
  c = base.likelihood(base.model(latent_dim=8, epochs=50, eval_every=2))
  c.objective = "elbo"
  c.grid_columns = 8
  c.analogies = 6
  c.attributes = ("Smiling,Eyeglasses,Male,Blond_Hair,Black_Hair,Bald,Mustache,Wearing_Hat,"
                  "Young,Pale_Skin")
  c.image_size = 32
  c.condition_every_layer = False
  c.curve_samples = 1000
  base.evaluators(c)
  return base.with_variant(c, variant, {
      "celeb_a": dict(dataset="celeb_a", model="conv", preprocess="continuous", epochs=20,
                      latent_dim=32, eval_every=5),
      "smoke": dict(epochs=2, batch_size=32, hidden=(16,), latent_dim=2, eval_every=1,
                    checkpoint_every=1, grid_columns=3, analogies=2, eval_batch_size=40,
                    curve_samples=20,
                    **base.SMOKE_EVALUATORS),
  })
