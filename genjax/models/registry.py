"""Model families, and the priors and posteriors of the latent-variable models, by name,
with what each can do.

Each ``Family`` entry (``FAMILIES``: vae, cvae, m2, autoencoder, gan, vaegan, ...) is a
builder from a config (``from_config(config, image_shape, likelihood)``), the config fields
it reads, and its capabilities: a latent-variable model (posterior, prior, decode: the
ELBO family, importance-sampled log-likelihood, prior sampling), conditional on c, or
adversarial (a discriminator beside it).

Each ``Part`` entry says which config fields its builder reads (and as which keyword) and
its capabilities: whether KL(q || p) has a closed form, whether the density can be
evaluated at any z (what STL and DReG need: log q at stopped parameters), whether q
factorizes over latent dimensions (what free bits needs), and which other parts it
combines with. ``capabilities(prior, posterior, hierarchical)`` composes them for one
model; experiments and validation ask it instead of comparing names. A new prior or
posterior is one ``register_prior`` / ``register_posterior`` call (its builder in its
family module, e.g. ``genjax.models.vamp``, ``genjax.models.flows``).
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable, Mapping

from genjax import registries


@dataclasses.dataclass(frozen=True)
class Setting:
  """A setting a part's builder reads (experiments expose it as a config field of the same
  name, read only with this part): its meaning and allowed values (``check(value)`` ->
  None when fine, else what is expected)."""
  doc: str
  check: Callable[[Any], str | None]


def positive_integer(v: Any) -> str | None:
  if isinstance(v, bool) or not isinstance(v, int) or v < 1:
    return "expected an integer >= 1"


@dataclasses.dataclass(frozen=True)
class Part:
  """A prior p(z) or a posterior q(z|x) of the VAE family.

  Attributes:
    name: its registry name (``config.prior`` / ``config.posterior``).
    description: how an error names it, e.g. "the VampPrior (prior=vamp)".
    reads: config field -> builder keyword, the settings it reads (e.g. flow_steps).
    settings: config field -> ``Setting``: each read field's doc and allowed values.
    closed_form_kl: KL(q || p) has a closed form when both parts have one.
    density_anywhere: log q(z|x) can be evaluated at any z (STL, DReG); flows know it
      only at their own samples.
    factorized: q factorizes over latent dimensions (free bits).
    only_with: the names of the other kind it combines with (empty: all).
    no_kl_reason: why it has no closed-form KL, as a clause of an error message.
    build: ``(model, image_shape, latent_dim, hidden, output_channels, activation,
      **reads) -> VAE``; a prior's only when it changes the model (else the posterior's).
  """
  name: str
  description: str
  reads: Mapping[str, str] = dataclasses.field(default_factory=dict)
  settings: Mapping[str, Setting] = dataclasses.field(default_factory=dict)
  closed_form_kl: bool = True
  density_anywhere: bool = True
  factorized: bool = True
  only_with: tuple[str, ...] = ()
  no_kl_reason: str = ""
  build: Callable[..., Any] | None = None


PRIORS: dict[str, Part] = {}
POSTERIORS: dict[str, Part] = {}


def register_prior(part: Part) -> Part:
  return registries.add(PRIORS, part, "prior")


def register_posterior(part: Part) -> Part:
  return registries.add(POSTERIORS, part, "posterior")


def prior(name: str) -> Part:
  return registries.lookup(PRIORS, name, "prior=")


def posterior(name: str) -> Part:
  return registries.lookup(POSTERIORS, name, "posterior=")


def reading(field: str, registry: Mapping[str, Part]) -> tuple[str, ...]:
  """The names of the parts whose builder reads ``field``."""
  return tuple(n for n, p in registry.items() if field in p.reads)


# A hierarchy of stochastic layers z_1..z_L (models.hierarchical): its own chains of
# diagonal Gaussians both ways, so it takes these parts only.
HIERARCHY_PRIOR, HIERARCHY_POSTERIOR = "standard_normal", "diagonal"


@dataclasses.dataclass(frozen=True)
class Capabilities:
  """What one model (a prior, a posterior, with or without stochastic layers above z_1)
  can do, and how errors name it."""
  closed_form_kl: bool
  density_anywhere: bool    # log q(z|x) at any z: STL and DReG
  factorized: bool          # q factorizes over latent dimensions: free bits
  description: str          # e.g. "the VampPrior (prior=vamp)", "posterior=planar"
  kl_problem: str = ""      # why there is no closed-form KL, as a clause


def combines(prior_name: str, posterior_name: str, upper_latents: tuple[int, ...] = ()
             ) -> bool:
  """Whether the parts make a model: each part's ``only_with`` admits the other, and a
  hierarchy takes ``HIERARCHY_PRIOR`` and ``HIERARCHY_POSTERIOR``."""
  p, q = prior(prior_name), posterior(posterior_name)
  if upper_latents:
    return (p.name, q.name) == (HIERARCHY_PRIOR, HIERARCHY_POSTERIOR)
  return all(not part.only_with or other.name in part.only_with
             for part, other in ((p, q), (q, p)))


def capabilities(prior_name: str, posterior_name: str, upper_latents: tuple[int, ...] = ()
                 ) -> Capabilities:
  """The model's capabilities (of parts that ``combines`` admits)."""
  p, q = prior(prior_name), posterior(posterior_name)
  if upper_latents:
    layers = ",".join(str(d) for d in upper_latents)
    description = f"a hierarchy of stochastic layers (upper_latents={layers})"
    return Capabilities(False, True, False, description,
                        f"{description} has no closed-form KL")
  without_kl = [part for part in (p, q) if not part.closed_form_kl]
  return Capabilities(
      closed_form_kl=not without_kl, density_anywhere=q.density_anywhere,
      factorized=q.factorized, description=(q if p.closed_form_kl else p).description,
      kl_problem=(without_kl[0].no_kl_reason if without_kl else ""))


def of_config(config: Any) -> Capabilities:
  """``capabilities`` of a config's ``prior``, ``posterior`` and ``upper_latents``."""
  return capabilities(config.prior, config.posterior, tuple(config.upper_latents))


def builder_kwargs(config: Any) -> dict[str, Any]:
  """The builder keywords the config's prior and posterior read, from their fields."""
  parts = (prior(config.prior), posterior(config.posterior))
  return {keyword: getattr(config, field) for part in parts
          for field, keyword in part.reads.items()}



@dataclasses.dataclass(frozen=True)
class Family:
  """A model family.

  Attributes:
    name: its registry name.
    doc: what it is, one line.
    reads: the config fields ``from_config`` reads (besides those of its prior and
      posterior parts, ``builder_kwargs``).
    from_config: ``(config, image_shape, likelihood) -> module`` (a GAN: ``(generator,
      discriminator)``); ``likelihood`` sets the decoder's output channels (None: one
      per image channel).
    latent: implements the latent-variable protocol (genjax.models.protocol).
    conditional: its decoder (and encoder) take a condition c.
    adversarial: trained against a discriminator.
  """
  name: str
  doc: str
  reads: tuple[str, ...]
  from_config: Callable[..., Any]
  latent: bool = True
  conditional: bool = False
  adversarial: bool = False


FAMILIES: dict[str, Family] = {}


def register_family(family: Family) -> Family:
  return registries.add(FAMILIES, family, "model family")


def family(name: str) -> Family:
  return registries.lookup(FAMILIES, name, "model family ")
