"""Gradient SNR vs K for IWAE and DReG, run by compare_elbos.

Rainforth et al. 2018 ("Tighter variational bounds are not necessarily better", Sec. 3-4):
with IWAE's reparameterized gradient, the signal-to-noise ratio of the inference network's
(encoder, phi) gradient falls as O(1/sqrt(K)) while the generative network's (decoder,
theta) rises as O(sqrt(K)). Tucker et al. 2019 (DReG): the doubly reparameterized
encoder gradient's SNR does not fall with K.

Protocol: the IWAE paper's network (784-200-200-50 tanh, Bernoulli likelihood, batch 100,
Adam 1e-3: iwae_table1.py) trained 3 epochs with the ELBO on statically binarized MNIST;
at its final parameters, each estimator of ``snr_estimators`` (IWAE and DReG at K = 1, 5,
50, 500) drawn ``snr_draws`` times on one fixed batch of ``snr_batch`` training images, the
same noise for every estimator (so IWAE's and DReG's decoder gradients are the same draws
at each K). SNRs: the median over parameters of |E g| / std g, and the SNR of g along its
mean direction (``metrics.likelihood.snr_summary``). At K = 1, iwae=1 is the ELBO's
reparameterized gradient (elbo_mc); iwae_dreg=1 has the same decoder gradient, but its
encoder gradient is STL's (Roeder et al. 2017): DReG's weights w~_k^2 are 1 at K = 1.

  python launch.py compare_elbos --workdir=runs/snr_vs_k \\
      --config=experiments/configs/snr_vs_k.py --config.data_dir=../shared/data

Measured (2-core CPU, 6.5 min), median SNR from K=1 to 500: IWAE encoder 0.327 -> 0.211,
decoder 1.50 -> 3.98; DReG encoder 0.508 -> 0.419. Full record: README, "Gradient SNR vs K".
Variants:
  smoke: tiny, for tests.
"""

from experiments.configs import base, iwae_table1

KS = (1, 5, 50, 500)


def get_config(variant=None):
  c = iwae_table1.get_config("static")
  c.update(dict(variants="elbo", epochs=3, seeds=1, eval_every=1, checkpoint_every=3,
                ll_samples=1000, ll_examples=1000, snr_draws=500, snr_batch=10,
                snr_estimators=",".join(f"{e}={k}" for e in ("iwae", "iwae_dreg") for k in KS)))
  return base.with_variant(c, variant, {
      # K = 1 beside the ELBO's own estimators: iwae=1 is elbo_mc, iwae_dreg=1 is elbo_stl.
      "smoke": dict(dataset="mnist", preprocess="dynamic", epochs=1, batch_size=32,
                    hidden=(8,), latent_dim=2, ll_samples=20, ll_examples=10, snr_draws=6,
                    snr_batch=4, eval_batch_size=40,
                    snr_estimators="iwae=1,iwae=20,iwae_dreg=1,iwae_dreg=20,elbo_mc,elbo_stl"),
  })
