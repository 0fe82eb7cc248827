"""compare_elbos across architectures: richer posteriors and a second stochastic layer on
equal footing (issue 16, part 5).

Every entry of ``models`` trains every variant from the same initialisation seeds on the
same data order for the same epochs: the diagonal Gaussian q(z|x), the full-covariance
Gaussian, 8 planar flows (Rezende & Mohamed 2015), 2 IAF steps (Kingma et al. 2016) and a
second stochastic layer of 16 units above z_1 (Burda et al. 2016's two-layer structure,
here on train_vae's network: 784-512-256-z_1 (32) -100-100- z_2 (16)), each with the
Monte Carlo ELBO (elbo_mc; the only KL the flows and the hierarchy have).
Reported per model: test NLL (importance sampling, K = 1000 on 1000 test images, with its
standard error), test ELBO, the gap log p(x) - ELBO, active units, training seconds.
Budget: 10 epochs (as the README's first richer-posterior table), 3 seeds.

  python launch.py compare_elbos --workdir=runs/compare_posteriors \\
      --config=experiments/configs/compare_posteriors.py --config.data_dir=../shared/data

Measured (test NLL, mean ± std over 3 seeds): IAF 92.79 ± 0.18 and the second layer
92.89 ± 0.17 against the diagonal Gaussian's 93.63 ± 0.03. Full record: README,
"Posteriors and hierarchies on equal footing".
Variants:
  smoke: tiny, for tests.
"""

from experiments.configs import base, compare_elbos


def get_config(variant=None):
  c = compare_elbos.get_config()
  c.update(dict(models="diagonal,full_covariance,planar=8,iaf=2,two_layer=16",
                variants="elbo_mc", epochs=10, seeds=3, ll_samples=1000,
                ll_examples=1000, snr_draws=10, snr_batch=100, eval_every=1,
                checkpoint_every=5))
  return base.with_variant(c, variant, {
      "smoke": dict(models="diagonal,planar=2,two_layer=2", variants="elbo_mc", seeds=1,
                    epochs=1, batch_size=32, hidden=(16,), latent_dim=2, upper_hidden=(4,),
                    ll_samples=20, ll_examples=10, snr_draws=4, snr_batch=8,
                    eval_batch_size=40),
  })
