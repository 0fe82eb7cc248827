"""A linear-Gaussian latent variable model whose marginal and posterior are exact.

p(z) = N(0, I_3), p(x|z) = N(z W + b, s^2 I_6), with W's rows orthogonal so the exact
posterior is a diagonal Gaussian that the encoder q(z|x) = N(x A + c, diag(exp(v))) can
represent. ``exact_setup()`` gives the model, encoder/decoder params with q = p(z|x),
four data points and their exact log p(x) (scipy's multivariate normal). Both models
implement the latent-variable model protocol (``genjax.models.protocol``).
"""

from typing import ClassVar

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
from scipy import stats

from genjax import distributions as D
from genjax.models.protocol import check_condition

DIM_X, DIM_Z, NOISE_STD = 6, 3, 0.5


class LinearEncoder(nn.Module):
  @nn.compact
  def __call__(self, x):
    w = self.param("w", nn.initializers.zeros, (DIM_X, DIM_Z))
    b = self.param("b", nn.initializers.zeros, (DIM_Z,))
    log_var = self.param("log_var", nn.initializers.zeros, (DIM_Z,))
    mean = x.reshape(x.shape[0], -1) @ w + b
    return mean, jnp.broadcast_to(log_var, mean.shape)


class LinearDecoder(nn.Module):
  @nn.compact
  def __call__(self, z):
    w = self.param("w", nn.initializers.zeros, (DIM_Z, DIM_X))
    b = self.param("b", nn.initializers.zeros, (DIM_X,))
    return (z @ w + b).reshape(z.shape[0], 1, 1, DIM_X)


class LinearGaussian(nn.Module):
  """The protocol of genjax.models.VAE: posterior, prior, decode, __call__."""
  latent_dim: int = DIM_Z
  encoder_params: ClassVar[tuple[str, ...]] = ("encoder",)

  def setup(self):
    self.encoder = LinearEncoder()
    self.decoder = LinearDecoder()

  def posterior(self, x, condition=None):
    check_condition(self, condition, conditional=False)
    return D.DiagonalGaussian(*self.encoder(x))

  def prior(self):
    return D.StandardNormal(self.latent_dim)

  def decode(self, z, condition=None):
    check_condition(self, condition, conditional=False)
    return self.decoder(z)

  def __call__(self, x):
    return self.decode(self.posterior(x).mean)


def exact_setup():
  rng = np.random.default_rng(0)
  q, _ = np.linalg.qr(rng.normal(size=(DIM_X, DIM_Z)))
  w = q * np.array([2.0, 1.0, 0.5])                       # [DIM_X, DIM_Z], orthogonal columns
  b = rng.normal(size=DIM_X)
  post_var = 1.0 / (1.0 + np.sum(w ** 2, 0) / NOISE_STD ** 2)
  enc_w = w * post_var / NOISE_STD ** 2                    # posterior mean = (x - b) @ enc_w
  params = {"encoder": {"w": enc_w, "b": -b @ enc_w, "log_var": np.log(post_var)},
            "decoder": {"w": w.T, "b": b}}
  params = jax.tree.map(lambda a: jnp.asarray(a, jnp.float32), params)
  x = rng.normal(size=(4, DIM_X)) @ np.diag([1, 2, 1, 1, 1, 1.]) + b
  log_px = stats.multivariate_normal(b, w @ w.T + NOISE_STD ** 2 * np.eye(DIM_X)).logpdf(x)
  batch = {"image": jnp.asarray(x.reshape(4, 1, 1, DIM_X), jnp.float32)}
  return LinearGaussian(), params, batch, log_px


def perturbed(params, shift=0.4, log_var_shift=0.7):
  """Encoder params away from the exact posterior (decoder unchanged)."""
  enc = params["encoder"]
  return {**params, "encoder": {**enc, "b": enc["b"] + shift,
                                "log_var": enc["log_var"] + log_var_shift}}


def closed_form_elbo(params, batch):
  """E_q[log p(x|z)] - KL(q || p(z)), exactly, mean over the batch (differentiable)."""
  x = batch["image"].reshape(-1, DIM_X)
  enc, dec = params["encoder"], params["decoder"]
  mean = x @ enc["w"] + enc["b"]
  var = jnp.exp(enc["log_var"])
  residual = jnp.sum((x - mean @ dec["w"] - dec["b"]) ** 2, -1)
  spread = jnp.sum(var * jnp.sum(dec["w"] ** 2, 1))
  expected_log_lik = (-0.5 * DIM_X * jnp.log(2 * jnp.pi * NOISE_STD ** 2)
                      - (residual + spread) / (2 * NOISE_STD ** 2))
  kl = 0.5 * jnp.sum(mean ** 2 + var - 1 - jnp.log(var), -1)
  return jnp.mean(expected_log_lik - kl)


