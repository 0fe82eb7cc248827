"""PyTorch eager references for ``bench/throughput.py``: genjax's networks and estimators,
written the way a PyTorch user would write them (NCHW, ``nn.Conv2d``, ``nn.ConvTranspose2d``).

Same functions as genjax's, layer for layer (``bench/throughput.py --check`` loads genjax's
initial parameters into these modules and compares outputs):

* ``MLPVAE``: ``models.build_vae("mlp", (28, 28, 1), latent, hidden, 1, activation)``:
  dense layers with the activation, Gaussian heads ``mean`` and ``log_var``, the mirrored
  decoder giving Bernoulli logits.
* ``ConvVAE``: ``models.build_vae("conv", (28, 28, 1), 32, (256,), 1)``: 3x3 stride-2
  "SAME" convolutions 32, 64 (XLA pads such a convolution of an even size by 0 before and
  1 after, which ``nn.Conv2d``'s symmetric padding cannot express, hence ``F.pad``), dense
  256, the heads; decoder dense 256, dense 7*7*64, 3x3 stride-2 transposed convolutions
  64 -> 32 -> 1 (XLA's "SAME" transposed convolution is PyTorch's with padding 0 cropped
  to 2H, its kernel flipped).
* ``Generator`` / ``Discriminator``: genjax's DCGAN (``models.build_gan``): dense to
  7x7x128, LayerNorm (over all 6272 features) + ReLU, 4x4 stride-2 transposed convolution
  to 64 channels, LayerNorm (over channels) + ReLU, 4x4 stride-2 transposed convolution to
  the image, sigmoid; D maps x to 2x - 1, two 4x4 stride-2 convolutions 64, 128 with leaky
  ReLU 0.2, dense to one logit. LayerNorm epsilon 1e-6 (Flax's).

Estimators (per example sums over pixels and latents, means over the batch):

* ``elbo_loss``: -ELBO with one reparameterized sample, Bernoulli log p(x|z), closed-form
  KL(N(mu, sigma^2) || N(0, I)) = 1/2 sum(mu^2 + sigma^2 - 1 - log sigma^2).
* ``iwae_loss``: -IWAE_K = -mean_batch log 1/K sum_k w_k, log w_k = log p(x|z_k) +
  log p(z_k) - log q(z_k|x) (Burda et al. 2016, Eq. 8).
* ``gan_step``: genjax's ``make_gan_train_step`` with the non-saturating loss and no R1:
  D's Adam step on softplus(-D(x)) + softplus(D(G(z))) with G(z) detached, then G's Adam
  step on softplus(-D(G(z'))) against the updated D, fresh z' (D's weights frozen there,
  so no gradient of D's weights is computed, as in JAX where G's step differentiates
  only G's parameters).

Never imported by genjax or its tests; needs the ``bench`` extra (``pip install -e .[bench]``).
"""

from __future__ import annotations

import math
from typing import Any, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

ACTIVATIONS = {"relu": torch.relu, "tanh": torch.tanh}
LOG_2PI = math.log(2 * math.pi)
LAYER_NORM_EPS = 1e-6      # flax.linen.LayerNorm's default
LEAKY_SLOPE = 0.2


