"""The IWAE paper's Table 1 protocol (one stochastic layer), run by compare_elbos.

Burda, Grosse & Salakhutdinov 2016, Importance Weighted Autoencoders, Sec. 5 and Table 1:
784-200-200-50 network with tanh units, Bernoulli likelihood, test NLL by importance
sampling with K = 5000; trained here with batch 100 and a constant Adam 1e-3 (the paper:
batch 20, Adam with epsilon 1e-4 on its 3^i-pass schedule — that protocol, with seeds and
learning curves, is burda2016_iwae.py), 20 epochs (the paper: 3,280 passes), one seed, NLL
on a fixed random 5000 of the test images.

  python launch.py compare_elbos --workdir=runs/iwae_table1 \\
      --config=experiments/configs/iwae_table1.py --config.data_dir=../shared/data

Measured on dynamically binarized MNIST (test NLL, nats): VAE 95.26, IWAE-5 93.57, IWAE-50
92.20, DReG-50 91.48 (paper: 86.76, 85.54, 84.78). Full record: bench/RESULTS.md, sections
"IWAE paper, Table 1 protocol, at this machine's budget" and, for :two_layer, "IWAE paper,
Table 1's two-stochastic-layer column, at this machine's budget".
Variants:
  static: the statically binarized MNIST of Larochelle (binarized_mnist.npz), binarized
          once (here: 97.11, 94.96, 93.56, 92.98; paper appendix: 88.71, 87.63, 87.10).
  two_layer: Table 1's two-stochastic-layer column (Sec. 5: x - 200 - 200 - z_1 (100) -
          100 - 100 - z_2 (50), tanh; models/hierarchical.py): VAE (k=1, Monte Carlo KL:
          the hierarchy has no closed form), IWAE K=5, IWAE K=50 (here: 106.36, 94.47,
          92.86; paper: 85.33, 83.89, 82.90 nats).
  two_layer_smoke: tiny, for tests.
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
      "two_layer": dict(latent_dim=100, upper_latents=(50,), upper_hidden=(100, 100),
                        variants="elbo_mc,iwae=5,iwae=50"),
      "two_layer_smoke": dict(latent_dim=3, upper_latents=(2,), upper_hidden=(4,),
                              variants="elbo_mc,iwae_dreg=3", epochs=1, batch_size=32,
                              hidden=(8, 8), ll_samples=20, ll_examples=10, snr_draws=4,
                              snr_batch=8, eval_batch_size=40),
      "smoke": dict(variants="elbo,iwae=3", epochs=1, batch_size=32, hidden=(8, 8),
                    latent_dim=2, ll_samples=20, ll_examples=10, snr_draws=4, snr_batch=8,
                    eval_batch_size=40),
  })
