"""Flax linen modules: encoders, decoders and the models built from them.

The latent-variable models (``VAE``, ``VampPriorVAE``, the richer posteriors of ``flows``:
``FullCovarianceVAE``, ``PlanarFlowVAE``, ``IAFVAE``; ``HierarchicalVAE``, stochastic layers
z_1..z_L; ``CVAE``, ``M2``; ``VAEGAN``, whose decoder is a GAN's generator) implement
``protocol`` (posterior, prior, decode, encoder_params); callers use its helpers.

Every convolution (the conv encoder, the conv decoder, the GAN, the ``VQVAE``; the
``PixelCNN``'s masked ones through ``layers.conv``) is ``layers.Conv`` /
``layers.ConvTranspose``: ``nn.Conv`` / ``nn.ConvTranspose``'s parameters and function,
computed as patch matrix products on CPU and natively elsewhere, chosen in one place,
``layers.implementation()`` (override: ``GENJAX_CONV=patches|native``).
"""

from __future__ import annotations

from typing import Any, Sequence

from genjax.models import registry
from genjax.models.autoencoder import Autoencoder
from genjax.models.builders import ACTIVATIONS, ARCHITECTURES, _check, build_decoder, build_encoder
from genjax.models.classifier import Classifier
from genjax.models.cvae import CVAE, M2
from genjax.models.decoders import ConvDecoder, MLPDecoder
from genjax.models.encoders import ConvEncoder, MLPEncoder
from genjax.models import flows
from genjax.models.flows import FullCovarianceVAE, IAFVAE, PlanarFlowVAE
from genjax.models import gan
from genjax.models.gan import Discriminator, Generator
from genjax.models.hierarchical import HierarchicalVAE
from genjax.models.vae import VAE
from genjax.models.vamp import VampPriorVAE
from genjax.models.vaegan import VAEGAN
from genjax.models.vqvae import VQVAE
from genjax.models.pixelcnn import PixelCNN

GAN_IMAGE_SIZES = ((28, 28), (32, 32))
PRIORS = tuple(registry.PRIORS)
POSTERIORS = tuple(registry.POSTERIORS)
FLOW_POSTERIORS = registry.reading("flow_steps", registry.POSTERIORS)   # read flow_steps


def build_vae(model: str, image_shape: Sequence[int], latent_dim: int,
              hidden: Sequence[int], output_channels: int, activation: str = "relu",
              prior: str = "standard_normal", num_pseudo_inputs: int = 500,
              posterior: str = "diagonal", flow_steps: int = 2,
              upper_latents: Sequence[int] = (), upper_hidden: Sequence[int] = (100, 100),
              **settings) -> VAE:
  """A VAE with MLP or conv encoder/decoder.

  ``hidden`` are the dense widths (the encoder's in order, the decoder's reversed);
  ``output_channels`` is the decoder's channels per pixel (see ``decoders``). ``prior``
  is one of ``PRIORS``: ``standard_normal`` (p(z) = N(0, I), ``VAE``) or ``vamp`` (the
  VampPrior over ``num_pseudo_inputs`` learned pseudo-inputs, ``VampPriorVAE``).
  ``posterior`` is one of ``POSTERIORS``: ``diagonal`` (``VAE``), ``full_covariance``
  (``FullCovarianceVAE``), ``planar`` or ``iaf`` (``flow_steps`` planar flows or IAF
  steps, ``PlanarFlowVAE`` / ``IAFVAE``; the IAF's context h(x) has max(16, 2 latent_dim)
  entries and its MADE layers twice that many units); a richer posterior takes the N(0, I)
  prior. ``upper_latents`` = (d_2, ..., d_L) adds stochastic layers above z_1 (of
  ``latent_dim`` entries), with ``upper_hidden`` dense widths between consecutive layers:
  ``HierarchicalVAE`` (the IWAE paper's two-layer model is latent_dim=100,
  upper_latents=(50,), hidden=(200, 200), upper_hidden=(100, 100), tanh); it takes the
  diagonal posterior and the N(0, I) top prior of that model. ``settings``: what a
  registered prior or posterior reads beyond these (its ``registry.Part.reads``).
  """
  if upper_latents:
    return _hierarchical_vae(model, image_shape, latent_dim, hidden, output_channels,
                             activation, prior, posterior, upper_latents, upper_hidden)
  p, q = registry.prior(prior), registry.posterior(posterior)
  if not registry.combines(prior, posterior):
    raise ValueError(f"posterior={posterior!r} takes prior='standard_normal' (got "
                     f"{prior!r}): the VampPrior is a mixture of diagonal posteriors")
  build = p.build or q.build   # a prior that changes the model builds it (the VampPrior)
  settings = {"num_pseudo_inputs": num_pseudo_inputs, "flow_steps": flow_steps, **settings}
  missing = [k for part in (p, q) for k in part.reads.values() if k not in settings]
  if missing:
    raise ValueError(f"prior={prior!r}, posterior={posterior!r} read {', '.join(missing)}: "
                     "pass it to build_vae")
  reads = {k: settings[k] for part in (p, q) for k in part.reads.values()}
  return build(model, image_shape, latent_dim, hidden, output_channels, activation, **reads)


