"""train_cvae: a conditional VAE, q(z|x, c) and p(x|z, c), with labels as the condition.

Defaults are train_vae's (MLP 784-512-256-32, Bernoulli, dynamically binarized MNIST,
25 epochs; README: test ELBO given c -93.40, sample_fd 10.36, conditional_accuracy 0.888).
Variants:
  celeb_a: faces with their 40 attributes as the condition (conv model, grey levels,
           32x32, 20 epochs; needs a TFDS-prepared celeb_a in data_dir).
  smoke:   tiny, for tests.
"""

from experiments.configs import base


def get_config(variant=None):
  c = base.likelihood(base.model())
  c.objective = "elbo"
  c.grid_columns = 8
  c.analogies = 6
  c.attributes = ("Smiling,Eyeglasses,Male,Blond_Hair,Black_Hair,Bald,Mustache,Wearing_Hat,"
                  "Young,Pale_Skin")
  c.image_size = 32
  base.evaluators(c)
  return base.with_variant(c, variant, {
      "celeb_a": dict(dataset="celeb_a", model="conv", preprocess="continuous", epochs=20),
      "smoke": dict(epochs=2, batch_size=32, hidden=(16,), latent_dim=2, eval_every=1,
                    checkpoint_every=1, grid_columns=3, analogies=2, eval_batch_size=40,
                    **base.SMOKE_EVALUATORS),
  })
