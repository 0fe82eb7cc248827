"""KL(q || p) between two distribution objects: the closed form where the pair has one
(``has_closed_form_kl``), else a Monte Carlo estimate log q(z) - log p(z) at samples z ~ q
(``kl_divergence``).

The closed forms are a table (type(q), type(p)) -> function, filled beside the types by
``register_closed_form_kl`` (``_gaussian``: DiagonalGaussian || StandardNormal,
DiagonalGaussian || DiagonalGaussian, FullCovarianceGaussian || StandardNormal), so that
this module imports no distribution and the objects' ``kl`` methods can call it.
"""

from __future__ import annotations

from typing import Any, Callable, TypeVar

import jax

_KlFn = TypeVar("_KlFn", bound=Callable[..., jax.Array])

# (type(q), type(p)) -> closed-form KL(q || p); a pair not listed has none.
_CLOSED_FORM_KL: dict[tuple[type, type], Callable[..., jax.Array]] = {}


def register_closed_form_kl(q_type: type, p_type: type) -> Callable[[_KlFn], _KlFn]:
  """Decorator: ``kl(q, p, per_dim) -> [...]`` (``[..., dim]`` with ``per_dim``) is the
  closed-form KL(q || p) for q a ``q_type`` and p a ``p_type``; returns ``kl`` unchanged."""
  def register(kl: _KlFn) -> _KlFn:
    _CLOSED_FORM_KL[q_type, p_type] = kl
    return kl
  return register


def has_closed_form_kl(q: Any, p: Any) -> bool:
  """Whether KL(q || p) has a closed form here (``kl_divergence`` uses it)."""
  return (type(q), type(p)) in _CLOSED_FORM_KL


def _closed_form_kl(q: Any, p: Any, per_dim: bool) -> jax.Array:
  if not has_closed_form_kl(q, p):
    raise NotImplementedError(
        f"KL({type(q).__name__} || {type(p).__name__}) has no closed form; estimate it at "
        "samples z ~ q with kl_divergence(q, p, z)")
  return _CLOSED_FORM_KL[type(q), type(p)](q, p, per_dim)


def kl_divergence(q: Any, p: Any, z: jax.Array | None = None,
                  per_dim: bool = False) -> jax.Array:
  """KL(q || p): the closed form when the pair has one, else a Monte Carlo estimate.

  Closed forms: DiagonalGaussian || StandardNormal (Kingma & Welling 2014, Appendix B)
    KL = 1/2 sum_d [ mu_d^2 + var_d - 1 - log var_d ],
  DiagonalGaussian || DiagonalGaussian
    KL = 1/2 sum_d [ log var_p,d - log var_q,d + (var_q,d + (mu_q,d - mu_p,d)^2) / var_p,d - 1 ],
  FullCovarianceGaussian || StandardNormal
    KL = 1/2 [ tr(Sigma) + mu^T mu - d - log det Sigma ].
  Otherwise (e.g. against a ``MixtureOfDiagonalGaussians``) the estimate at the given
  samples z ~ q, KL_hat = log q(z) - log p(z), unbiased (E_q KL_hat = KL); average it
  over samples. Without a closed form, ``z`` is required. z: [..., batch, dim] -> [..., batch].

  ``per_dim=True`` returns [..., dim]: the KL between each dimension's marginals,
  KL(q(z_d) || p(z_d)) (closed form, or log q(z_d) - log p(z_d) at z). These sum to the
  KL when both q and p are ``factorized``; for a mixture prior they do not.
  """
  if has_closed_form_kl(q, p):
    return _closed_form_kl(q, p, per_dim)
  if z is None:
    raise ValueError(f"KL({type(q).__name__} || {type(p).__name__}) has no closed form: pass "
                     "samples z ~ q for the Monte Carlo estimate log q(z) - log p(z)")
  if per_dim:
    return q.log_prob_per_dim(z) - p.log_prob_per_dim(z)
  return q.log_prob(z) - p.log_prob(z)
