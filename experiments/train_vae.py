"""Train a VAE (negative ELBO, reparameterization) and report its test ELBO.

Config: experiments/configs/train_vae.py. Writes into the workdir: config.json,
metrics.jsonl (+ tensorboard/), checkpoints/, samples.png (decoded prior samples),
reconstructions.png, results.json, results.md; with latent_dim=2 also manifold.png (the
decoder over a grid of prior quantiles) and latent_scatter.png (test encodings coloured by
label).
"""

from __future__ import annotations

import os
import time
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from experiments.framework import configuration, evaluators, runner
from experiments.framework.checks import Field, choice, integer, number
from genjax.io import plotting, workdir
from genjax.losses import elbo
from genjax.models import protocol
from genjax.models import registry as parts


def _closed_form_kl(config: Any) -> str | None:
  """kl=analytic needs a model whose entries (genjax.models.registry) have a closed form."""
  without = [part for part in (parts.prior(config.prior), parts.posterior(config.posterior))
             if not part.closed_form_kl]
  if config.kl == "analytic" and without:
    return f"config.kl=analytic: {without[0].no_kl_reason}; use kl=mc"


def _posterior_with_prior(config: Any) -> str | None:
  if not config.upper_latents and not parts.combines(config.prior, config.posterior):
    return (f"config.posterior={config.posterior}: a richer posterior takes "
            f"prior=standard_normal (the VampPrior is a mixture of diagonal posteriors)")


# The fields only this experiment reads (the shared ones: experiments/framework/configuration.py).
FIELDS = {
    "kl": Field("KL(q(z|x) || p(z)): closed form or one-sample Monte Carlo.",
                choice(elbo.KL_ESTIMATORS)),
    "beta": Field("Weight of the KL term (beta-VAE); 1 is the ELBO.", number(0.0)),
    "num_samples": Field("Prior samples drawn into samples.png.", integer(1)),
}


CHECKS = (_closed_form_kl, _posterior_with_prior)


def _evaluates(name: str):
  return lambda c: name in configuration.split_names(c.evaluators)


# The final evaluations train_vae runs by name, and the fields each reads only when chosen.
EVALUATORS = ("log_likelihood", "sample_quality", "factors")
READ_IF = {field: configuration.ReadIf(_evaluates(name), f"evaluators has {name}")
           for name in EVALUATORS for field in evaluators.EVALUATORS[name].reads}


def run(config: Any) -> dict[str, float]:
  """Trains (or resumes) and evaluates; writes every workdir file; returns results."""
  wall_start = time.perf_counter()
  dataset, placement = runner.prepare(config)
  likelihood = runner.likelihood(config)
  image_shape = dataset.train_images.shape[1:]
  model = runner.build_vae(config, image_shape, likelihood)
  keys = runner.streams(config.seed, "init", "state", "data", "eval", "figures", "quality")
  loss_fn = elbo.make_elbo_loss(model, likelihood, config.kl, config.beta)
  preprocess = runner.make_preprocess(config.preprocess)
  test_elbo = evaluators.TestELBO(model, likelihood, {"image": dataset.test_images},
                                  config.eval_batch_size, keys["eval"], preprocess, kl=config.kl)
  state = runner.fit(config, model, loss_fn, {"image": dataset.train_images},
                     (jnp.zeros((1, *image_shape), jnp.float32),), keys,
                     run_dir=config.workdir, preprocess=preprocess, placement=placement,
                     evaluate=test_elbo, name="train_vae")

  final = test_elbo(state.params)
  final.update(evaluators.run_chosen(
      configuration.split_names(config.evaluators),
      evaluators.Context(config, model, likelihood, state.params, dataset, preprocess, keys,
                         sample_quality=runner.sample_quality)))
  if workdir.is_primary():
    _write_figures(config, model, likelihood, state.params, dataset, keys["figures"])
  results = {**final, **runner.run_info(config, state, dataset, placement, wall_start)}
  workdir.write_results(
      config.workdir, results, title=f"VAE on {config.dataset} ({config.model})",
      notes="ELBO terms in nats per test example (sum over pixels, mean over examples); "
            "one reparameterized sample per example. With evaluators=log_likelihood, "
            "test_nll is -log p(x) by importance sampling (K = ll_samples) on "
            "ll_examples_used test images and test_ll_se its standard error. sample_* score "
            "quality_samples prior "
            "samples (means of p(x|z)) with the cached reference classifier "
            "(genjax.metrics.sample_quality; data_fd: real training images, the floor). "
            "examples_per_s excludes each process's first (compiling) chunk; wall_s is this "
            "invocation's wall time, train_s the time in training steps over every "
            "invocation of the run.")
  return results


def report(results: dict, config: Any) -> str:
  nll = f"; test NLL {results['test_nll']:.2f}" if "test_nll" in results else ""
  return (f"test ELBO {results['test_elbo']:.2f} nats (recon {results['test_recon']:.2f}, "
          f"KL {results['test_kl']:.2f}){nll}; {runner.format_rate(results['examples_per_s'])} "
          f"examples/s; wall {results['wall_s']:.0f} s; results in {config.workdir}/results.md")


def _write_figures(config: Any, model, likelihood, params, dataset, rng) -> None:
  z = protocol.sample_prior(model, params, rng, config.num_samples)
  samples = likelihood.mean(protocol.decode(model, params, z))
  plotting.save_image_grid(os.path.join(config.workdir, "samples.png"), np.asarray(samples),
                           title=f"{config.num_samples} samples from the prior (means of p(x|z))")
  inputs = dataset.test_images[:32]
  recon = likelihood.mean(model.apply({"params": params}, inputs))
  plotting.save_reconstructions(os.path.join(config.workdir, "reconstructions.png"), inputs,
                                np.asarray(recon))
  if config.latent_dim == 2 and not config.upper_latents:   # z_1's prior is N(0, I) only
    _write_manifold(config, model, likelihood, params, dataset)


def _write_manifold(config: Any, model, likelihood, params, dataset, n: int = 20) -> None:
  """The 2-D latent space: decoded means over a grid of prior quantiles, and where the
  test images land (posterior means, coloured by label)."""
  quantiles = jax.scipy.special.ndtri(jnp.linspace(0.05, 0.95, n))   # N(0, 1) quantiles
  z1, z2 = jnp.meshgrid(quantiles, quantiles[::-1])   # columns: z1 rising; rows: z2 falling
  z = jnp.stack([z1.ravel(), z2.ravel()], -1)
  grid = likelihood.mean(protocol.decode(model, params, z))
  plotting.save_image_grid(os.path.join(config.workdir, "manifold.png"), np.asarray(grid), n,
                           title="decoder means over a grid of prior quantiles "
                                 "(z1 left to right, z2 bottom to top)")
  mean = jax.jit(lambda x: protocol.posterior(model, params, x).mean)(dataset.test_images)
  plotting.save_scatter(os.path.join(config.workdir, "latent_scatter.png"), np.asarray(mean),
                        dataset.test_labels, title="test images in latent space (E_q[z|x])")
