"""The ELBO family as pure losses: the ELBO, its variants, IWAE and gradient estimators.

Every objective here is built from a model and returns a pure function of
``(params, batch, rng)``. Terms are computed per example (``[batch]``), summed over
pixels and latent dimensions, and only then averaged over the batch: a mean over
pixels would rescale the likelihood against the KL and would no longer be an ELBO.
All values are in nats per example.

  ELBO(x) = E_{q(z|x)}[ log p(x|z) ] - KL( q(z|x) || p(z) )   <=  log p(x)

(Kingma & Welling 2014, Auto-Encoding Variational Bayes, Eq. 3; beta-VAE:
Higgins et al. 2017 weights the KL by beta.) With K importance samples
z_k ~ q(z|x) and log-weights log w_k = log p(x|z_k) + log p(z_k) - log q(z_k|x):

  ELBO_K(x) = 1/K sum_k log w_k                 (the "VAE k=K" baseline)
  IWAE_K(x) = log 1/K sum_k w_k                 (Burda et al. 2016, Eq. 8)
  ELBO = ELBO_1 = IWAE_1 <= IWAE_K <= IWAE_{K+1} <= log p(x)

The model is any latent-variable model of ``genjax.models.protocol``: q(z|x) is
``posterior``, p(z) is ``prior`` (N(0, I), a VampPrior mixture, ...), p(x|z) is
``likelihood`` of ``decode``. The closed-form KL (``kl="analytic"``) is used where
``distributions.kl_divergence`` has one for the (posterior, prior) pair; otherwise it is
refused and ``kl="mc"`` estimates the KL at the samples. Samples and their log q(z|x) come
from ``q.sample_and_log_prob`` (for a closed-form density: sample, then log_prob), so a
normalizing-flow posterior, whose density is known only at its own samples
(log q(z_K) = log q_0(z_0) - sum_k log |det dz_k/dz_{k-1}|), trains with every Monte Carlo
form; STL and DReG evaluate log q at stopped parameters at given z, which a flow cannot,
and are refused for it (a ValueError at the first call).

Gradient estimators are written as surrogate losses whose value is the objective and
whose gradient is the estimator: plain reparameterization, "sticking the landing"
(STL) and doubly reparameterized gradients (DReG). The encoder's parameters are the
entries the model declares (``model.encoder_params``, ``protocol.encoder_mask``); STL
and DReG stop gradients to q's parameters inside log q(z|x). A conditional model
(``models.CVAE``) takes ``batch["condition"]``: every ELBO variant then bounds
log p(x|c) unchanged.

Variants by name: ``parse_variant("iwae=5+beta_warmup=1000") -> Objective`` and
``make_loss(model, likelihood, objective)``. Every name is one ``Variant`` in the registry
``VARIANTS`` (its form, e.g. "iwae=K", its value's type, a one-line doc with the paper,
and the ``Objective`` fields it sets); ``VARIANT_FORMS`` lists the forms for help texts.
Parts joined by "+" compose: their fields merge, two parts that set one field to
different values are refused, and so are combinations the losses do not compute
(``unsupported``: free bits or STL with IWAE, DReG without IWAE). A new variant is one
entry, e.g. ``register(Variant("stl_k", "the K-sample ELBO with STL (Roeder et al. 2017)",
lambda k: {"kind": "elbo", "kl": "mc", "num_samples": k, "estimator": "stl"},
positive_int("K")))``, and then composes with every other ("stl_k=5+beta=0.5").

The other losses sit beside this module: ``losses.autoencoder`` (the (denoising)
autoencoder's reconstruction loss), ``losses.semi_supervised`` (the classifier's
cross-entropy and the semi-supervised M2 objective of Kingma et al. 2014) and
``losses.gan`` (minimax, non-saturating and hinge GAN losses with the R1 gradient
penalty); the likelihoods p(x|z) are in ``genjax.likelihoods``.

One namespace, ``genjax.losses.elbo``; each concern lives in one private module:

  _samples.py   sample_terms: K samples z_k ~ q(z|x) and the terms of their log-weights
  _bounds.py    the ELBO: make_elbo_terms, elbo_metrics, analytic_kl (the KL choice),
                beta_schedule (warm-up), free_bits_kl and the loss make_elbo_loss
  _iwae.py      IWAE: make_iwae_loss (annealed weights, DReG) and log_mean_exp
  _variants.py  the registry and its parser: Objective, Value, Variant, register, VARIANTS,
                VARIANT_FORMS, variant_forms, parse_variant(s), unsupported
  _builtin.py   BUILTIN_VARIANTS (registered on import) and make_loss, the dispatch from an
                Objective to make_elbo_loss or make_iwae_loss

Imports flow one way, without cycles: _variants imports no other part; _samples none;
_bounds imports _samples and _variants; _iwae _bounds and _samples; _builtin all of them.
This file only re-exports them (``VARIANTS`` and ``VARIANT_FORMS`` as views of
``_variants``' globals: ``_Namespace``).
"""

