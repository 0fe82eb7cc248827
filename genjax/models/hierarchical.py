"""A VAE with a hierarchy of stochastic layers: the IWAE paper's two-layer model and deeper.

Burda, Grosse & Salakhutdinov 2016, Sec. 5: x - two deterministic layers of 200 - z_1 (100)
- two deterministic layers of 100 - z_2 (50), tanh units, with

  p(x, z) = p(z_2) p(z_1|z_2) p(x|z_1),     q(z|x) = q(z_1|x) q(z_2|z_1),

every conditional a diagonal Gaussian (p(x|z_1) the likelihood's). ``HierarchicalVAE`` is
that model for any number of layers ``latent_dims = (d_1, ..., d_L)``: the image encoder
and decoder are the one-layer VAE's (``hidden`` widths between x and z_1), the networks
between z_l and z_{l+1} (both directions) have ``upper_hidden`` widths. On the latent-
variable model protocol z is the concatenation [z_1, ..., z_L] (``latent_dim`` = sum d_l):
``posterior`` is ``distributions.HierarchicalPosterior``, ``prior`` is
``distributions.HierarchicalPrior`` (learned conditionals under an N(0, I) top), and
``decode`` reads z_1. No closed-form KL: the ELBO family trains it with a Monte Carlo KL
(``kl="mc"``); IWAE, STL and DReG and the importance-sampled log-likelihood work as for
one layer, since log q(z|x) is known at any z.
"""

from __future__ import annotations

from typing import ClassVar, Sequence

import flax.linen as nn
import jax

from genjax import distributions as D
from genjax.models.protocol import check_condition
from genjax.models.vae import VAE


class ChainWeights(nn.Module):
  """The weights of one ``distributions.GaussianMLP`` per link (in_dim -> out_dim) of a
  chain of stochastic layers: through ``hidden`` widths to a mean and a log-variance of
  out_dim each (``nn.Dense``'s initialisers: LeCun normal kernels, zero biases).
  Parameters ``link_{j}_layer_{i}_w`` / ``_b``."""
  links: tuple[tuple[int, int], ...]
  hidden: Sequence[int]

  @nn.compact
  def __call__(self) -> tuple[tuple[dict[str, jax.Array], ...], ...]:
    init_w, init_b = nn.initializers.lecun_normal(), nn.initializers.zeros
    weights = []
    for j, (in_dim, out_dim) in enumerate(self.links):
      widths = (in_dim, *self.hidden, 2 * out_dim)
      weights.append(tuple(
          {"w": self.param(f"link_{j}_layer_{i}_w", init_w, (a, b)),
           "b": self.param(f"link_{j}_layer_{i}_b", init_b, (b,))}
          for i, (a, b) in enumerate(zip(widths[:-1], widths[1:]))))
    return tuple(weights)


class HierarchicalVAE(VAE):
  """A VAE with stochastic layers z_1..z_L (``latent_dims``); see the module docstring.

  ``encoder`` gives q(z_1|x) (mean, log_var: [batch, d_1]); ``decoder`` maps z_1 to the
  parameters of p(x|z_1); ``latent_dim`` must be sum(latent_dims). The parameter entries
  ``q_upper`` (q(z_{l+1}|z_l)) and ``p_lower`` (p(z_l|z_{l+1})) hold the networks between
  layers; ``encoder_params`` = (encoder, q_upper), the inference network.
  """
  latent_dims: tuple[int, ...] = ()
  upper_hidden: tuple[int, ...] = (100, 100)
  activation: str = "tanh"
  encoder_params: ClassVar[tuple[str, ...]] = ("encoder", "q_upper")

  def setup(self):
    dims = tuple(self.latent_dims)
    if len(dims) < 2 or sum(dims) != self.latent_dim:
      raise ValueError(f"HierarchicalVAE: latent_dims={dims} needs >= 2 stochastic layers "
                       f"summing to latent_dim={self.latent_dim}")
    pairs = tuple(zip(dims[:-1], dims[1:]))
    self.q_upper = ChainWeights(pairs, tuple(self.upper_hidden))
    self.p_lower = ChainWeights(tuple((above, below) for below, above in pairs),
                                tuple(self.upper_hidden))

  def posterior(self, x: jax.Array,
                condition: jax.Array | None = None) -> D.HierarchicalPosterior:
    """q(z_1|x) q(z_2|z_1) ... as one distribution over [z_1, ..., z_L]."""
    check_condition(self, condition, conditional=False)
    return D.HierarchicalPosterior(
        D.DiagonalGaussian(*self.encoder(x)),
        tuple(D.GaussianMLP(w, self.activation) for w in self.q_upper()))

  def prior(self) -> D.HierarchicalPrior:
    """p(z_L) = N(0, I) and p(z_l|z_{l+1}) below it."""
    return D.HierarchicalPrior(
        tuple(D.GaussianMLP(w, self.activation) for w in self.p_lower()),
        self.latent_dims[-1])

  def decode(self, z: jax.Array, condition: jax.Array | None = None) -> jax.Array:
    """The parameters of p(x|z_1) from z = [z_1, ..., z_L]: [batch, H, W, C_out]."""
    check_condition(self, condition, conditional=False)
    return self.decoder(z[..., :self.latent_dims[0]])

  def __call__(self, x: jax.Array) -> jax.Array:
    """Reconstructs x from the posterior's mean pass (z_1 = E_q[z_1|x]). Also builds the
    prior's networks, so that ``init`` (which calls this) creates every parameter."""
    self.prior()
    return self.decode(self.posterior(x).mean)
