"""Train throughput of genjax's real training path against PyTorch eager on the same networks.

genjax: the model from ``genjax.models``, the loss from ``genjax.losses.elbo``
(``parse_variant`` + ``make_loss``) or the GAN step from ``genjax.training.gan_step``, the
step from ``genjax.training.step.make_train_step``, data preprocessed by
``experiments.framework.runner.make_preprocess`` and trained by ``genjax.training.loop.fit`` in fused
chunks of ``--steps`` steps (one chunk is one measurement, timed by ``fit`` itself: its
``examples_per_s``). PyTorch: the same network and estimator in eager mode
(``bench/torch_models.py``), the same batch size, per-epoch permutation, per-batch dynamic
binarization and optimizer, timed over ``--steps`` steps. Both train on the same images
(``--data_dir``/mnist.npz, else ``sources.synthetic``), held in memory / on the device.

Workloads (``--workloads``, comma-separated):
  mlp_b128   VAE 784-512-256-32 ReLU (train_vae's default), ELBO, Adam 1e-3, batch 128
  mlp_b1024  the same at batch 1024
  conv_vae   models.build_vae("conv", (28, 28, 1), 32, (256,), 1), ELBO, batch 128
  iwae_k50   IWAE K=50, 784-200-200-50 tanh, Adam 1e-3, batch 100 (IWAE paper, Table 1)
  dcgan      models.build_gan((28, 28, 1), 64, 64), non-saturating, D then G, two Adams
             2e-4 (b1 0.5), grey levels, batch 128 (train_gan's default until issue 17;
             torch_dcgan_ref.py's network)

Protocol, in one process: a warm-up round (genjax: setup, compile and the first chunk;
PyTorch: setup and one measurement), then ``--rounds`` rounds; each round measures every
workload with genjax, then PyTorch (genjax, torch, genjax, torch, ...), so load from
elsewhere hits both. Reported: min and median examples/s over rounds; achieved GFLOP/s
(analytic training FLOPs per example, below, times examples/s) and its share of the
machine's float32 matmul ceiling (best of a few 2048^3 matrix products, jnp and torch,
measured before and after the rounds); genjax's compile seconds (every JAX trace, lowering
and XLA compile between the start of the workload's setup and its first step, from
``jax.monitoring`` time spans) and both contenders' time to first step (wall time from
building the model to one step done; genjax's first chunk minus the other steps of it at
the steady rate).

FLOP count (multiply-adds x 2, per example, useful work only): a dense layer i -> o is i*o
MACs; a convolution k x k, C -> F, H' x W' outputs is H'W'k^2 C F; a transposed one from an
H x W input is HWk^2 C F (zeros skipped). Training multiplies a layer's forward MACs by 3
(forward, input gradient, weight gradient), by 2 when its input gradient is not needed (the
first layer of a network fed data or noise) or its weights are not trained (D inside G's
step), by 1 for a forward without gradient (G inside D's step). IWAE's decoder counts K
times. Elementwise work (activations, sampling, the loss, Adam) is not counted.

  python bench/throughput.py [--workloads=mlp_b128,mlp_b1024,conv_vae,iwae_k50,dcgan]
      [--rounds=3] [--steps=0 (per-workload defaults)] [--threads=CORES] [--out=FILE]
      [--torch_device=cuda|cpu (default: cuda when there is one)]
      [--precision=default|tf32|float32 (GPU float32 products; see set_precision)]

On a GPU both run there: genjax on JAX's default device (its convolutions XLA's native
ones, ``genjax.models.layers.implementation``), PyTorch on ``--torch_device``.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any, Callable, Iterator

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
import optax  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

from machine import cpu_name  # noqa: E402
import torch_models as tm  # noqa: E402
from experiments.framework import runner  # noqa: E402
from experiments.train_gan import ADAM_BETAS as GAN_ADAM_BETAS  # noqa: E402
from genjax import likelihoods, models  # noqa: E402
from genjax.data import sources, transforms  # noqa: E402
from genjax.losses import elbo  # noqa: E402
from genjax.losses import gan as gan_losses  # noqa: E402
from genjax.models import layers, protocol  # noqa: E402
from genjax.training import gan_step, loop, parallel  # noqa: E402
from genjax.training import state as train_state  # noqa: E402
from genjax.training import step as train_step  # noqa: E402

IMAGE_SHAPE = (28, 28, 1)
PIXELS = 784
EPOCHS = 10 ** 6          # fit's generator is stopped by the rounds, never by the epochs
COMPILE_EVENTS = ("/jax/core/compile/jaxpr_trace_duration",
                  "/jax/core/compile/jaxpr_to_mlir_module_duration",
                  "/jax/core/compile/backend_compile_duration")


@dataclasses.dataclass(frozen=True)
class Workload:
  """One network + estimator + batch size. ``arch`` mlp / conv (VAE) or gan; ``objective``
  a genjax variant string (VAE); ``steps`` the default steps per measurement."""
  name: str
  arch: str
  batch: int
  steps: int
  hidden: tuple[int, ...] = ()
  latent: int = 32
  activation: str = "relu"
  objective: str = "elbo"
  learning_rate: float = 1e-3
  preprocess: str = "dynamic"
  width: int = 64

  @property
  def num_samples(self) -> int:
    return elbo.parse_variant(self.objective).num_samples

  def describe(self) -> str:
    if self.arch == "gan":
      return f"DCGAN z{self.latent} width {self.width}"
    if self.arch == "conv":
      return f"conv VAE 32-64-{'-'.join(map(str, self.hidden))}-{self.latent}"
    net = "-".join(map(str, (PIXELS, *self.hidden, self.latent)))
    return f"{self.objective} {net} {self.activation}"


WORKLOADS = {w.name: w for w in (
    Workload("mlp_b128", "mlp", 128, 400, (512, 256)),
    Workload("mlp_b1024", "mlp", 1024, 50, (512, 256)),
    Workload("conv_vae", "conv", 128, 60, (256,)),
    Workload("iwae_k50", "mlp", 100, 30, (200, 200), 50, "tanh", "iwae=50"),
    Workload("dcgan", "gan", 128, 20, latent=64, learning_rate=2e-4, preprocess="continuous"),
)}


# ---------------------------------------------------------------- FLOPs

def dense(i: int, o: int) -> int:
  return i * o


def conv(out_hw: int, k: int, c: int, f: int) -> int:
  return out_hw * out_hw * k * k * c * f


def conv_t(in_hw: int, k: int, c: int, f: int) -> int:
  return in_hw * in_hw * k * k * c * f


def train_flops_per_example(w: Workload) -> float:
  """Useful training FLOPs per example (see the module docstring for the rule)."""
  def trained(macs: list[int]) -> int:   # first layer fed data/noise: 2x, others 3x
    return 2 * macs[0] + 3 * sum(macs[1:])

  if w.arch == "gan":
    s, c = IMAGE_SHAPE[0] // 4, 2 * w.width
    gen = [dense(w.latent, s * s * c), conv_t(s, 4, c, w.width), conv_t(2 * s, 4, w.width, 1)]
    disc = [conv(2 * s, 4, 1, w.width), conv(s, 4, w.width, c), dense(s * s * c, 1)]
    macs = sum(gen) + 2 * trained(disc) + trained(gen) + 2 * sum(disc)
    return 2.0 * macs
  if w.arch == "conv":
    encoder = [conv(14, 3, 1, 32), conv(7, 3, 32, 64), dense(7 * 7 * 64, w.hidden[0]),
               2 * dense(w.hidden[0], w.latent)]
    decoder = [dense(w.latent, w.hidden[0]), dense(w.hidden[0], 7 * 7 * 64),
               conv_t(7, 3, 64, 32), conv_t(14, 3, 32, 1)]
  else:
    widths = (PIXELS, *w.hidden)
    encoder = [dense(a, b) for a, b in zip(widths, widths[1:])] + [2 * dense(widths[-1], w.latent)]
    widths = (w.latent, *w.hidden[::-1], PIXELS)
    decoder = [dense(a, b) for a, b in zip(widths, widths[1:])]
  return 2.0 * (trained(encoder) + 3 * w.num_samples * sum(decoder))


# ---------------------------------------------------------------- genjax

def build_genjax(w: Workload, seed: int) -> tuple[Any, Callable, dict]:
  """(state, step, extra) as the experiments build them (runner.fit, train_gan.run); extra
  holds the initial parameters (and the VAE model) and the data key."""
  placement = parallel.make_placement("none")
  if w.arch == "gan":
    keys = runner.streams(seed, "generator", "discriminator", "state", "data")
    generator, discriminator = models.build_gan(IMAGE_SHAPE, w.latent, w.width)
    g_params = jax.jit(generator.init)(keys["generator"], jnp.zeros((1, w.latent)))["params"]
    d_params = jax.jit(discriminator.init)(keys["discriminator"],
                                           jnp.zeros((1, *IMAGE_SHAPE)))["params"]
    g_opt = optax.adam(w.learning_rate, *GAN_ADAM_BETAS)
    d_opt = optax.adam(w.learning_rate, *GAN_ADAM_BETAS)
    state = gan_step.create_gan_train_state(g_params, d_params, g_opt, d_opt, keys["state"])
    step = gan_step.make_gan_train_step(generator, discriminator, g_opt, d_opt,
                                        "non_saturating", 0.0, w.latent,
                                        axis_name=placement.axis_name)
    return state, step, {"generator": g_params, "discriminator": d_params, "data": keys["data"]}
  keys = runner.streams(seed, "init", "state", "data")
  model = models.build_vae(w.arch, IMAGE_SHAPE, w.latent, w.hidden, 1, w.activation)
  loss_fn = elbo.make_loss(model, likelihoods.make_likelihood("bernoulli"),
                           elbo.parse_variant(w.objective))
  params = model.init(keys["init"], jnp.zeros((1, *IMAGE_SHAPE)))["params"]
  optimizer = optax.adam(w.learning_rate)
  state = train_state.create_train_state(params, optimizer, keys["state"])
  step = train_step.make_train_step(loss_fn, optimizer, axis_name=placement.axis_name)
  return state, step, {"model": model, "params": params, "data": keys["data"]}


def genjax_measurements(w: Workload, images: np.ndarray, steps: int, seed: int,
                        compile_spans: list) -> Iterator[dict]:
  """Yields the warm-up (setup, compile, first chunk), then one dict per fused chunk."""
  compile_spans.clear()
  tic = time.perf_counter()
  state, step, extra = build_genjax(w, seed)
  chunks = loop.fit(state, step, {"image": images}, batch_size=w.batch, num_epochs=EPOCHS,
                    data_rng=extra["data"], preprocess=runner.make_preprocess(w.preprocess),
                    steps_per_chunk=steps)
  _, log = next(chunks)
  yield {"to_first_chunk_s": time.perf_counter() - tic, "first_chunk_s": log["seconds"],
         "compile_s": union_seconds(compile_spans), "loss": log["loss"]}
  for _, log in chunks:
    yield {"examples_per_s": log["examples_per_s"], "seconds": log["seconds"],
           "loss": log["loss"]}


def union_seconds(spans: list[tuple[float, float]]) -> float:
  """Length of the union of [start, end] intervals (nested traces counted once)."""
  total, end = 0.0, -float("inf")
  for s, e in sorted(spans):
    if e > end:
      total += e - max(s, end)
      end = e
  return total


# ---------------------------------------------------------------- PyTorch

def torch_batches(data: torch.Tensor, batch: int, binarize: bool,
                  generator: torch.Generator) -> Iterator[torch.Tensor]:
  """Batches of a new permutation each epoch (remainder dropped), Bernoulli-binarized, all
  on ``data``'s device (the generator's)."""
  steps_per_epoch = len(data) // batch
  while True:
    perm = torch.randperm(len(data), generator=generator, device=data.device)
    for i in range(steps_per_epoch):
      x = data.index_select(0, perm[i * batch:(i + 1) * batch])
      yield torch.bernoulli(x, generator=generator) if binarize else x


def build_torch(w: Workload, generator: torch.Generator) -> Callable[[torch.Tensor], torch.Tensor]:
  """The PyTorch step ``x -> detached loss`` of ``w`` (models initialized by PyTorch, then
  moved to the generator's device)."""
  device = generator.device
  if w.arch == "gan":
    g, d = tm.Generator(w.latent, w.width).to(device), tm.Discriminator(w.width).to(device)
    g_opt = torch.optim.Adam(g.parameters(), lr=w.learning_rate, betas=GAN_ADAM_BETAS)
    d_opt = torch.optim.Adam(d.parameters(), lr=w.learning_rate, betas=GAN_ADAM_BETAS)
    return lambda x: tm.gan_step(g, d, g_opt, d_opt, x, w.latent, generator)
  model = tm.MLPVAE(w.hidden, w.latent, w.activation) if w.arch == "mlp" else tm.ConvVAE(
      w.latent, w.hidden)
  model = model.to(device)
  optimizer = torch.optim.Adam(model.parameters(), lr=w.learning_rate)
  k = w.num_samples
  if k > 1:
    loss_fn = lambda m, x: tm.iwae_loss(m, x, w.latent, k, generator)
  else:
    loss_fn = lambda m, x: tm.elbo_loss(m, x, w.latent, generator)
  return lambda x: tm.vae_step(model, optimizer, loss_fn, x)


def torch_images(w: Workload, images: np.ndarray, device: str = "cpu") -> torch.Tensor:
  """[N, 784] for the MLPs, [N, 1, 28, 28] (NCHW) for the conv nets, on ``device``."""
  x = torch.from_numpy(np.ascontiguousarray(images.transpose(0, 3, 1, 2)))
  return (x.reshape(len(x), PIXELS) if w.arch == "mlp" else x).to(device)


def torch_measurements(w: Workload, images: np.ndarray, steps: int, seed: int,
                       device: str = "cpu") -> Iterator[dict]:
  """Yields the warm-up (setup + ``steps`` steps, the first timed), then one dict per
  ``steps`` steps. Every measurement ends reading the loss (``.item()``), which waits for
  the device's queue, so a GPU's asynchronous steps are inside the time."""
  data = torch_images(w, images, device)
  tic = time.perf_counter()
  generator = torch.Generator(device=device).manual_seed(seed)
  step = build_torch(w, generator)
  batches = torch_batches(data, w.batch, w.preprocess == "dynamic", generator)
  loss = step(next(batches)).item()
  warm = {"first_step_s": time.perf_counter() - tic}
  for _ in range(steps - 1):
    loss = step(next(batches))
  yield {**warm, "loss": float(loss)}
  while True:
    tic = time.perf_counter()
    total = torch.zeros((), device=device)
    for _ in range(steps):
      total += step(next(batches))
    total = total.item()
    dt = time.perf_counter() - tic
    yield {"examples_per_s": steps * w.batch / dt, "seconds": dt, "loss": total / steps}


# ---------------------------------------------------------------- same function?

def check_same_function(w: Workload, images: np.ndarray, seed: int = 0) -> float:
  """Loads genjax's initial parameters into the PyTorch network and returns the largest
  difference of their outputs on 16 examples (relative to the largest output): the
  per-example log-likelihood and KL (ELBO), the log-weights (IWAE), G(z), D(x), D(G(z))
  and both GAN losses. A ValueError above 1e-4."""
  with jax.default_matmul_precision("float32"):   # full float32 products on a GPU too
    return _check_same_function(w, images, seed)


def _check_same_function(w: Workload, images: np.ndarray, seed: int) -> float:
  rng = np.random.default_rng(seed)
  x = (rng.random((16, *IMAGE_SHAPE)) < images[:16]).astype(np.float32)
  _, _, extra = build_genjax(w, seed)
  pairs = []
  if w.arch == "gan":
    g, d = models.build_gan(IMAGE_SHAPE, w.latent, w.width)
    tg, td = tm.Generator(w.latent, w.width), tm.Discriminator(w.width)
    tm.load_gan(tg, td, jax.device_get(extra["generator"]), jax.device_get(extra["discriminator"]))
    z = rng.normal(size=(16, w.latent)).astype(np.float32)
    fake = g.apply({"params": extra["generator"]}, z)
    real_logits = d.apply({"params": extra["discriminator"]}, x)
    fake_logits = d.apply({"params": extra["discriminator"]}, fake)
    with torch.no_grad():
      t_fake = tg(torch.from_numpy(z))
      t_real_logits, t_fake_logits = td(torch.from_numpy(x.transpose(0, 3, 1, 2))), td(t_fake)
      t_d = F.softplus(-t_real_logits).mean() + F.softplus(t_fake_logits).mean()
      t_g = F.softplus(-t_fake_logits).mean()
    pairs = [(fake, t_fake.numpy().transpose(0, 2, 3, 1)), (real_logits, t_real_logits),
             (fake_logits, t_fake_logits),
             (gan_losses.gan_discriminator_loss(real_logits, fake_logits, "non_saturating"), t_d),
             (gan_losses.gan_generator_loss(fake_logits, "non_saturating"), t_g)]
  else:
    model, params = extra["model"], extra["params"]
    lik = likelihoods.make_likelihood("bernoulli")
    tmodel = tm.MLPVAE(w.hidden, w.latent, w.activation) if w.arch == "mlp" else tm.ConvVAE(
        w.latent, w.hidden)
    tm.load_vae(tmodel, jax.device_get(params))
    k = w.num_samples
    eps = rng.normal(size=(k, 16, w.latent)).astype(np.float32)
    q, p = protocol.posterior(model, params, x), protocol.prior(model, params)
    z = q.mean + jnp.exp(0.5 * q.log_var) * eps                         # [K, 16, latent]
    out = protocol.decode(model, params, z.reshape(k * 16, -1)).reshape(k, 16, *IMAGE_SHAPE)
    log_px = lik.log_prob(x[None], out)                                 # [K, 16]
    tx = torch.from_numpy(x.transpose(0, 3, 1, 2))
    tx = tx.reshape(16, PIXELS) if w.arch == "mlp" else tx
    with torch.no_grad():
      if k == 1:
        t_log_px, t_kl = tm.elbo_terms(tmodel, tx, torch.from_numpy(eps[0]))
        pairs = [(log_px[0], t_log_px), (elbo.analytic_kl(q, p), t_kl)]
      else:
        log_w = log_px + p.log_prob(z) - q.log_prob(z)
        pairs = [(log_w, tm.iwae_log_weights(tmodel, tx, torch.from_numpy(eps)))]
  worst = max(float(np.max(np.abs(np.asarray(a) - np.asarray(b))) / (np.max(np.abs(a)) + 1e-6))
              for a, b in pairs)
  if worst > 1e-4:
    raise ValueError(f"{w.name}: the PyTorch network differs from genjax's by {worst:.2e} "
                     "(relative): bench/torch_models.py no longer matches genjax.models")
  return worst


def xla_flops_per_example(w: Workload, seed: int = 0) -> float:
  """FLOPs per example of one genjax step as XLA's cost analysis counts them (elementwise
  work and the zero taps of the patch transposed convolutions included)."""
  state, step, _ = build_genjax(w, seed)
  batch = {"image": jnp.zeros((w.batch, *IMAGE_SHAPE)), "index": jnp.arange(w.batch)}
  cost = jax.jit(step).lower(state, batch).compile().cost_analysis()
  cost = cost[0] if isinstance(cost, (list, tuple)) else cost
  return float(cost["flops"]) / w.batch


# ---------------------------------------------------------------- machine

def matmul_gflops(device: str = "cpu", repeats: int = 5) -> dict[str, float]:
  """Best float32 GFLOP/s (2 n^3 per product) of ``repeats`` n x n products, jnp and torch
  (n = 2048 on a CPU, 8192 on a GPU), at the run's ``--precision``."""
  n = 2048 if device == "cpu" else 8192
  a, b = jax.random.normal(jax.random.PRNGKey(0), (2, n, n), jnp.float32)
  matmul = jax.jit(jnp.matmul)
  matmul(a, b).block_until_ready()
  ta, tb = torch.randn(n, n, device=device), torch.randn(n, n, device=device)
  sync = torch.cuda.synchronize if device.startswith("cuda") else (lambda: None)
  torch.mm(ta, tb)
  sync()
  best = {"jax": float("inf"), "torch": float("inf")}
  for _ in range(repeats):
    tic = time.perf_counter()
    matmul(a, b).block_until_ready()
    best["jax"] = min(best["jax"], time.perf_counter() - tic)
    tic = time.perf_counter()
    torch.mm(ta, tb)
    sync()
    best["torch"] = min(best["torch"], time.perf_counter() - tic)
  return {k: 2 * n ** 3 / t / 1e9 for k, t in best.items()}


PRECISIONS = ("default", "tf32", "float32")


def set_precision(precision: str, device: str = "cuda") -> str:
  """Float32 product precision on an NVIDIA GPU (no effect on a CPU): ``default`` leaves
  each library's own (JAX: TF32 inputs for float32 products and convolutions; PyTorch:
  full float32 products, TF32 cuDNN convolutions), ``tf32`` lets both use TF32, ``float32``
  neither. Returns the setting in words for the report."""
  if device == "cpu":
    return "float32 (a CPU has no TF32)"
  if precision == "default":
    return ("each library's default (JAX TF32 products and convolutions; PyTorch float32 "
            "products, TF32 cuDNN convolutions)")
  tf32 = precision == "tf32"
  jax.config.update("jax_default_matmul_precision", "tensorfloat32" if tf32 else "float32")
  torch.backends.cuda.matmul.allow_tf32 = tf32
  torch.backends.cudnn.allow_tf32 = tf32
  return "TF32 in both" if tf32 else "full float32 in both"


def load_images(data_dir: str, need: int) -> tuple[np.ndarray, str]:
  """MNIST train images [N, 28, 28, 1] in [0, 1] from ``data_dir``, else synthetic ones."""
  if (Path(data_dir) / "mnist.npz").is_file():
    data = sources.load("mnist", data_dir)
  else:
    data = sources.synthetic(num_train=max(need, 60000), num_test=1)
  data = transforms.prepare(data, "continuous")
  return data.train_images, f"{data.name} ({data.source})"


def epoch_images(images: np.ndarray, batch: int, steps: int) -> np.ndarray:
  """The largest prefix of whole chunks (``steps`` batches), so ``fit``'s chunks are exactly
  ``steps`` long; the images repeated when one chunk needs more than there are."""
  chunk = batch * steps
  if chunk > len(images):
    images = np.concatenate([images] * -(-chunk // len(images)))
  return images[:len(images) // chunk * chunk]


# ---------------------------------------------------------------- main

def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
  parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  parser.add_argument("--workloads", default=",".join(WORKLOADS),
                      help=f"comma-separated, of {', '.join(WORKLOADS)}")
  parser.add_argument("--rounds", type=int, default=3)
  parser.add_argument("--steps", type=int, default=0, help="steps per measurement (one fused "
                      "genjax chunk); 0: each workload's default ("
                      + ", ".join(f"{w.name} {w.steps}" for w in WORKLOADS.values()) + ")")
  parser.add_argument("--threads", type=int, default=os.cpu_count(),
                      help="torch.set_num_threads (default: the machine's cores)")
  parser.add_argument("--torch_device", default="cuda" if torch.cuda.is_available() else "cpu",
                      help="PyTorch's device (default: cuda when there is one); genjax runs "
                      "on JAX's default device")
  parser.add_argument("--precision", default="default", choices=PRECISIONS,
                      help="float32 product precision on a GPU (see set_precision)")
  parser.add_argument("--data_dir", default=str(ROOT.parent / "shared" / "data"))
  parser.add_argument("--check", action=argparse.BooleanOptionalAction, default=True,
                      help="first check that each PyTorch network computes genjax's "
                      "function, and read XLA's FLOP count of each genjax step")
  parser.add_argument("--seed", type=int, default=0)
  parser.add_argument("--out", default=None, help="also write the markdown report here")
  args = parser.parse_args(argv)
  unknown = [n for n in args.workloads.split(",") if n not in WORKLOADS]
  if unknown:
    parser.error(f"--workloads: unknown {', '.join(unknown)}; expected {', '.join(WORKLOADS)}")
  if args.rounds < 1 or args.steps < 0 or args.threads < 1:
    parser.error("--rounds and --threads must be >= 1, --steps >= 0")
  return args


def summarize(w: Workload, steps: int, g: list[dict], t: list[dict], ceiling: float) -> dict:
  """The table row of one workload from its genjax and PyTorch measurements (warm-up first)."""
  g_eps = [m["examples_per_s"] for m in g[1:]]
  t_eps = [m["examples_per_s"] for m in t[1:]]
  flops = train_flops_per_example(w)
  steady_step_s = statistics.median(m["seconds"] for m in g[1:]) / steps
  return {"workload": w.name, "network": w.describe(), "batch": w.batch, "steps": steps,
          "mflop_per_example": flops / 1e6,
          "genjax_min": min(g_eps), "genjax_median": statistics.median(g_eps),
          "torch_min": min(t_eps), "torch_median": statistics.median(t_eps),
          "ratio": statistics.median(g_eps) / statistics.median(t_eps),
          "genjax_gflops": flops * statistics.median(g_eps) / 1e9,
          "torch_gflops": flops * statistics.median(t_eps) / 1e9, "ceiling": ceiling,
          "compile_s": g[0]["compile_s"],
          "genjax_first_step_s": g[0]["to_first_chunk_s"] - (steps - 1) * steady_step_s,
          "torch_first_step_s": t[0]["first_step_s"],
          "genjax_loss": g[-1]["loss"], "torch_loss": t[-1]["loss"]}


def markdown(rows: list[dict]) -> str:
  lines = ["| workload | batch | MFLOP/example (XLA's count, genjax) "
           "| genjax ex/s min / median | torch ex/s min / median | genjax / torch "
           "| genjax GFLOP/s (% ceiling) | torch GFLOP/s (% ceiling) "
           "| genjax compile s | first step s, genjax / torch |",
           "|---|---|---|---|---|---|---|---|---|---|"]
  for r in rows:
    pct = lambda gf: f"{gf:.1f} ({100 * gf / r['ceiling']:.0f}%)"
    lines.append(
        f"| {r['workload']}: {r['network']} | {r['batch']} | {r['mflop_per_example']:.1f} "
        f"({r['xla_mflop']:.1f}) "
        f"| {r['genjax_min']:,.0f} / {r['genjax_median']:,.0f} "
        f"| {r['torch_min']:,.0f} / {r['torch_median']:,.0f} | {r['ratio']:.2f}x "
        f"| {pct(r['genjax_gflops'])} | {pct(r['torch_gflops'])} | {r['compile_s']:.1f} "
        f"| {r['genjax_first_step_s']:.1f} / {r['torch_first_step_s']:.2f} |")
  return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
  args = parse_args(argv)
  torch.set_num_threads(args.threads)
  precision = set_precision(args.precision, args.torch_device)
  workloads = [WORKLOADS[n] for n in args.workloads.split(",")]
  steps = {w.name: args.steps or w.steps for w in workloads}
  images, data_name = load_images(args.data_dir, max(w.batch * steps[w.name] for w in workloads))
  xla_flops = {}
  if args.check:
    for w in workloads:
      xla_flops[w.name] = xla_flops_per_example(w, args.seed)
      print(f"# check {w.name}: PyTorch = genjax to {check_same_function(w, images):.1e}; "
            f"XLA counts {xla_flops[w.name] / 1e6:.2f} MFLOP/example", file=sys.stderr)
  spans: list[tuple[float, float]] = []
  jax.monitoring.register_event_time_span_listener(
      lambda event, start, end, **_: spans.append((start, end)) if event in COMPILE_EVENTS
      else None)
  load_before, wall = os.getloadavg(), time.perf_counter()
  ceiling_before = matmul_gflops(args.torch_device)
  print(f"# matmul GFLOP/s before: {ceiling_before}", file=sys.stderr)
  contenders = {}
  results = {w.name: {"genjax": [], "torch": []} for w in workloads}
  for r in range(args.rounds + 1):          # round 0: warm-up
    for w in workloads:
      if r == 0:
        data = epoch_images(images, w.batch, steps[w.name])
        contenders[w.name] = {
            "genjax": genjax_measurements(w, data, steps[w.name], args.seed, spans),
            "torch": torch_measurements(w, data, steps[w.name], args.seed,
                                        args.torch_device)}
      for name in ("genjax", "torch"):
        results[w.name][name].append(next(contenders[w.name][name]))
        print(f"# round {r} {w.name} {name}: {results[w.name][name][-1]}", file=sys.stderr)
  ceiling_after = matmul_gflops(args.torch_device)
  print(f"# matmul GFLOP/s after: {ceiling_after}", file=sys.stderr)
  ceiling = max(*ceiling_before.values(), *ceiling_after.values())
  rows = [{**summarize(w, steps[w.name], results[w.name]["genjax"], results[w.name]["torch"],
                      ceiling), "xla_mflop": xla_flops.get(w.name, float("nan")) / 1e6}
          for w in workloads]
  torch_on = (torch.cuda.get_device_name(args.torch_device)
              if args.torch_device.startswith("cuda") else f"{torch.get_num_threads()} threads")
  header = (f"{cpu_name()}, {os.cpu_count()} cores; jax {jax.__version__} "
            f"({jax.devices()[0].device_kind}), torch {torch.__version__} on {torch_on}; "
            f"float32 precision: {precision}; genjax convolutions: {layers.implementation()}; "
            f"data {data_name}; {args.rounds} rounds; "
            f"steps per measurement {', '.join(f'{k} {v}' for k, v in steps.items())}; "
            f"{time.perf_counter() - wall:.0f} s; load average before {load_before[0]:.2f}, "
            f"after {os.getloadavg()[0]:.2f}. float32 matmul ceiling (n^3, best of 5): "
            f"jnp {ceiling_before['jax']:.0f} / {ceiling_after['jax']:.0f}, torch "
            f"{ceiling_before['torch']:.0f} / {ceiling_after['torch']:.0f} GFLOP/s "
            f"(before / after the rounds); % ceiling is of {ceiling:.0f}.")
  report = f"{header}\n\n{markdown(rows)}\n"
  print(report)
  for row in rows:
    print(f"# {row['workload']}: final loss genjax {row['genjax_loss']:.2f}, torch "
          f"{row['torch_loss']:.2f}", file=sys.stderr)
  if args.out:
    Path(args.out).write_text(report)


if __name__ == "__main__":
  main()
