"""Train a VAE (negative ELBO, reparameterization) and report its test ELBO.

Writes into --workdir: config.json, metrics.jsonl (+ tensorboard/), checkpoints/,
samples.png (decoded prior samples), reconstructions.png, results.json, results.md; with
--latent_dim=2 also manifold.png (the decoder over a grid of prior quantiles) and
latent_scatter.png (test encodings coloured by label).
"""

from __future__ import annotations

import dataclasses
import os
import time

from absl import app, flags
import jax
import jax.numpy as jnp
import numpy as np
import optax

from experiments import common
from genjax import models, objectives, plotting, train, workdir

flags.DEFINE_enum("kl", "analytic", objectives.KL_ESTIMATORS,
                  "KL(q(z|x) || p(z)): closed form or one-sample Monte Carlo.")
flags.DEFINE_float("beta", 1.0, "Weight of the KL term (beta-VAE); 1 is the ELBO.",
                   lower_bound=0.0)
flags.DEFINE_integer("num_samples", 64, "Prior samples drawn into samples.png.", lower_bound=1)
FLAGS = flags.FLAGS


@dataclasses.dataclass(frozen=True)
class Config(common.ModelConfig):
  """Every flag of the run, resolved once (defaults live on the flags)."""
  likelihood: str
  gaussian_std: float
  kl: str
  beta: float
  num_samples: int
  quality_samples: int


def config_from_flags() -> Config:
  return common.config_from_flags(Config)


def run(config: Config) -> dict[str, float]:
  """Trains (or resumes) and evaluates; writes every workdir file; returns results."""
  wall_start = time.perf_counter()
  dataset, placement = common.prepare_run(config)

  likelihood = objectives.make_likelihood(config.likelihood, config.gaussian_std)
  image_shape = dataset.train_images.shape[1:]
  model = models.build_vae(config.model, image_shape, config.latent_dim, config.hidden,
                           image_shape[-1] * likelihood.params_per_channel, config.activation)
  init_rng, state_rng, data_rng, eval_rng, sample_rng, quality_rng = jax.random.split(
      jax.random.PRNGKey(config.seed), 6)
  params = model.init(init_rng, jnp.zeros((1, *image_shape), jnp.float32))["params"]
  optimizer = optax.adam(config.learning_rate)
  state = train.create_train_state(params, optimizer, state_rng)
  loss_fn = objectives.make_elbo_loss(model, likelihood, config.kl, config.beta)
  terms_fn = objectives.make_elbo_terms(model, likelihood, config.kl)
  preprocess = common.make_preprocess(config.preprocess)
  evaluate = train.make_eval_fn(
      lambda p, b, r: objectives.elbo_metrics(terms_fn(p, b, r)), preprocess)
  test_batches = train.pad_batches({"image": dataset.test_images},
                                   min(config.eval_batch_size, len(dataset.test_images)))

  def test_metrics(params) -> dict[str, float]:
    return {f"test_{k}": float(v) for k, v in evaluate(params, *test_batches, eval_rng).items()}

  step = train.make_train_step(loss_fn, optimizer, axis_name=placement.axis_name)
  state = common.fit_and_checkpoint(config, state, step, {"image": dataset.train_images},
                                    run_dir=config.workdir, data_rng=data_rng,
                                    preprocess=preprocess, placement=placement,
                                    evaluate=test_metrics, name="train_vae")

  final = test_metrics(state.params)
  if config.quality_samples:
    final.update(common.sample_quality(config, dataset, generate_means(
        model, likelihood, state.params, quality_rng, config.quality_samples)))
  if workdir.is_primary():
    _write_figures(config, model, likelihood, state.params, dataset, sample_rng)
  results = {**final, "epochs": config.epochs, "steps": int(state.step),
             "examples_per_s": common.steady_examples_per_s(config.workdir),
             "wall_s": time.perf_counter() - wall_start,
             "train_s": common.train_seconds(config.workdir),
             "num_params": int(sum(x.size for x in jax.tree.leaves(state.params))),
             "dataset": config.dataset, "data_source": dataset.source,
             "device": jax.devices()[0].device_kind, "num_devices": placement.num_devices,
             "parallel": config.parallel, "num_processes": jax.process_count(),
             "params_digest": common.params_digest(state.params)}
  workdir.write_results(
      config.workdir, results, title=f"VAE on {config.dataset} ({config.model})",
      notes="ELBO terms in nats per test example (sum over pixels, mean over examples); "
            "one reparameterized sample per example. sample_* score quality_samples prior "
            "samples (means of p(x|z)) with the cached reference classifier "
            "(genjax.evaluate.sample_quality; data_fd: real training images, the floor). examples_per_s excludes each process's "
            "first (compiling) chunk; wall_s is this invocation's wall time, train_s the "
            "time in training steps over every invocation of the run.")
  return results


