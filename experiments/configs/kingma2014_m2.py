"""Reproduction: Kingma, Rezende, Mohamed & Welling 2014, Semi-Supervised Learning with
Deep Generative Models (NeurIPS 2014), Table 1, MNIST, model M2 alone. Run by
semi_supervised:

  python launch.py semi_supervised --workdir=runs/kingma2014 \\
      --config=experiments/configs/kingma2014_m2.py --config.data_dir=../shared/data

The protocol as the paper states it (Sec. 4, "Experimental results", and its appendix on
the experimental setup):
  - data: MNIST, the labels of 100 or 1000 training images kept (balanced over classes:
    10 or 100 per class), the rest unlabelled; pixels as Bernoulli probabilities
    (here binarized dynamically);
  - model M2: q(y|x), q(z|x, y) and p(x|y, z) each an MLP with one hidden layer of 500
    softplus units, z of 50 dimensions, p(z) = N(0, I), p(y) uniform, p(x|y, z) Bernoulli;
  - objective: Eq. 9, the labelled bound, the unlabelled bound summed over y under
    q(y|x), and alpha = 0.1 * N times the labelled cross-entropy (alpha=0 here: 0.1 N /
    N_labelled for per-example means, the same weighting);
  - optimiser: Adam-style updates with learning rate 3e-4 and moment decays 0.1 / 0.001
    (beta1 = 0.9, beta2 = 0.999); weights initialised from N(0, 0.001^2) (here: Flax's
    default initialisers);
  - the paper states no number of passes; the authors' code (dpkingma/nips14-ssl,
    run_2layer_ssl.py, the M1+M2 setting) trains 3,000 passes, with 100 (100 labels) or
    200 minibatches per pass.
Table 1's numbers (test error, %): M2 with 100 labels 11.97 (± 1.71), with 1000 labels
3.60 (± 0.56).

Here each unlabelled image of a minibatch is paired with a labelled one (the labelled set
repeated), batch 100 pairs; every epoch is one pass over the unlabelled images.

Budgets (``--config.budget``):
  machine (default): 4 passes, 3 seeds (each with its own labelled subset), test error
    after every pass: m2_curves.png and results.json's n<N>/m2_epochs_to_paper (where the
    curve's log-linear tail would reach the paper's error).
  paper: 3,000 passes (the authors' code), test error every 100.
Measured (test error): at the machine budget 25.91 ± 0.69 % (100 labels) and 13.57 ±
0.08 % (1000 labels), mean ± s.e. over 3 seeds; one seed over 50 passes
(``--config.seeds=1 --config.epochs=50``) 16.29 % and 7.94 %, both curves still falling.
Full record, with the ablation: bench/RESULTS.md, section "M2 (`kingma2014_m2.py`, 4
passes, 3 seeds) and its architecture ablation".
Variants:
  genjax_architecture: the ablation — semi_supervised's default M2 network (MLP 512-256,
          ReLU, z of 32, Adam 1e-3) under the same protocol and budget, to measure how much
          of the gap to the paper is the architecture rather than the budget.
  smoke: tiny, for tests.
"""

from experiments.configs import base, semi_supervised


def get_config(variant=None):
  c = semi_supervised.get_config()
  c.update(dict(methods="m2", hidden=(500,), activation="softplus", latent_dim=50,
                learning_rate=3e-4, batch_size=100, epochs=4, m2_epochs=0, alpha=0.0,
                seeds=3, labels_per_class=(10, 100), eval_every=1, checkpoint_every=1,
                preprocess="dynamic"))
  c.paper_budget.update(dict(epochs=3000, eval_every=100, checkpoint_every=100))
  return base.with_variant(c, variant, {
      "genjax_architecture": dict(hidden=(512, 256), activation="relu", latent_dim=32,
                                  learning_rate=1e-3),
      "smoke": dict(epochs=2, batch_size=32, hidden=(16,), latent_dim=4, eval_batch_size=64,
                    seeds=2, labels_per_class=(2,)),
  })
