"""Reproduction: Burda, Grosse & Salakhutdinov 2016, Importance Weighted Autoencoders
(ICLR 2016), Table 1, MNIST, one stochastic layer. Run by compare_elbos:

  python launch.py compare_elbos --workdir=runs/burda2016 \\
      --config=experiments/configs/burda2016_iwae.py --config.data_dir=../shared/data

The protocol as the paper's Sec. 5 ("Experiments") states it:
  - data: MNIST, 60,000 training and 10,000 test images, binarized dynamically (a fresh
    Bernoulli draw of every pixel each time an image is used);
  - model: 784 - 200 - 200 - 50 with tanh units, q(z|x) and p(z) diagonal Gaussians,
    p(x|z) Bernoulli (the decoder mirrors the encoder);
  - objectives: VAE with k = 1 (the gradient of the mean log-weight, Monte Carlo KL, as
    the authors' code computes it: elbo_mc), IWAE with k = 5 and k = 50;
  - optimiser: Adam with beta1 = 0.9, beta2 = 0.999, epsilon = 1e-4, minibatches of 20;
    learning rate 0.001 * 10^(-i/7) for 3^i passes, i = 0..7: 3,280 passes in all
    (lr_schedule=iwae; the authors' code, yburda/iwae experiments.py, rounds each rate to
    two digits and defaults beta1 to 0.99 — we follow the paper's text);
  - evaluation: test log-likelihood by importance sampling with k = 5000 (Sec. 5,
    "log p(x) estimated with k = 5000").
Table 1's numbers (test NLL, nats): VAE (k=1) 86.76, IWAE k=5 85.54, IWAE k=50 84.78.

Budgets (``--config.budget``):
  machine (default): the first 4 passes of the same schedule (stages i = 0, 1: one pass
    at 1e-3, three at 7.2e-4), 3 seeds, test NLL with k = 5000 on a fixed random 1,000 of
    the test images, and a learning curve of test NLL (k = 500, same images) after every
    pass: nll_curves.png, with the passes at which each curve would reach the paper's
    number.
  paper: 3,280 passes, the whole test set (about 2 days per IWAE-50 seed on this CPU).
Measured at the machine budget (test NLL, mean ± s.e. over 3 seeds): VAE 104.71 ± 0.22,
IWAE-5 100.31 ± 0.06, IWAE-50 98.87 ± 0.03, the paper's ordering. Full record:
bench/RESULTS.md, section "IWAE, Table 1, one stochastic layer (`burda2016_iwae.py`, 4
passes, 3 seeds)".
Variants:
  smoke: tiny, for tests.
"""

from experiments.configs import base, compare_elbos

PAPER_NLL = "elbo_mc:86.76,iwae=5:85.54,iwae=50:84.78"   # Table 1, MNIST, one layer


def get_config(variant=None):
  c = compare_elbos.get_config()
  c.update(dict(hidden=(200, 200), latent_dim=50, activation="tanh", likelihood="bernoulli",
                preprocess="dynamic", batch_size=20, learning_rate=1e-3, adam_eps=1e-4,
                lr_schedule="iwae", epochs=4, seeds=3, variants="elbo_mc,iwae=5,iwae=50",
                ll_samples=5000, ll_examples=1000, curve_ll_samples=500, paper_nll=PAPER_NLL,
                eval_every=1, checkpoint_every=1, steps_per_chunk=500))
  c.paper_budget.update(dict(epochs=3280, ll_examples=0, eval_every=81))
  return base.with_variant(c, variant, {
      "smoke": dict(variants="elbo_mc,iwae=3", paper_nll="elbo_mc:90.0,iwae=3:89.0", seeds=2,
                    epochs=2, batch_size=32, hidden=(8, 8), latent_dim=2, ll_samples=20,
                    ll_examples=10, curve_ll_samples=5, snr_draws=4, snr_batch=8,
                    eval_batch_size=40, steps_per_chunk=0),
  })