# --- The conditional twin: p(x|z, c) = N(z W + c V + b, s^2 I), q(z|x, c) linear in (x, c).

DIM_C = 2


class ConditionalLinearEncoder(nn.Module):
  @nn.compact
  def __call__(self, x, c):
    mean, log_var = LinearEncoder(name="base")(x)
    u = self.param("u", nn.initializers.zeros, (DIM_C, DIM_Z))
    return mean + c @ u, log_var


class ConditionalLinearDecoder(nn.Module):
  @nn.compact
  def __call__(self, z, c):
    v = self.param("v", nn.initializers.zeros, (DIM_C, DIM_X))
    return LinearDecoder(name="base")(z) + (c @ v).reshape(z.shape[0], 1, 1, DIM_X)


class ConditionalLinearGaussian(nn.Module):
  """The protocol of genjax.models.CVAE: posterior(x, c), prior(), decode(z, c), __call__."""
  latent_dim: int = DIM_Z
  encoder_params: ClassVar[tuple[str, ...]] = ("encoder",)

  def setup(self):
    self.encoder = ConditionalLinearEncoder()
    self.decoder = ConditionalLinearDecoder()

  def posterior(self, x, condition=None):
    check_condition(self, condition, conditional=True)
    return D.DiagonalGaussian(*self.encoder(x, condition))

  def prior(self):
    return D.StandardNormal(self.latent_dim)

  def decode(self, z, condition=None):
    check_condition(self, condition, conditional=True)
    return self.decoder(z, condition)

  def __call__(self, x, c):
    return self.decode(self.posterior(x, c).mean, c)


def conditional_exact_setup():
  """The conditional model with q = p(z|x, c), a batch with conditions, exact log p(x|c)."""
  _, params, batch, _ = exact_setup()
  rng = np.random.default_rng(1)
  v = rng.normal(size=(DIM_C, DIM_X))
  enc, dec = params["encoder"], params["decoder"]
  u = -v @ np.asarray(enc["w"])                   # posterior mean = (x - b - c V) @ enc_w
  params = {"encoder": {"base": enc, "u": jnp.asarray(u, jnp.float32)},
            "decoder": {"base": dec, "v": jnp.asarray(v, jnp.float32)}}
  c = rng.normal(size=(4, DIM_C))
  x = np.asarray(batch["image"]).reshape(4, DIM_X) + c @ v
  w, b = np.asarray(dec["w"]).T, np.asarray(dec["b"])
  cov = w @ w.T + NOISE_STD ** 2 * np.eye(DIM_X)
  log_px = np.array([stats.multivariate_normal(b + ci @ v, cov).logpdf(xi)
                     for xi, ci in zip(x, c)])
  batch = {"image": jnp.asarray(x.reshape(4, 1, 1, DIM_X), jnp.float32),
           "condition": jnp.asarray(c, jnp.float32)}
  return ConditionalLinearGaussian(), params, batch, log_px


def conditional_closed_form_elbo(params, batch):
  """E_q[log p(x|z, c)] - KL(q(z|x, c) || p(z)), exactly, mean over the batch."""
  x, c = batch["image"].reshape(-1, DIM_X), batch["condition"]
  enc, dec = params["encoder"], params["decoder"]
  shifted = {"image": (x - c @ dec["v"]).reshape(batch["image"].shape)}
  # q's mean at (x, c) equals the unconditional q's mean at x - c V when u = -V enc_w; in
  # general add the difference explicitly.
  extra = c @ enc["u"] + (c @ dec["v"]) @ enc["base"]["w"]
  flat = {"encoder": {**enc["base"], "b": enc["base"]["b"]}, "decoder": dec["base"]}
  if not np.allclose(np.asarray(extra), 0, atol=1e-5):
    raise ValueError("conditional_closed_form_elbo needs u = -V enc_w (the exact family)")
  return closed_form_elbo(flat, shifted)