def same_padding(size: int, kernel_size: int, stride: int) -> tuple[int, int]:
  """XLA's "SAME" padding (before, after) of one axis: output ceil(size / stride)."""
  out = -(-size // stride)
  total = max((out - 1) * stride + kernel_size - size, 0)
  return total // 2, total - total // 2


def bernoulli_log_prob(x: torch.Tensor, logits: torch.Tensor, event_dims: int) -> torch.Tensor:
  """log Bernoulli(x; sigmoid(logits)) summed over the last ``event_dims`` dims."""
  nll = F.binary_cross_entropy_with_logits(logits, x.expand_as(logits), reduction="none")
  return -nll.flatten(-event_dims).sum(-1)


class MLPVAE(nn.Module):
  """x: [batch, 784] -> (mean, log_var): [batch, latent]; z: [..., latent] -> logits [..., 784]."""

  def __init__(self, hidden: Sequence[int] = (512, 256), latent_dim: int = 32,
               activation: str = "relu", pixels: int = 784):
    super().__init__()
    widths = [pixels, *hidden]
    self.encoder = nn.ModuleList(nn.Linear(a, b) for a, b in zip(widths, widths[1:]))
    self.mean = nn.Linear(widths[-1], latent_dim)
    self.log_var = nn.Linear(widths[-1], latent_dim)
    widths = [latent_dim, *hidden[::-1], pixels]
    self.decoder = nn.ModuleList(nn.Linear(a, b) for a, b in zip(widths, widths[1:]))
    self.act = ACTIVATIONS[activation]
    self.event_dims = 1

  def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    h = x
    for layer in self.encoder:
      h = self.act(layer(h))
    return self.mean(h), self.log_var(h)

  def decode(self, z: torch.Tensor) -> torch.Tensor:
    h = z
    for layer in self.decoder[:-1]:
      h = self.act(layer(h))
    return self.decoder[-1](h)


class ConvVAE(nn.Module):
  """x: [batch, 1, 28, 28] -> (mean, log_var); z: [batch, latent] -> logits [batch, 1, 28, 28]."""

  def __init__(self, latent_dim: int = 32, hidden: Sequence[int] = (256,),
               features: Sequence[int] = (32, 64), image_shape: Sequence[int] = (1, 28, 28)):
    super().__init__()
    channels, height, width = image_shape
    chans = [channels, *features]
    self.convs = nn.ModuleList(nn.Conv2d(a, b, 3, 2) for a, b in zip(chans, chans[1:]))
    self.pads, size = [], height
    for _ in features:
      before, after = same_padding(size, 3, 2)
      self.pads.append((before, after, before, after))
      size = -(-size // 2)
    self.map_shape = (features[-1], size, size)
    widths = [features[-1] * size * size, *hidden]
    self.enc_dense = nn.ModuleList(nn.Linear(a, b) for a, b in zip(widths, widths[1:]))
    self.mean = nn.Linear(widths[-1], latent_dim)
    self.log_var = nn.Linear(widths[-1], latent_dim)
    widths = [latent_dim, *hidden[::-1], features[-1] * size * size]
    self.dec_dense = nn.ModuleList(nn.Linear(a, b) for a, b in zip(widths, widths[1:]))
    chans = [*features[::-1], channels]
    self.deconvs = nn.ModuleList(nn.ConvTranspose2d(a, b, 3, 2) for a, b in zip(chans, chans[1:]))
    self.event_dims = 3

  def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    h = x
    for conv, pad in zip(self.convs, self.pads):
      h = torch.relu(conv(F.pad(h, pad)))
    h = h.flatten(1)
    for layer in self.enc_dense:
      h = torch.relu(layer(h))
    return self.mean(h), self.log_var(h)

  def decode(self, z: torch.Tensor) -> torch.Tensor:
    h = z
    for layer in self.dec_dense:
      h = torch.relu(layer(h))
    h = h.view(-1, *self.map_shape)
    for i, deconv in enumerate(self.deconvs):
      size = 2 * h.shape[-1]
      h = deconv(h)[..., :size, :size]    # XLA's "SAME": PyTorch's padding 0, cropped
      if i < len(self.deconvs) - 1:
        h = torch.relu(h)
    return h


class Generator(nn.Module):
  """z: [batch, latent] -> images [batch, C, H, W] in [0, 1]."""

  def __init__(self, latent_dim: int = 64, width: int = 64,
               image_shape: Sequence[int] = (1, 28, 28)):
    super().__init__()
    channels, height, w = image_shape
    self.map_shape = (2 * width, height // 4, w // 4)
    features = int(np.prod(self.map_shape))
    self.dense = nn.Linear(latent_dim, features)
    self.norm0 = nn.LayerNorm(features, eps=LAYER_NORM_EPS)
    self.up0 = nn.ConvTranspose2d(2 * width, width, 4, 2, padding=1)
    self.norm1 = nn.LayerNorm(width, eps=LAYER_NORM_EPS)
    self.up1 = nn.ConvTranspose2d(width, channels, 4, 2, padding=1)

  def forward(self, z: torch.Tensor) -> torch.Tensor:
    h = torch.relu(self.norm0(self.dense(z))).view(-1, *self.map_shape)
    h = self.up0(h)
    h = torch.relu(self.norm1(h.permute(0, 2, 3, 1))).permute(0, 3, 1, 2)   # over channels
    return torch.sigmoid(self.up1(h))


class Discriminator(nn.Module):
  """x: [batch, C, H, W] in [0, 1] -> logits [batch]."""

  def __init__(self, width: int = 64, image_shape: Sequence[int] = (1, 28, 28)):
    super().__init__()
    channels, height, w = image_shape
    self.conv0 = nn.Conv2d(channels, width, 4, 2, padding=1)
    self.conv1 = nn.Conv2d(width, 2 * width, 4, 2, padding=1)
    self.map_shape = (2 * width, height // 4, w // 4)
    self.dense = nn.Linear(int(np.prod(self.map_shape)), 1)

  def forward(self, x: torch.Tensor) -> torch.Tensor:
    h = F.leaky_relu(self.conv0(2.0 * x - 1.0), LEAKY_SLOPE)
    h = F.leaky_relu(self.conv1(h), LEAKY_SLOPE)
    return self.dense(h.flatten(1)).squeeze(-1)


def elbo_terms(model: nn.Module, x: torch.Tensor, eps: torch.Tensor
               ) -> tuple[torch.Tensor, torch.Tensor]:
  """(log p(x|z), KL(q(z|x) || N(0, I))), each [batch], at z = mean + sigma * eps."""
  mean, log_var = model.encode(x)
  z = mean + torch.exp(0.5 * log_var) * eps
  log_px = bernoulli_log_prob(x, model.decode(z), model.event_dims)
  kl = 0.5 * (mean.square() + log_var.exp() - 1.0 - log_var).sum(-1)
  return log_px, kl


def elbo_loss(model: nn.Module, x: torch.Tensor, latent_dim: int,
              generator: torch.Generator) -> torch.Tensor:
  """-ELBO, mean over the batch (one sample, closed-form KL)."""
  eps = torch.randn(x.shape[0], latent_dim, generator=generator, device=generator.device)
  log_px, kl = elbo_terms(model, x, eps)
  return (kl - log_px).mean()


def iwae_log_weights(model: nn.Module, x: torch.Tensor, eps: torch.Tensor) -> torch.Tensor:
  """log w_k = log p(x|z_k) + log p(z_k) - log q(z_k|x): [K, batch], z_k = mean + sigma eps_k."""
  mean, log_var = model.encode(x)
  std = torch.exp(0.5 * log_var)
  z = mean + std * eps                                              # [K, batch, latent]
  log_px = bernoulli_log_prob(x, model.decode(z), model.event_dims)
  log_pz = -0.5 * (z.square() + LOG_2PI).sum(-1)
  log_q = -0.5 * (((z - mean) / std).square() + log_var + LOG_2PI).sum(-1)
  return log_px + log_pz - log_q


def iwae_loss(model: nn.Module, x: torch.Tensor, latent_dim: int, num_samples: int,
              generator: torch.Generator) -> torch.Tensor:
  """-IWAE_K, mean over the batch."""
  eps = torch.randn(num_samples, x.shape[0], latent_dim, generator=generator,
                    device=generator.device)
  log_w = iwae_log_weights(model, x, eps)
  return -(torch.logsumexp(log_w, 0) - math.log(num_samples)).mean()


def vae_step(model: nn.Module, optimizer: torch.optim.Optimizer, loss_fn, x: torch.Tensor
             ) -> torch.Tensor:
  """One Adam step on ``loss_fn(model, x)``; returns the detached loss."""
  loss = loss_fn(model, x)
  optimizer.zero_grad(set_to_none=True)
  loss.backward()
  optimizer.step()
  return loss.detach()


def gan_step(g: Generator, d: Discriminator, g_opt: torch.optim.Optimizer,
             d_opt: torch.optim.Optimizer, real: torch.Tensor, latent_dim: int,
             generator: torch.Generator) -> torch.Tensor:
  """D's step, then G's against the updated D (non-saturating); returns d_loss + g_loss."""
  z_d = torch.randn(real.shape[0], latent_dim, generator=generator, device=generator.device)
  z_g = torch.randn(real.shape[0], latent_dim, generator=generator, device=generator.device)
  with torch.no_grad():
    fake = g(z_d)
  d_loss = F.softplus(-d(real)).mean() + F.softplus(d(fake)).mean()
  d_opt.zero_grad(set_to_none=True)
  d_loss.backward()
  d_opt.step()
  d.requires_grad_(False)
  g_loss = F.softplus(-d(g(z_g))).mean()
  g_opt.zero_grad(set_to_none=True)
  g_loss.backward()
  g_opt.step()
  d.requires_grad_(True)
  return d_loss.detach() + g_loss.detach()


# Loading genjax (Flax, NHWC) parameters, for the equivalence check.

def _set(param: torch.Tensor, value: np.ndarray) -> None:
  value = torch.from_numpy(np.ascontiguousarray(value, np.float32))
  if param.shape != value.shape:
    raise ValueError(f"parameter of shape {tuple(param.shape)} given {tuple(value.shape)}")
  with torch.no_grad():
    param.copy_(value)


def _dense(layer: nn.Linear, p: dict, in_map: Sequence[int] | None = None,
           out_map: Sequence[int] | None = None) -> None:
  """A Flax Dense into ``layer``; ``in_map`` / ``out_map`` (H, W, C) reorder an NHWC-flattened
  input / output to PyTorch's NCHW flattening."""
  kernel, bias = np.asarray(p["kernel"]), np.asarray(p["bias"])
  if in_map is not None:
    kernel = kernel.reshape(*in_map, -1).transpose(2, 0, 1, 3).reshape(kernel.shape)
  if out_map is not None:
    kernel = kernel.reshape(-1, *out_map).transpose(0, 3, 1, 2).reshape(kernel.shape)
    bias = bias.reshape(out_map).transpose(2, 0, 1).reshape(-1)
  _set(layer.weight, kernel.T)
  _set(layer.bias, bias)


def _conv(layer: nn.Conv2d, p: dict) -> None:
  _set(layer.weight, np.asarray(p["kernel"]).transpose(3, 2, 0, 1))   # HWIO -> OIHW
  _set(layer.bias, p["bias"])


def _conv_transpose(layer: nn.ConvTranspose2d, p: dict) -> None:
  # lax.conv_transpose correlates with the kernel as is; PyTorch's adjoint flips it.
  _set(layer.weight, np.asarray(p["kernel"])[::-1, ::-1].transpose(2, 3, 0, 1))
  _set(layer.bias, p["bias"])


def load_vae(model: nn.Module, params: Any) -> None:
  """genjax ``build_vae`` parameters (mlp or conv) into ``MLPVAE`` / ``ConvVAE``."""
  enc, dec = params["encoder"], params["decoder"]
  if isinstance(model, MLPVAE):
    for i, layer in enumerate(model.encoder):
      _dense(layer, enc[f"Dense_{i}"])
    for i, layer in enumerate(model.decoder):
      _dense(layer, dec[f"Dense_{i}"])
  else:
    c, h, w = model.map_shape
    for i, layer in enumerate(model.convs):
      _conv(layer, enc[f"Conv_{i}"])
    for i, layer in enumerate(model.enc_dense):
      _dense(layer, enc[f"Dense_{i}"], in_map=(h, w, c) if i == 0 else None)
    last = len(model.dec_dense) - 1
    for i, layer in enumerate(model.dec_dense):
      _dense(layer, dec[f"Dense_{i}"], out_map=(h, w, c) if i == last else None)
    for i, layer in enumerate(model.deconvs):
      _conv_transpose(layer, dec[f"ConvTranspose_{i}"])
  _dense(model.mean, enc["mean"])
  _dense(model.log_var, enc["log_var"])


def load_gan(g: Generator, d: Discriminator, g_params: Any, d_params: Any) -> None:
  """genjax ``build_gan`` parameters into ``Generator`` / ``Discriminator``."""
  c, h, w = g.map_shape
  _dense(g.dense, g_params["Dense_0"], out_map=(h, w, c))
  norm = g_params["LayerNorm_0"]
  _set(g.norm0.weight, np.asarray(norm["scale"]).reshape(h, w, c).transpose(2, 0, 1).reshape(-1))
  _set(g.norm0.bias, np.asarray(norm["bias"]).reshape(h, w, c).transpose(2, 0, 1).reshape(-1))
  _conv_transpose(g.up0, g_params["ConvTranspose2x_0"])
  _set(g.norm1.weight, g_params["LayerNorm_1"]["scale"])
  _set(g.norm1.bias, g_params["LayerNorm_1"]["bias"])
  _conv_transpose(g.up1, g_params["ConvTranspose2x_1"])
  _conv(d.conv0, d_params["Conv_0"])
  _conv(d.conv1, d_params["Conv_1"])
  c, h, w = d.map_shape
  _dense(d.dense, d_params["Dense_0"], in_map=(h, w, c))
