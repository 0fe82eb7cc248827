"""The library's own variants (``BUILTIN_VARIANTS``, registered into ``VARIANTS`` on
import) and ``make_loss``, which builds the loss an ``Objective`` names: the ELBO
(``_bounds``) or IWAE (``_iwae``)."""

from __future__ import annotations

import flax.linen as nn

from genjax.likelihoods import Likelihood
from genjax.losses.elbo._bounds import make_elbo_loss
from genjax.losses.elbo._iwae import make_iwae_loss
from genjax.losses.elbo._variants import (Objective, Variant, non_negative, positive_int,
                                          register, unsupported)
from genjax.types import LossFn


# The library's own variants, in the order help texts list them. A new variant is one entry
# here (or a ``register`` call where it is used) and a row in tests/test_losses_variants.py.
BUILTIN_VARIANTS: tuple[Variant, ...] = (
    Variant("elbo", "the ELBO with the closed-form KL (Kingma & Welling 2014, Sec. 2.3)",
            lambda _: {"kind": "elbo", "kl": "analytic"}),
    Variant("elbo_mc", "the ELBO with the one-sample Monte Carlo KL (Kingma & Welling 2014)",
            lambda _: {"kind": "elbo", "kl": "mc"}),
    Variant("elbo_stl", "the sticking-the-landing gradient, MC KL (Roeder et al. 2017)",
            lambda _: {"kl": "mc", "estimator": "stl"}),
    Variant("elbo_k", "the ELBO averaged over K samples ('VAE k=K', Burda et al. 2016)",
            lambda k: {"kind": "elbo", "kl": "mc", "num_samples": k}, positive_int("K")),
    Variant("beta", "the KL weighted by B (beta-VAE, Higgins et al. 2017)",
            lambda b: {"beta": b}, non_negative("B")),
    Variant("beta_warmup", "the KL weight raised linearly from 0 over STEPS steps "
            "(Bowman et al. 2016, Sonderby et al. 2016)",
            lambda s: {"warmup_steps": s}, positive_int("STEPS")),
    Variant("free_bits", "a per-dimension KL floor of NATS (Kingma et al. 2016, App. C.8)",
            lambda n: {"free_bits": n}, non_negative("NATS")),
    Variant("iwae", "the K-sample importance weighted bound (Burda et al. 2016)",
            lambda k: {"kind": "iwae", "kl": "mc", "num_samples": k}, positive_int("K")),
    Variant("iwae_dreg", "IWAE with doubly reparameterized gradients (Tucker et al. 2019)",
            lambda k: {"kind": "iwae", "kl": "mc", "num_samples": k, "estimator": "dreg"},
            positive_int("K")),
)
for _variant in BUILTIN_VARIANTS:
  register(_variant)
del _variant


def make_loss(model: nn.Module, likelihood: Likelihood, objective: Objective) -> LossFn:
  """The pure loss for ``objective``: ``make_elbo_loss`` or ``make_iwae_loss`` (with beta
  and its warm-up); a ValueError when ``unsupported(objective)``."""
  why = unsupported(objective)
  if why:
    raise ValueError(f"objective {objective.name!r}: {why}")
  if objective.kind == "iwae":
    return make_iwae_loss(model, likelihood, objective.num_samples, objective.estimator,
                          objective.beta, objective.warmup_steps)
  return make_elbo_loss(model, likelihood, objective.kl, objective.beta, objective.num_samples,
                        objective.estimator, objective.warmup_steps, objective.free_bits)
