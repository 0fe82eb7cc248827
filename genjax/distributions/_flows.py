"""Normalizing-flow posteriors on a diagonal Gaussian base: ``PlanarFlow`` (Rezende &
Mohamed 2015) and ``InverseAutoregressiveFlow`` (Kingma et al. 2016), their steps
(``planar_u_hat``, ``planar_step``, ``made_masks``, ``iaf_step``) and what every flow shares
(``_Flow``: the density only at its own samples)."""

from __future__ import annotations

from typing import Any, ClassVar

import flax.struct
import jax
import jax.numpy as jnp

from genjax.distributions._gaussian import DiagonalGaussian


# --- Normalizing flows on a diagonal Gaussian base -----------------------------------------
#
# z_0 ~ q_0 = N(mu, diag(sigma^2)) (reparameterized), z_k = f_k(z_{k-1}), and
#   log q(z_K) = log q_0(z_0) - sum_k log |det dz_k / dz_{k-1}|
# (Rezende & Mohamed 2015, Eq. 7). The density is known only at the flow's own samples:
# ``sample_and_log_prob`` returns both; ``log_prob`` at an arbitrary z would need the
# inverse flow, which planar flows have in no closed form, so it is refused: such a
# posterior trains with a Monte Carlo KL (elbo_mc, elbo_k=K, iwae=K), not with the
# closed form, STL or DReG (which evaluate log q at stopped parameters at given z).


def planar_u_hat(u: jax.Array, w: jax.Array) -> jax.Array:
  """u^ = u + [m(w^T u) - w^T u] w / |w|^2, m(a) = -1 + softplus(a): w^T u^ >= -1, so that
  f(z) = z + u^ tanh(w^T z + b) is invertible (Rezende & Mohamed 2015, Appendix A.1).
  u, w: [..., dim] -> [..., dim]."""
  wu = jnp.sum(w * u, -1, keepdims=True)
  return u + (jax.nn.softplus(wu) - 1.0 - wu) * w / jnp.sum(jnp.square(w), -1, keepdims=True)


def planar_step(z: jax.Array, u: jax.Array, w: jax.Array,
                b: jax.Array) -> tuple[jax.Array, jax.Array]:
  """One planar flow f(z) = z + u^ tanh(w^T z + b) and log |det df/dz|
  = log |1 + u^T psi(z)|, psi(z) = (1 - tanh^2(w^T z + b)) w (Rezende & Mohamed 2015,
  Eqs. 10-12, with u^ = ``planar_u_hat(u, w)``). z: [..., dim]; u, w: [..., dim] and b: [...]
  broadcast against z. Returns (f(z): [..., dim], log_det: [...])."""
  u_hat = planar_u_hat(u, w)
  a = jnp.tanh(jnp.sum(w * z, -1) + b)                                   # [...]
  log_det = jnp.log(jnp.abs(1.0 + (1.0 - jnp.square(a)) * jnp.sum(w * u_hat, -1)))
  return z + u_hat * a[..., None], log_det


class _Flow:
  """What every flow posterior shares beyond its ``forward`` (z_0 -> z_K, log-det) and its
  ``base``: the density only at its own samples, the flowed base mean as a point summary."""
  factorized: ClassVar[bool] = False

  @property
  def mean(self) -> jax.Array:
    """The flow of the base mean, f(mu): a point summary (E_q[z] has no closed form)."""
    return self.forward(self.base.mean)[0]

  def sample_and_log_prob(self, rng, num_samples=None):
    return _flow_sample_and_log_prob(self, rng, num_samples)

  def sample(self, rng: jax.Array, num_samples: int | None = None) -> jax.Array:
    """Reparameterized z_K (see ``sample_and_log_prob``)."""
    return self.sample_and_log_prob(rng, num_samples)[0]

  def log_prob(self, z: jax.Array) -> jax.Array:
    raise _flow_density_error(self)

  def log_prob_per_dim(self, z: jax.Array) -> jax.Array:
    raise _flow_density_error(self)


@flax.struct.dataclass
class PlanarFlow(_Flow):
  """q(z|x): K planar flows (Rezende & Mohamed 2015) on a ``DiagonalGaussian`` base.

  base: batch [batch], event [dim]; u, w: [batch, K, dim] and b: [batch, K], amortized
  (computed by the encoder from x). Density only at its own samples
  (``sample_and_log_prob``).
  """
  base: DiagonalGaussian
  u: jax.Array
  w: jax.Array
  b: jax.Array

  def forward(self, z0: jax.Array) -> tuple[jax.Array, jax.Array]:
    """z_K = f_K o ... o f_1(z_0) and sum_k log |det dz_k/dz_{k-1}|: z0 [..., batch, dim]."""
    z, total = z0, jnp.zeros(z0.shape[:-1], z0.dtype)
    for k in range(self.u.shape[-2]):
      z, log_det = planar_step(z, self.u[..., k, :], self.w[..., k, :], self.b[..., k])
      total = total + log_det
    return z, total


