"""Log-densities, KL divergences and reparameterized sampling: pure functions, and the
distribution objects built on them. One namespace, ``genjax.distributions``; each concern
lives in one private module:

  _functions.py     log N(x; mu, diag var), log N(x; 0, I), log Bernoulli(x; logits); the
                    closed-form KLs of Gaussians; reparameterize, per-example noise and keys
  _gaussian.py      DiagonalGaussian, StandardNormal, FullCovarianceGaussian (and their
                    closed-form KLs, registered with _kl)
  _mixture.py       MixtureOfDiagonalGaussians (the VampPrior's mixture)
  _flows.py         PlanarFlow, InverseAutoregressiveFlow, their steps and shared code
  _networks.py      GaussianMLP, a conditional Gaussian held as arrays
  _hierarchical.py  HierarchicalPosterior, HierarchicalPrior (chains of GaussianMLP layers)
  _kl.py            kl_divergence and has_closed_form_kl: the closed form, or Monte Carlo

Imports flow one way, without cycles: _functions and _kl import no other part; _gaussian
imports both, _mixture _functions, _flows and _networks _gaussian, _hierarchical _functions,
_gaussian and _networks. This file only re-exports them (and names the ``Distribution``
union).

Conventions: a diagonal Gaussian is given by its ``mean`` and ``log_var``
(log of the variance, elementwise). Every log-density and KL sums over the last
``event_ndims`` axes (the event) and keeps the leading (batch / sample) axes, so
``gaussian_log_prob(x, mu, lv, event_ndims=3)`` on ``x: [batch, H, W, C]`` returns
``[batch]``. All values are in nats.

The objects (``DiagonalGaussian``, ``StandardNormal``, ``MixtureOfDiagonalGaussians``,
``FullCovarianceGaussian``, the flows ``PlanarFlow`` and ``InverseAutoregressiveFlow``, and
the chains of stochastic layers ``HierarchicalPosterior`` and ``HierarchicalPrior``)
are what a latent-variable model's ``posterior`` and ``prior`` return
(``genjax.models.protocol``). Every posterior has ``sample_and_log_prob(rng, num_samples)``,
which the losses draw z ~ q(z|x) through: for a closed-form density it is ``sample`` then
``log_prob``; a flow's density is known only at its own samples.
Their event is the last axis (the latent vector); they are ``flax.struct`` pytrees, so
``jax.lax.stop_gradient(dist)`` stops every parameter and they pass through ``jit``.
``kl_divergence(q, p)`` is the closed form where one exists and a Monte Carlo estimate
otherwise.
"""

from genjax.distributions._functions import LOG_2PI
from genjax.distributions._functions import bernoulli_log_prob
from genjax.distributions._functions import fold_in_keys
from genjax.distributions._functions import gaussian_log_prob
from genjax.distributions._functions import kl_diag_gaussian_standard_normal
from genjax.distributions._functions import kl_diag_gaussians
from genjax.distributions._functions import kl_full_covariance_standard_normal
from genjax.distributions._functions import kl_monte_carlo
from genjax.distributions._functions import per_example_normal
from genjax.distributions._functions import reparameterize
from genjax.distributions._functions import standard_normal_log_prob
from genjax.distributions._gaussian import DiagonalGaussian
from genjax.distributions._gaussian import FullCovarianceGaussian
from genjax.distributions._gaussian import StandardNormal
from genjax.distributions._mixture import MixtureOfDiagonalGaussians
from genjax.distributions._flows import FLOWS
from genjax.distributions._flows import InverseAutoregressiveFlow
from genjax.distributions._flows import PlanarFlow
from genjax.distributions._flows import iaf_step
from genjax.distributions._flows import made_masks
from genjax.distributions._flows import planar_step
from genjax.distributions._flows import planar_u_hat
from genjax.distributions._networks import GAUSSIAN_MLP_ACTIVATIONS
from genjax.distributions._networks import GaussianMLP
from genjax.distributions._hierarchical import HierarchicalPosterior
from genjax.distributions._hierarchical import HierarchicalPrior
from genjax.distributions._kl import has_closed_form_kl
from genjax.distributions._kl import kl_divergence

# Every object a model's posterior or prior may return.
Distribution = (DiagonalGaussian | StandardNormal | MixtureOfDiagonalGaussians
                | FullCovarianceGaussian | PlanarFlow | InverseAutoregressiveFlow
                | HierarchicalPosterior | HierarchicalPrior)

__all__ = (
    "LOG_2PI",
    "bernoulli_log_prob",
    "fold_in_keys",
    "gaussian_log_prob",
    "kl_diag_gaussian_standard_normal",
    "kl_diag_gaussians",
    "kl_full_covariance_standard_normal",
    "kl_monte_carlo",
    "per_example_normal",
    "reparameterize",
    "standard_normal_log_prob",
    "DiagonalGaussian",
    "FullCovarianceGaussian",
    "StandardNormal",
    "MixtureOfDiagonalGaussians",
    "FLOWS",
    "InverseAutoregressiveFlow",
    "PlanarFlow",
    "iaf_step",
    "made_masks",
    "planar_step",
    "planar_u_hat",
    "GAUSSIAN_MLP_ACTIVATIONS",
    "GaussianMLP",
    "HierarchicalPosterior",
    "HierarchicalPrior",
    "has_closed_form_kl",
    "kl_divergence",
    "Distribution",
)
