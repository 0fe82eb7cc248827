"""beta_vae: train_vae as a beta-VAE (Higgins et al. 2017) on the generated dSprites-style
set, measuring how strongly each z dimension tracks each known factor of variation.

The data set has five factors (shape, scale, orientation, x, y; genjax.data.dsprites). The
``factors`` evaluator writes factors.md (I(z_j; v_k) / H(v_k) for every z dimension and
factor, and the mutual information gap MIG of Chen et al. 2018) and traversals.png (each z
dimension varied, the others fixed). MLP 4096-512-256-10 (the beta-VAE paper's dSprites
model is 4096-1200-1200-10; this one trains on a 2-core CPU in minutes), Bernoulli
likelihood, Adam 5e-4, batch 64, 20 epochs. Variants:
  (default)  beta = 4, the beta-VAE.
  beta1:     beta = 1, the plain VAE, for comparison.
  smoke:     tiny, for tests.

  python launch.py train_vae --workdir=runs/beta4 --config=experiments/configs/beta_vae.py
  python launch.py train_vae --workdir=runs/beta1 --config=experiments/configs/beta_vae.py:beta1

Measured figures: bench/RESULTS.md, section "Disentanglement on dSprites".
"""

from experiments.configs import train_vae


def get_config(variant=None):
  c = train_vae.get_config(None)
  c.dataset = "dsprites"
  c.preprocess = "continuous"   # the sprites are binary already
  c.evaluators = "factors"
  if variant == "smoke":
    c.update(dict(hidden=(16,), latent_dim=3, epochs=1, batch_size=200, beta=4.0,
                  eval_every=1, num_samples=4, eval_batch_size=500))
    return c
  c.update(dict(hidden=(512, 256), latent_dim=10, learning_rate=5e-4, batch_size=64,
                epochs=20, beta=4.0, eval_every=5))
  if variant == "beta1":
    c.beta = 1.0
  elif variant is not None:
    raise KeyError(f"unknown variant {variant!r} of beta_vae.py: expected beta1 or smoke")
  return c