def made_masks(dim: int, hidden: int, reverse: bool) -> tuple[jax.Array, jax.Array]:
  """MADE masks (Germain et al. 2015): input->hidden [dim, hidden] and hidden->output
  [hidden, dim], so that output d depends only on inputs before d in the order (1..dim,
  or dim..1 when ``reverse``: IAF reverses the order between steps)."""
  degrees_in = jnp.arange(1, dim + 1)
  if reverse:
    degrees_in = degrees_in[::-1]
  degrees_hidden = jnp.arange(hidden) % max(dim - 1, 1) + 1
  in_mask = (degrees_hidden[None, :] >= degrees_in[:, None]).astype(jnp.float32)
  out_mask = (degrees_in[None, :] > degrees_hidden[:, None]).astype(jnp.float32)
  return in_mask, out_mask


def iaf_step(z: jax.Array, context: jax.Array, weights: dict[str, jax.Array],
             reverse: bool) -> tuple[jax.Array, jax.Array]:
  """One IAF step with a one-hidden-layer MADE (Kingma et al. 2016, IAF, Alg. 1, Eqs. 13-14):

    [m, s] = MADE(z, h),  sigma = sigmoid(s),  z' = sigma * z + (1 - sigma) * m,
    log |det dz'/dz| = sum_d log sigma_d  (the Jacobian is triangular in the MADE order).

  z: [..., batch, dim]; context h: [batch, H] from the encoder. ``weights``: w_in [dim, Hid],
  c_in [H, Hid], b_in [Hid], w_m / w_s [Hid, dim], c_m / c_s [H, dim], b_m / b_s [dim]
  (s's bias starts positive, so sigma starts near 1: the paper's "forget gate" init).
  Returns (z': [..., batch, dim], log_det: [..., batch]).
  """
  in_mask, out_mask = made_masks(z.shape[-1], weights["w_in"].shape[-1], reverse)
  hidden = jax.nn.elu(z @ (weights["w_in"] * in_mask) + context @ weights["c_in"]
                      + weights["b_in"])
  m = hidden @ (weights["w_m"] * out_mask) + context @ weights["c_m"] + weights["b_m"]
  s = hidden @ (weights["w_s"] * out_mask) + context @ weights["c_s"] + weights["b_s"]
  return jax.nn.sigmoid(s) * z + jax.nn.sigmoid(-s) * m, jnp.sum(jax.nn.log_sigmoid(s), -1)


@flax.struct.dataclass
class InverseAutoregressiveFlow(_Flow):
  """q(z|x): IAF steps (Kingma et al. 2016) on a ``DiagonalGaussian`` base.

  base: batch [batch], event [dim]; context: [batch, H], the encoder's h(x); steps: one
  ``iaf_step`` weight dict per step (shared across examples), the order reversed every
  other step. Density only at its own samples (``sample_and_log_prob``).
  """
  base: DiagonalGaussian
  context: jax.Array
  steps: tuple[dict[str, jax.Array], ...]

  def forward(self, z0: jax.Array) -> tuple[jax.Array, jax.Array]:
    """z_K and sum_k log |det dz_k/dz_{k-1}| = sum_k sum_d log sigma_k,d: z0 [..., batch, dim]."""
    z, total = z0, jnp.zeros(z0.shape[:-1], z0.dtype)
    for k, weights in enumerate(self.steps):
      z, log_det = iaf_step(z, self.context, weights, reverse=k % 2 == 1)
      total = total + log_det
    return z, total


FLOWS = (PlanarFlow, InverseAutoregressiveFlow)


def _flow_sample_and_log_prob(flow: Any, rng: jax.Array,
                              num_samples: int | None) -> tuple[jax.Array, jax.Array]:
  """z_K = f(z_0), z_0 ~ base (reparameterized), and
  log q(z_K) = log q_0(z_0) - sum_k log |det dz_k/dz_{k-1}| (Rezende & Mohamed 2015, Eq. 7).

  Returns z: [batch, dim] (or [num_samples, batch, dim]) and log q: [batch] (or [num, batch]).
  """
  z0 = flow.base.sample(rng, num_samples)
  z, log_det = flow.forward(z0)
  return z, flow.base.log_prob(z0) - log_det


def _flow_density_error(flow: Any) -> ValueError:
  return ValueError(
      f"{type(flow).__name__}: a flow's density is known only at its own samples "
      "(sample_and_log_prob); log q at other points (the closed-form KL, STL and DReG, "
      "which evaluate log q at stopped parameters) is not available: use a Monte Carlo KL "
      "with the reparameterized gradient (elbo_mc, elbo_k=K, iwae=K)")
