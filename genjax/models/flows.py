"""VAEs with richer posteriors q(z|x) than the diagonal Gaussian: the same encoder, decoder
and N(0, I) prior (``models.vae.VAE``), the encoder with one more head (``encoders``,
``extra``) for what the posterior needs from x.

  ``FullCovarianceVAE``  q(z|x) = N(mu(x), L(x) L(x)^T), L lower-triangular: its diagonal
                         exp(log_var(x) / 2) > 0, its strictly lower part the extra head
                         (``distributions.FullCovarianceGaussian``; closed-form KL).
  ``PlanarFlowVAE``      K planar flows on N(mu(x), diag(exp(log_var(x)))), u, w, b amortized
                         (the extra head; Rezende & Mohamed 2015, Sec. 4.1 and 6).
  ``IAFVAE``             K inverse autoregressive flow steps with MADE networks on that base,
                         conditioned on a context h(x) (the extra head; Kingma et al. 2016).

The flows' density is known at their own samples only (``sample_and_log_prob``): they train
with a Monte Carlo KL and the reparameterized gradient (``losses.elbo``).
"""

from __future__ import annotations

from typing import ClassVar

import flax.linen as nn
import jax
import jax.numpy as jnp

from genjax import distributions as D
from genjax.models.protocol import check_condition
from genjax.models import builders, registry
from genjax.models.vae import VAE


def cholesky_from_heads(log_var: jax.Array, off_diagonal: jax.Array) -> jax.Array:
  """L = (I + A) diag(sigma): [batch, d, d] lower-triangular, sigma = exp(log_var / 2) > 0 on
  the diagonal, A strictly lower with entries (row-major, ``jnp.tril_indices(d, -1)``) from
  off_diagonal: [batch, d(d-1)/2]. Scaling column j by sigma_j keeps each off-diagonal entry
  in the scale of its dimension's spread (L_ij = A_ij sigma_j; log det L = sum log sigma):
  with raw entries, dimensions the encoder makes precise (small sigma) were swamped by
  correlations of order one, and training on MNIST lost 6 to 22 nats of test ELBO."""
  d = log_var.shape[-1]
  rows, cols = jnp.tril_indices(d, -1)
  unit = jnp.zeros((*log_var.shape, d), log_var.dtype).at[..., rows, cols].set(off_diagonal)
  unit = unit + jnp.eye(d, dtype=log_var.dtype)
  return unit * jnp.exp(0.5 * log_var)[..., None, :]


def full_covariance_extra(latent_dim: int) -> int:
  """Outputs of the encoder's extra head for ``FullCovarianceVAE``: d(d-1)/2."""
  return latent_dim * (latent_dim - 1) // 2


def planar_extra(latent_dim: int, flow_steps: int) -> int:
  """Outputs of the encoder's extra head for ``PlanarFlowVAE``: K (2d + 1) (u, w, b)."""
  return flow_steps * (2 * latent_dim + 1)


class FullCovarianceVAE(VAE):
  """q(z|x) = N(mu(x), L(x) L(x)^T); the encoder needs ``extra=full_covariance_extra(d)``."""

  def posterior(self, x: jax.Array,
                condition: jax.Array | None = None) -> D.FullCovarianceGaussian:
    """q(z|x): mean [batch, d], scale_tril [batch, d, d] (``cholesky_from_heads``)."""
    check_condition(self, condition, conditional=False)
    mean, log_var, *rest = self.encoder(x)
    off = rest[0] if rest else jnp.zeros((*mean.shape[:-1], 0), mean.dtype)   # d = 1
    return D.FullCovarianceGaussian(mean, cholesky_from_heads(log_var, off))


class PlanarFlowVAE(VAE):
  """q(z|x): ``flow_steps`` planar flows on the diagonal Gaussian; the encoder needs
  ``extra=planar_extra(d, flow_steps)``."""
  flow_steps: int = 4

  def posterior(self, x: jax.Array, condition: jax.Array | None = None) -> D.PlanarFlow:
    """q(z|x): base N(mu, diag(exp(log_var))), u, w: [batch, K, d], b: [batch, K]."""
    check_condition(self, condition, conditional=False)
    mean, log_var, extra = self.encoder(x)
    k, d = self.flow_steps, self.latent_dim
    u, w, b = jnp.split(extra, [k * d, 2 * k * d], axis=-1)
    return D.PlanarFlow(D.DiagonalGaussian(mean, log_var), u.reshape(-1, k, d),
                        w.reshape(-1, k, d), b)


