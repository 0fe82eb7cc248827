"""semi_supervised: learning with few labels (scratch, pre-trained AE / DAE / VAE, M2).

Defaults: the README's table (MLP 784-512-256-32, 10 and 100 labels per class, 3 seeds,
10 epochs of pre-training and of M2, 2000 fine-tuning steps at batch 100).

  python launch.py semi_supervised --workdir=runs/semi --config.data_dir=../shared/data

Measured (test error, mean ± std over 3 seeds, 100 / 1000 labels): M2 18.34 ± 0.60 % /
6.32 ± 0.37 %, the best; scratch 23.69 ± 0.76 % / 8.90 ± 0.47 %. Full record: README,
"Autoencoders and few labels".
Variants:
  smoke: tiny, for tests.
"""

from experiments.configs import base


def get_config(variant=None):
  c = base.model(epochs=10)
  c.reconstruction = "bernoulli"
  c.corruption = "gaussian"
  c.noise_level = 0.3
  c.seeds = 3
  c.labels_per_class = (10, 100)
  c.methods = "scratch,ae,dae,vae,m2"
  c.pretrain_epochs = 0
  c.finetune_steps = 2000
  c.finetune_batch = 100
  c.finetune_learning_rate = 1e-3
  c.m2_epochs = 0
  c.alpha = 0.0
  base.budget(c)
  return base.with_variant(c, variant, {
      "smoke": dict(epochs=1, batch_size=32, hidden=(16,), latent_dim=4, eval_batch_size=64,
                    seeds=2, labels_per_class=(2,), finetune_steps=20, finetune_batch=10),
  })
