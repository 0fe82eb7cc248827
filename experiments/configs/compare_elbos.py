"""compare_elbos: ELBO variants and gradient estimators on equal footing.

Defaults: the README's ELBO-lab variants on train_vae's network, 3 seeds, 25 epochs,
test log-likelihood with K = 5000 on the whole test set.

  python launch.py compare_elbos --workdir=runs/cmp --config.data_dir=../shared/data

Not measured at these defaults; the ELBO lab's measured tables are those of the configs
below (README, "The ELBO lab").
Variants:
  smoke: tiny, for tests.
The IWAE paper's Table 1 protocol is its own config: iwae_table1.py; gradient SNR vs K for
IWAE and DReG is snr_vs_k.py.
"""

from experiments.configs import base


def get_config(variant=None):
  c = base.latent(base.likelihood(base.model()))
  c.variants = "elbo,elbo_mc,beta=0.5,iwae=5,iwae=50,iwae_dreg=50,elbo_stl"
  c.seeds = 3
  c.ll_samples = 5000
  c.ll_examples = 0
  c.snr_draws = 100
  c.snr_batch = 100
  c.snr_estimators = ""   # e.g. "iwae=1,iwae=50": more estimators' SNR (snr_vs_k.py)
  c.models = ""           # e.g. "diagonal,planar=8,two_layer=25" (compare_posteriors.py)
  c.adam_eps = 1e-8
  c.lr_schedule = "constant"
  c.curve_ll_samples = 0  # e.g. 500: a test-NLL learning curve (burda2016_iwae.py)
  c.paper_nll = ""        # e.g. "iwae=5:85.54": the paper's numbers on that curve
  base.budget(c)
  return base.with_variant(c, variant, {
      "smoke": dict(variants="elbo,iwae_dreg=3", seeds=2, epochs=1, batch_size=32,
                    hidden=(16,), latent_dim=2, ll_samples=20, ll_examples=10, snr_draws=4,
                    snr_batch=8, eval_batch_size=40),
  })