def _hierarchical_vae(model: str, image_shape: Sequence[int], latent_dim: int,
                      hidden: Sequence[int], output_channels: int, activation: str,
                      prior: str, posterior: str, upper_latents: Sequence[int],
                      upper_hidden: Sequence[int]) -> HierarchicalVAE:
  """``build_vae`` with stochastic layers above z_1 (models.hierarchical)."""
  if not registry.combines(prior, posterior, tuple(upper_latents)):
    raise ValueError(f"upper_latents={tuple(upper_latents)} (a hierarchy of stochastic "
                     "layers) takes prior='standard_normal' and posterior='diagonal', its "
                     f"own chain of diagonal Gaussians (got prior={prior!r}, "
                     f"posterior={posterior!r})")
  if any(d < 1 for d in upper_latents) or any(w < 1 for w in upper_hidden):
    raise ValueError(f"upper_latents={tuple(upper_latents)} and upper_hidden="
                     f"{tuple(upper_hidden)} must be positive")
  _check(model, activation)
  dims = (latent_dim, *upper_latents)
  return HierarchicalVAE(build_encoder(model, latent_dim, hidden, activation),
                         build_decoder(model, image_shape, hidden, output_channels, activation),
                         sum(dims), tuple(dims), tuple(upper_hidden), activation)


def build_autoencoder(model: str, image_shape: Sequence[int], latent_dim: int,
                      hidden: Sequence[int], activation: str = "relu") -> Autoencoder:
  """A deterministic autoencoder with the VAE's architecture (one output channel per pixel)."""
  return Autoencoder(build_encoder(model, latent_dim, hidden, activation, stochastic=False),
                     build_decoder(model, image_shape, hidden, image_shape[-1], activation),
                     latent_dim)


def build_classifier(model: str, latent_dim: int, hidden: Sequence[int], num_classes: int,
                     activation: str = "relu", stochastic: bool = False) -> Classifier:
  """An encoder (Gaussian when ``stochastic``, to take a VAE's) with a linear head."""
  return Classifier(build_encoder(model, latent_dim, hidden, activation, stochastic),
                    num_classes)


def build_cvae(model: str, image_shape: Sequence[int], latent_dim: int, hidden: Sequence[int],
               output_channels: int, activation: str = "relu",
               condition_every_layer: bool = False) -> CVAE:
  """A conditional VAE: the VAE's architecture with the condition appended to the features
  (the decoder's first layer's, or with ``condition_every_layer`` every decoder layer's)."""
  return CVAE(build_encoder(model, latent_dim, hidden, activation),
              build_decoder(model, image_shape, hidden, output_channels, activation,
                            condition_every_layer), latent_dim)


def build_m2(model: str, image_shape: Sequence[int], latent_dim: int, hidden: Sequence[int],
             output_channels: int, num_classes: int, activation: str = "relu") -> M2:
  """M2 (Kingma et al. 2014): a conditional VAE plus a classifier q(y|x) of the same
  encoder architecture."""
  return M2(encoder=build_encoder(model, latent_dim, hidden, activation),
            decoder=build_decoder(model, image_shape, hidden, output_channels, activation),
            latent_dim=latent_dim,
            classifier=build_classifier(model, latent_dim, hidden, num_classes, activation),
            num_classes=num_classes)


def build_gan(image_shape: Sequence[int], latent_dim: int, width: int = 64,
              d_width: int | None = None, categories: int = 0
              ) -> tuple[Generator, Discriminator]:
  """A DCGAN ``(generator, discriminator)`` pair for (H, W, C) images, H x W in
  ``GAN_IMAGE_SIZES`` (any number of channels); ``width`` is the base channel count, the
  discriminator's ``d_width`` when given; ``categories`` the generator's discrete code
  (``models.gan``; 0: none)."""
  if len(image_shape) != 3 or tuple(image_shape[:2]) not in GAN_IMAGE_SIZES:
    sizes = " and ".join(f"{h}x{w}" for h, w in GAN_IMAGE_SIZES)
    raise ValueError(f"image_shape={tuple(image_shape)}: the GAN supports {sizes} images "
                     "(H, W, C), any number of channels")
  gan.check_categories(categories, latent_dim)
  return (Generator(tuple(image_shape), latent_dim, width, categories=categories),
          Discriminator(d_width or width))


def build_vaegan(image_shape: Sequence[int], latent_dim: int, hidden: Sequence[int],
                 width: int = 64) -> VAEGAN:
  """A VAE-GAN (Larsen et al. 2016): the conv VAE's encoder (dense widths ``hidden``), the
  DCGAN's generator as decoder and its discriminator (base width ``width``), for (H, W, C)
  images, H x W in ``GAN_IMAGE_SIZES``."""
  generator, discriminator = build_gan(image_shape, latent_dim, width)
  return VAEGAN(build_encoder("conv", latent_dim, hidden), generator, latent_dim,
                discriminator=discriminator)


# --- The families by name (registry.FAMILIES): each built from a config ---------------------