class IAFWeights(nn.Module):
  """The MADE weights of ``steps`` IAF steps (``distributions.iaf_step``), shared across
  examples. The s bias starts at ``forget_bias`` (sigma = sigmoid(s) near 1: each step
  starts close to the identity, Kingma et al. 2016, Sec. 4)."""
  steps: int
  latent_dim: int
  hidden: int
  context_dim: int
  forget_bias: float = 1.0

  @nn.compact
  def __call__(self) -> tuple[dict[str, jax.Array], ...]:
    d, h, c = self.latent_dim, self.hidden, self.context_dim
    dense, small = nn.initializers.lecun_normal(), nn.initializers.normal(0.01)
    shapes = {"w_in": ((d, h), dense), "c_in": ((c, h), dense),
              "b_in": ((h,), nn.initializers.zeros), "w_m": ((h, d), small),
              "c_m": ((c, d), small), "b_m": ((d,), nn.initializers.zeros),
              "w_s": ((h, d), small), "c_s": ((c, d), small),
              "b_s": ((d,), nn.initializers.constant(self.forget_bias))}
    return tuple({name: self.param(f"step_{k}_{name}", init, shape)
                  for name, (shape, init) in shapes.items()} for k in range(self.steps))


class IAFVAE(VAE):
  """q(z|x): ``flow_steps`` IAF steps on the diagonal Gaussian, context h(x) from the
  encoder (``extra=context_dim``); the MADE weights are the ``flow`` parameter entry, part
  of the inference network (``encoder_params``)."""
  flow_steps: int = 2
  hidden: int = 64
  context_dim: int = 32
  encoder_params: ClassVar[tuple[str, ...]] = ("encoder", "flow")

  def setup(self):
    self.flow = IAFWeights(self.flow_steps, self.latent_dim, self.hidden, self.context_dim)

  def posterior(self, x: jax.Array,
                condition: jax.Array | None = None) -> D.InverseAutoregressiveFlow:
    """q(z|x): base N(mu, diag(exp(log_var))), context h: [batch, context_dim]."""
    check_condition(self, condition, conditional=False)
    mean, log_var, context = self.encoder(x)
    return D.InverseAutoregressiveFlow(D.DiagonalGaussian(mean, log_var), context,
                                       self.flow())


def _check_steps(flow_steps: int) -> None:
  if flow_steps < 1:
    raise ValueError(f"flow_steps={flow_steps} must be >= 1")


def _build_full_covariance(model, image_shape, latent_dim, hidden, output_channels,
                           activation):
  # The off-diagonal head starts at zero: q starts as the diagonal Gaussian (with random
  # initial correlations the 10-epoch run on MNIST lost 22 nats of test ELBO).
  encoder = builders.build_encoder(model, latent_dim, hidden, activation,
                                   extra=full_covariance_extra(latent_dim), extra_zero_init=True)
  decoder = builders.build_decoder(model, image_shape, hidden, output_channels, activation)
  return FullCovarianceVAE(encoder, decoder, latent_dim)


def _build_planar(model, image_shape, latent_dim, hidden, output_channels, activation,
                  flow_steps):
  _check_steps(flow_steps)
  decoder = builders.build_decoder(model, image_shape, hidden, output_channels, activation)
  encoder = builders.build_encoder(model, latent_dim, hidden, activation,
                                   extra=planar_extra(latent_dim, flow_steps))
  return PlanarFlowVAE(encoder, decoder, latent_dim, flow_steps)


def _build_iaf(model, image_shape, latent_dim, hidden, output_channels, activation,
               flow_steps):
  """The IAF's context h(x) has max(16, 2 latent_dim) entries, its MADE layers twice that."""
  _check_steps(flow_steps)
  decoder = builders.build_decoder(model, image_shape, hidden, output_channels, activation)
  context = max(16, 2 * latent_dim)
  encoder = builders.build_encoder(model, latent_dim, hidden, activation, extra=context)
  return IAFVAE(encoder, decoder, latent_dim, flow_steps, hidden=2 * context,
                context_dim=context)


registry.register_posterior(registry.Part(
    "full_covariance", "posterior=full_covariance", factorized=False,
    only_with=("standard_normal",), build=_build_full_covariance))
for _name, _build in (("planar", _build_planar), ("iaf", _build_iaf)):
  registry.register_posterior(registry.Part(
      _name, f"posterior={_name}", reads={"flow_steps": "flow_steps"},
      settings={"flow_steps": registry.Setting("number of flow steps",
                                               registry.positive_integer)},
      closed_form_kl=False,
      density_anywhere=False, factorized=False, only_with=("standard_normal",),
      no_kl_reason=(f"a flow posterior (posterior={_name}) has no closed-form KL (its "
                    "density is known only at its own samples)"), build=_build))
