"""Train a VAE (negative ELBO, reparameterization) and report its test ELBO.

Writes into --workdir: config.json, metrics.jsonl (+ tensorboard/), checkpoints/,
samples.png (decoded prior samples), reconstructions.png, results.json, results.md.
"""

from __future__ import annotations

import dataclasses
import os
import time

from absl import app, flags, logging
import jax
import jax.numpy as jnp
import numpy as np
import optax

from experiments import common
from genjax import checkpoint, data, models, objectives, parallel, plotting, train, workdir

flags.DEFINE_enum("kl", "analytic", objectives.KL_ESTIMATORS,
                  "KL(q(z|x) || p(z)): closed form or one-sample Monte Carlo.")
flags.DEFINE_float("beta", 1.0, "Weight of the KL term (beta-VAE); 1 is the ELBO.",
                   lower_bound=0.0)
flags.DEFINE_integer("num_samples", 64, "Prior samples drawn into samples.png.", lower_bound=1)
FLAGS = flags.FLAGS


@dataclasses.dataclass(frozen=True)
class Config:
  """Every flag of the run, resolved once (defaults live on the flags)."""
  workdir: str
  dataset: str
  data_dir: str | None
  download: bool
  seed: int
  epochs: int
  batch_size: int
  learning_rate: float
  model: str
  latent_dim: int
  hidden: tuple[int, ...]
  activation: str
  parallel: str
  host_devices: int | None
  steps_per_chunk: int
  eval_every: int
  checkpoint_every: int
  likelihood: str
  gaussian_std: float
  kl: str
  beta: float
  preprocess: str
  num_samples: int
  eval_batch_size: int


def config_from_flags() -> Config:
  values = {f.name: FLAGS[f.name].value for f in dataclasses.fields(Config)}
  values["hidden"] = common.hidden_sizes()
  return Config(**values)


def run(config: Config) -> dict[str, float]:
  """Trains (or resumes) and evaluates; writes every workdir file; returns results."""
  wall_start = time.perf_counter()
  dataset = data.prepare(data.load(config.dataset, config.data_dir, config.download),
                         config.preprocess)
  logging.info("data: %s from %s, %d train / %d test", dataset.name, dataset.source,
               len(dataset.train_images), len(dataset.test_images))
  if config.batch_size > len(dataset.train_images):
    raise ValueError(f"--batch_size={config.batch_size} exceeds the "
                     f"{len(dataset.train_images)} training examples of --dataset={config.dataset}")
  placement = parallel.make_placement(config.parallel)
  parallel.check_batch_size(placement, config.batch_size)
  workdir.check_or_write_config(config.workdir, dataclasses.asdict(config))

  likelihood = objectives.make_likelihood(config.likelihood, config.gaussian_std)
  image_shape = dataset.train_images.shape[1:]
  model = models.build_vae(config.model, image_shape, config.latent_dim, config.hidden,
                           image_shape[-1] * likelihood.params_per_channel, config.activation)
  init_rng, state_rng, data_rng, eval_rng, sample_rng = jax.random.split(
      jax.random.PRNGKey(config.seed), 5)
  params = model.init(init_rng, jnp.zeros((1, *image_shape), jnp.float32))["params"]
  optimizer = optax.adam(config.learning_rate)
  state = train.create_train_state(params, optimizer, state_rng)
  manager = checkpoint.make_manager(config.workdir)
  state, restored_step = checkpoint.restore_latest(manager, state)
  if restored_step is not None:
    logging.info("resumed from checkpoint at step %d", restored_step)

  loss_fn = objectives.make_elbo_loss(model, likelihood, config.kl, config.beta)
  terms_fn = objectives.make_elbo_terms(model, likelihood, config.kl)
  preprocess = common.make_preprocess(config.preprocess)
  evaluate = train.make_eval_fn(
      lambda p, b, r: objectives.elbo_metrics(terms_fn(p, b, r)), preprocess)
  test_batches = train.pad_batches({"image": dataset.test_images},
                                   min(config.eval_batch_size, len(dataset.test_images)))

  def test_metrics(params) -> dict[str, float]:
    return {f"test_{k}": float(v) for k, v in evaluate(params, *test_batches, eval_rng).items()}

  writer = workdir.MetricsWriter(config.workdir)
  step = train.make_train_step(loss_fn, optimizer, axis_name=placement.axis_name)
  chunks = train.fit(state, step, {"image": dataset.train_images}, batch_size=config.batch_size,
                     num_epochs=config.epochs, data_rng=data_rng, preprocess=preprocess,
                     steps_per_chunk=config.steps_per_chunk or None, placement=placement)
  for i, (state, log) in enumerate(chunks):
    writer.write({**log, "includes_compile": int(i == 0)})
    epoch = round(log["epoch"])
    if log["epoch_end"]:
      last = epoch == config.epochs
      if epoch % config.eval_every == 0 or last:
        writer.write({"step": log["step"], "epoch": epoch, **test_metrics(state.params)})
      if epoch % config.checkpoint_every == 0 or last:
        checkpoint.save(manager, state, log["step"])
    logging.info("epoch %.2f step %d loss %.2f elbo %.2f (%.0f ex/s)", log["epoch"], log["step"],
                 log["loss"], log["elbo"], log["examples_per_s"])
  writer.close()

  final = test_metrics(state.params)
  if workdir.is_primary():
    _write_figures(config, model, likelihood, state.params, dataset, sample_rng)
  results = {**final, "epochs": config.epochs, "steps": int(state.step),
             "examples_per_s": _steady_examples_per_s(config.workdir),
             "wall_s": time.perf_counter() - wall_start,
             "train_s": _train_seconds(config.workdir),
             "num_params": int(sum(x.size for x in jax.tree.leaves(state.params))),
             "dataset": config.dataset, "data_source": dataset.source,
             "device": jax.devices()[0].device_kind, "num_devices": placement.num_devices,
             "parallel": config.parallel, "num_processes": jax.process_count(),
             "params_digest": common.params_digest(state.params)}
  workdir.write_results(
      config.workdir, results, title=f"VAE on {config.dataset} ({config.model})",
      notes="ELBO terms in nats per test example (sum over pixels, mean over examples); "
            "one reparameterized sample per example. examples_per_s excludes each process's "
            "first (compiling) chunk; wall_s is this invocation's wall time, train_s the "
            "time in training steps over every invocation of the run.")
  return results


def _train_seconds(run_dir: str) -> float:
  """Seconds spent in train chunks over all invocations of the run (compiles included)."""
  return sum(r.get("seconds", 0.0) for r in workdir.read_metrics(run_dir))


def _steady_examples_per_s(run_dir: str) -> float:
  """Training throughput over all logged chunks that did not include compilation."""
  chunks = [r for r in workdir.read_metrics(run_dir)
            if "examples_per_s" in r and not r.get("includes_compile")]
  seconds = sum(r["seconds"] for r in chunks)
  return sum(r["examples_per_s"] * r["seconds"] for r in chunks) / seconds if seconds else float("nan")


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


def main(argv: list[str]) -> None:
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
  results = common.run_or_exit("train_vae", run, config_from_flags())
  print(f"process {jax.process_index()}: params_digest={results['params_digest']!r}")
  if workdir.is_primary():
    print(f"test ELBO {results['test_elbo']:.2f} nats (recon {results['test_recon']:.2f}, "
          f"KL {results['test_kl']:.2f}); {results['examples_per_s']:.0f} examples/s; "
          f"wall {results['wall_s']:.0f} s; results in {FLAGS.workdir}/results.md")
