"""anomaly: outlier detection by reconstruction error, each class held out in turn.

Defaults: the README's table (an AE and a VAE, MLP 784-512-256-32, grey-level MNIST,
10 epochs per model, all ten classes held out in turn).

  python launch.py anomaly --workdir=runs/anomaly --config.data_dir=../shared/data

Measured: AUROC, mean over the held-out classes, 0.727 (AE reconstruction), 0.734 (VAE
-ELBO), 0.809 (VAE reconstruction); held-out 1s score below chance. Full record: README,
"Autoencoders and few labels".
Variants:
  smoke: tiny, for tests.
"""

from experiments.configs import base


def get_config(variant=None):
  c = base.model(preprocess="continuous", epochs=10)
  del c.eval_every          # no evaluation during training: the scores come at the end
  c.reconstruction = "bernoulli"
  c.holdout_classes = tuple(range(10))
  c.score_samples = 10
  return base.with_variant(c, variant, {
      "smoke": dict(epochs=1, batch_size=32, hidden=(16,), latent_dim=4, eval_batch_size=64,
                    holdout_classes=(0, 1), score_samples=2),
  })
