"""The IWAE paper's Table 1 protocol (one stochastic layer), run by compare_elbos.

Burda, Grosse & Salakhutdinov 2016, Importance Weighted Autoencoders, Sec. 5 and Table 1:
784-200-200-50 network with tanh units, Bernoulli likelihood, batch 100, Adam, test NLL by
importance sampling with K = 5000. The paper trains 3,280 passes; here (README, bench/
RESULTS.md) 20 epochs, one seed, NLL on a fixed random 5000 of the test images:
  dynamically binarized MNIST: VAE 95.26, IWAE-5 93.57, IWAE-50 92.20, DReG-50 91.48
                               (paper: 86.76, 85.54, 84.78)
Variants:
  static: the statically binarized MNIST of Larochelle (binarized_mnist.npz), binarized
          once (here: 97.11, 94.96, 93.56, 92.98; paper appendix: 88.71, 87.63, 87.10).
  smoke:  tiny, for tests.
"""

from experiments.configs import base, compare_elbos


def get_config(variant=None):
  c = compare_elbos.get_config()
  c.update(dict(hidden=(200, 200), latent_dim=50, activation="tanh", batch_size=100, epochs=20,
                seeds=1, variants="elbo,iwae=5,iwae=50,iwae_dreg=50", ll_examples=5000,
                eval_every=1, checkpoint_every=1))
  return base.with_variant(c, variant, {
      "static": dict(dataset="binarized_mnist", preprocess="static"),
      "smoke": dict(variants="elbo,iwae=3", epochs=1, batch_size=32, hidden=(8, 8),
                    latent_dim=2, ll_samples=20, ll_examples=10, snr_draws=4, snr_batch=8,
                    eval_batch_size=40),
  })