def generate_means(model, likelihood, params, rng: jax.Array, num: int,
                   condition: np.ndarray | None = None, batch_size: int = 1000) -> np.ndarray:
  """Means of p(x|z) for ``num`` draws z ~ p(z) (for a conditional model, one per row of
  ``condition`` [num, C]), decoded ``batch_size`` at a time: [num, H, W, C]."""

  @jax.jit
  def one(key, c):
    z = jax.random.normal(key, (batch_size, model.latent_dim))
    return likelihood.mean(objectives.decode(model, params, z, c))

  out = []
  for i, start in enumerate(range(0, num, batch_size)):
    c = None
    if condition is not None:
      c = np.resize(condition[start:start + batch_size], (batch_size, condition.shape[1]))
    out.append(np.asarray(one(jax.random.fold_in(rng, i), c)))
  return np.concatenate(out)[:num]


def _write_figures(config: Config, model, likelihood, params, dataset, rng) -> None:
  variables = {"params": params}
  samples = likelihood.mean(model.apply(variables, rng, config.num_samples,
                                        method=model.generate))
  plotting.save_image_grid(os.path.join(config.workdir, "samples.png"), np.asarray(samples),
                           title=f"{config.num_samples} samples from the prior (means of p(x|z))")
  inputs = dataset.test_images[:32]
  recon = likelihood.mean(model.apply(variables, inputs))
  plotting.save_reconstructions(os.path.join(config.workdir, "reconstructions.png"), inputs,
                                np.asarray(recon))
  if config.latent_dim == 2:
    _write_manifold(config, model, likelihood, params, dataset)


def _write_manifold(config: Config, model, likelihood, params, dataset, n: int = 20) -> None:
  """The 2-D latent space: decoded means over a grid of prior quantiles, and where the
  test images land (posterior means, coloured by label)."""
  quantiles = jax.scipy.special.ndtri(jnp.linspace(0.05, 0.95, n))   # N(0, 1) quantiles
  z1, z2 = jnp.meshgrid(quantiles, quantiles[::-1])   # columns: z1 rising; rows: z2 falling
  z = jnp.stack([z1.ravel(), z2.ravel()], -1)
  grid = likelihood.mean(model.apply({"params": params}, z, method=model.decode))
  plotting.save_image_grid(os.path.join(config.workdir, "manifold.png"), np.asarray(grid), n,
                           title="decoder means over a grid of prior quantiles "
                                 "(z1 left to right, z2 bottom to top)")
  mean, _ = jax.jit(lambda x: model.apply({"params": params}, x, method=model.encode))(
      dataset.test_images)
  plotting.save_scatter(os.path.join(config.workdir, "latent_scatter.png"), np.asarray(mean),
                        dataset.test_labels, title="test images in latent space (E_q[z|x])")


def main(argv: list[str]) -> None:
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
  results = common.run_or_exit("train_vae", run, config_from_flags())
  print(f"process {jax.process_index()}: params_digest={results['params_digest']!r}")
  if workdir.is_primary():
    print(f"test ELBO {results['test_elbo']:.2f} nats (recon {results['test_recon']:.2f}, "
          f"KL {results['test_kl']:.2f}); {results['examples_per_s']:.0f} examples/s; "
          f"wall {results['wall_s']:.0f} s; results in {FLAGS.workdir}/results.md")