def _output_channels(image_shape: Sequence[int], likelihood: Any) -> int:
  return image_shape[-1] * (likelihood.params_per_channel if likelihood is not None else 1)


def _vae_from_config(config: Any, image_shape: Sequence[int], likelihood: Any = None) -> VAE:
  """``config.model`` / ``prior`` / ``posterior`` / ``upper_latents`` (their settings read
  only where the parts read them: ``registry.builder_kwargs``; ``upper_hidden`` only with
  stochastic layers above z_1)."""
  extra = registry.builder_kwargs(config)   # e.g. pseudo_inputs, flow_steps
  if config.upper_latents:
    extra.update(upper_latents=tuple(config.upper_latents),
                 upper_hidden=tuple(config.upper_hidden))
  return build_vae(config.model, image_shape, config.latent_dim, config.hidden,
                   _output_channels(image_shape, likelihood), config.activation,
                   prior=config.prior, posterior=config.posterior, **extra)


registry.register_family(registry.Family(
    "vae", "a VAE: encoder q(z|x), prior p(z), decoder p(x|z) (its prior and posterior "
    "from registry.PRIORS / POSTERIORS, stochastic layers with upper_latents)",
    ("model", "latent_dim", "hidden", "activation", "prior", "posterior", "upper_latents"),
    _vae_from_config))
registry.register_family(registry.Family(
    "cvae", "a conditional VAE, q(z|x, c) and p(x|z, c)",
    ("model", "latent_dim", "hidden", "activation", "condition_every_layer"),
    lambda config, image_shape, likelihood=None: build_cvae(
        config.model, image_shape, config.latent_dim, config.hidden,
        _output_channels(image_shape, likelihood), config.activation,
        config.condition_every_layer), conditional=True))
registry.register_family(registry.Family(
    "autoencoder", "a deterministic autoencoder with the VAE's architecture",
    ("model", "latent_dim", "hidden", "activation"),
    lambda config, image_shape, likelihood=None: build_autoencoder(
        config.model, image_shape, config.latent_dim, config.hidden, config.activation),
    latent=False))
registry.register_family(registry.Family(
    "gan", "a DCGAN generator and discriminator (Radford et al. 2016)",
    ("latent_dim", "gan_width", "gan_d_width", "gan_categories", "gan_norm"),
    lambda config, image_shape, likelihood=None: _gan_from_config(config, image_shape),
    latent=False, adversarial=True))
registry.register_family(registry.Family(
    "vaegan", "a VAE-GAN (Larsen et al. 2016): the DCGAN generator as decoder",
    ("latent_dim", "hidden", "gan_width"),
    lambda config, image_shape, likelihood=None: build_vaegan(
        image_shape, config.latent_dim, config.hidden, config.gan_width), adversarial=True))


registry.register_family(registry.Family(
    "m2", "M2 (Kingma et al. 2014): a VAE conditional on the label y with a classifier q(y|x); "
    "from_config also takes num_classes", ("model", "latent_dim", "hidden", "activation"),
    lambda config, image_shape, likelihood=None, num_classes=10: build_m2(
        config.model, image_shape, config.latent_dim, config.hidden,
        _output_channels(image_shape, likelihood), num_classes, config.activation),
    conditional=True))
registry.register_family(registry.Family(
    "vqvae", "a VQ-VAE (van den Oord et al. 2017): discrete codes on a grid of 1/4 the image",
    ("codebook_size", "code_dim", "vq_width"),
    lambda config, image_shape, likelihood=None: VQVAE(
        config.codebook_size, config.code_dim, config.vq_width, image_shape[-1]),
    latent=False))
registry.register_family(registry.Family(
    "pixelcnn", "a PixelCNN (van den Oord et al. 2016) over a grid of codebook_size "
    "categories: the VQ-VAE's prior", ("codebook_size", "prior_width", "prior_layers"),
    lambda config, image_shape=None, likelihood=None: PixelCNN(
        config.codebook_size, config.prior_width, config.prior_layers), latent=False))


def _gan_from_config(config: Any, image_shape: Sequence[int]) -> tuple[Generator, Discriminator]:
  generator, discriminator = build_gan(image_shape, config.latent_dim, config.gan_width,
                                       config.gan_d_width, config.gan_categories)
  return generator.clone(norm=config.gan_norm), discriminator


__all__ = ["ARCHITECTURES", "ACTIVATIONS", "Autoencoder", "CVAE", "Classifier", "ConvDecoder",
           "ConvEncoder", "Discriminator", "FLOW_POSTERIORS", "FullCovarianceVAE",
           "GAN_IMAGE_SIZES", "Generator", "IAFVAE", "M2", "MLPDecoder", "MLPEncoder",
           "POSTERIORS", "PRIORS", "PlanarFlowVAE", "VAE", "VAEGAN", "VampPriorVAE",
           "build_autoencoder", "build_classifier", "build_cvae", "build_decoder",
           "build_encoder", "build_gan", "build_m2", "build_vae", "build_vaegan",
           "PixelCNN", "VQVAE"]