import sys as _sys
import types as _types

from genjax.losses.elbo import _variants
from genjax.losses.elbo._samples import sample_terms
from genjax.losses.elbo._bounds import TermsFn
from genjax.losses.elbo._bounds import analytic_kl
from genjax.losses.elbo._bounds import beta_schedule
from genjax.losses.elbo._bounds import elbo_metrics
from genjax.losses.elbo._bounds import free_bits_kl
from genjax.losses.elbo._bounds import make_elbo_loss
from genjax.losses.elbo._bounds import make_elbo_terms
from genjax.losses.elbo._iwae import log_mean_exp
from genjax.losses.elbo._iwae import make_iwae_loss
from genjax.losses.elbo._variants import ESTIMATORS
from genjax.losses.elbo._variants import KL_ESTIMATORS
from genjax.losses.elbo._variants import OBJECTIVE_FIELDS
from genjax.losses.elbo._variants import Objective
from genjax.losses.elbo._variants import Value
from genjax.losses.elbo._variants import Variant
from genjax.losses.elbo._variants import non_negative
from genjax.losses.elbo._variants import parse_variant
from genjax.losses.elbo._variants import parse_variants
from genjax.losses.elbo._variants import positive_int
from genjax.losses.elbo._variants import register
from genjax.losses.elbo._variants import unsupported
from genjax.losses.elbo._variants import variant_forms
from genjax.losses.elbo._builtin import BUILTIN_VARIANTS
from genjax.losses.elbo._builtin import make_loss


class _Namespace(_types.ModuleType):
  """``elbo.VARIANTS`` and ``elbo.VARIANT_FORMS`` are ``_variants``' globals, read and
  written there, not copies: ``register`` rebinds ``VARIANT_FORMS`` and ``parse_variant``
  reads ``VARIANTS`` in ``_variants``, so a copy bound here would go stale, and rebinding
  ``elbo.VARIANTS`` (as a test's monkeypatch does) would not reach them."""

  VARIANTS = property(lambda self: _variants.VARIANTS,
                      lambda self, value: setattr(_variants, "VARIANTS", value))
  VARIANT_FORMS = property(lambda self: _variants.VARIANT_FORMS,
                           lambda self, value: setattr(_variants, "VARIANT_FORMS", value))


_sys.modules[__name__].__class__ = _Namespace

__all__ = (
    "sample_terms",
    "TermsFn",
    "analytic_kl",
    "beta_schedule",
    "elbo_metrics",
    "free_bits_kl",
    "make_elbo_loss",
    "make_elbo_terms",
    "log_mean_exp",
    "make_iwae_loss",
    "ESTIMATORS",
    "KL_ESTIMATORS",
    "OBJECTIVE_FIELDS",
    "Objective",
    "Value",
    "Variant",
    "VARIANTS",
    "VARIANT_FORMS",
    "non_negative",
    "parse_variant",
    "parse_variants",
    "positive_int",
    "register",
    "unsupported",
    "variant_forms",
    "BUILTIN_VARIANTS",
    "make_loss",
)