# --- The two-layer twin: p(z_2) = N(0, I_2), p(z_1|z_2) = N(A z_2 + a, s_1^2 I_3),
# p(x|z_1) = N(W^T z_1 + b, s^2 I_6); q(z_1|x) q(z_2|z_1) = p(z_1|x) p(z_2|z_1), exactly.

DIM_Z2, NOISE_STD_1 = 2, 0.8


def two_layer_exact_setup():
  """(model, params, batch, log_px, joint): a ``HierarchicalVAE`` with linear links whose
  q(z|x) is the exact posterior p(z_1|x) p(z_2|z_1) (p(z_2|z_1, x) = p(z_2|z_1): x depends
  on z_2 only through z_1). A has orthogonal columns, so p(z_2|z_1) is diagonal, and W is
  chosen so that p(z_1|x) is diagonal too: its precision C^-1 + W W^T / s^2 = c I, with
  C = A A^T + s_1^2 I the prior covariance of z_1. ``joint`` = (mean, cov) of the prior
  over [z_1, z_2] (for scipy). log_px: exact, from x's Gaussian marginal."""
  from genjax.models.hierarchical import HierarchicalVAE  # pylint: disable=import-outside-toplevel
  rng = np.random.default_rng(1)
  a_cols, _ = np.linalg.qr(rng.normal(size=(DIM_Z, DIM_Z2)))
  big_a = a_cols * np.array([1.5, 0.7])                           # [3, 2]
  a = rng.normal(size=DIM_Z) * 0.5
  s1, s = NOISE_STD_1, NOISE_STD
  cov_z1 = big_a @ big_a.T + s1 ** 2 * np.eye(DIM_Z)
  c = 1.0 / s1 ** 2 + 2.0                                          # > the largest eigenvalue of C^-1
  target = s ** 2 * (c * np.eye(DIM_Z) - np.linalg.inv(cov_z1))    # = W W^T, positive definite
  eigval, eigvec = np.linalg.eigh(target)
  root = eigvec @ np.diag(np.sqrt(eigval)) @ eigvec.T
  q_x, _ = np.linalg.qr(rng.normal(size=(DIM_X, DIM_Z)))
  w = root @ q_x.T                                                 # [3, 6]: x = W^T z_1 + b
  b = rng.normal(size=DIM_X)
  post_cov = np.eye(DIM_Z) / c
  # Row form: E[z_1|x] = (x - b) W^T / s^2 P^-1 + a C^-1 P^-1.
  enc_w = w.T / s ** 2 @ post_cov
  enc_b = -b @ enc_w + a @ np.linalg.inv(cov_z1) @ post_cov
  prec_2 = np.eye(DIM_Z2) + big_a.T @ big_a / s1 ** 2               # diagonal
  q2_w = big_a / s1 ** 2 @ np.linalg.inv(prec_2)                    # [3, 2]
  q2 = {"w": np.concatenate([q2_w, np.zeros((DIM_Z, DIM_Z2))], 1),
        "b": np.concatenate([-a @ q2_w, np.log(np.diag(np.linalg.inv(prec_2)))])}
  p1 = {"w": np.concatenate([big_a.T, np.zeros((DIM_Z2, DIM_Z))], 1),
        "b": np.concatenate([a, np.full(DIM_Z, np.log(s1 ** 2))])}
  params = {"encoder": {"w": enc_w, "b": enc_b, "log_var": np.log(np.diag(post_cov))},
            "decoder": {"w": w, "b": b},
            "q_upper": {"link_0_layer_0_w": q2["w"], "link_0_layer_0_b": q2["b"]},
            "p_lower": {"link_0_layer_0_w": p1["w"], "link_0_layer_0_b": p1["b"]}}
  params = jax.tree.map(lambda v: jnp.asarray(v, jnp.float32), params)
  x = rng.normal(size=(4, DIM_X)) + b
  marginal = stats.multivariate_normal(b + a @ w, w.T @ cov_z1 @ w + s ** 2 * np.eye(DIM_X))
  joint_mean = np.concatenate([a, np.zeros(DIM_Z2)])
  joint_cov = np.block([[cov_z1, big_a], [big_a.T, np.eye(DIM_Z2)]])
  model = HierarchicalVAE(LinearEncoder(), LinearDecoder(), DIM_Z + DIM_Z2, (DIM_Z, DIM_Z2),
                          upper_hidden=())
  batch = {"image": jnp.asarray(x.reshape(4, 1, 1, DIM_X), jnp.float32)}
  return model, params, batch, marginal.logpdf(x), (joint_mean, joint_cov)
