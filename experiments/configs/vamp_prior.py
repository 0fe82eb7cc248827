"""train_vae with the VampPrior (Tomczak & Welling 2018, VAE with a VampPrior, AISTATS).

p(z) = 1/K sum_k q(z | u_k): a mixture of the encoder's posteriors at K = 500 learned
pseudo-inputs u_k (the paper's K for MNIST, Sec. 4), instead of N(0, I). The KL term has no
closed form, so the ELBO uses the one-sample Monte Carlo estimate log q(z|x) - log p(z)
(kl=mc). Everything else is train_vae's default run (MLP 784-512-256-32, Bernoulli,
dynamically binarized MNIST, 25 epochs), so the two test ELBOs compare directly.

  python launch.py train_vae --workdir=runs/vamp \\
      --config=experiments/configs/vamp_prior.py --config.data_dir=../shared/data

Not measured yet.
Variants:
  smoke: tiny, for tests.
"""

from experiments.configs import base, train_vae


def get_config(variant=None):
  c = train_vae.get_config()
  c.update(dict(prior="vamp", kl="mc", pseudo_inputs=500))
  return base.with_variant(c, variant, {
      "smoke": {**train_vae.SMOKE, "pseudo_inputs": 4},
  })
