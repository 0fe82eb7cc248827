"""Evaluators: small objects an experiment hands to ``runner.train`` (called every
``eval_every`` epochs and at the end) or calls once at the end. Each is built from a model
and a data set once, then maps parameters to a flat dict of numbers.

The final evaluations a config chooses by name (``config.evaluators``) are entries of
``EVALUATORS``: each says what it computes, the config fields it reads, what it requires of
the data set, and ``run(context) -> {name: number}``. An experiment lists the ones it can
run (its ``EVALUATORS``) and calls ``run_chosen``.
"""

from __future__ import annotations

import dataclasses
import os
from typing import Any, Callable

import jax
import numpy as np

from genjax import registries
from genjax.data import registry as data_registry
from genjax.io import plotting, progress
from genjax.losses import elbo
from genjax.metrics import likelihood as likelihood_metrics
from genjax.models import protocol
from genjax.training import loop


class TestELBO:
  """The ELBO's terms on a whole data set: ``{prefix}recon``, ``{prefix}kl``,
  ``{prefix}elbo`` in nats per example (one reparameterized sample each; ``kl``: closed
  form or one-sample Monte Carlo).

  ``data`` is a dict of arrays (``image``, and ``condition`` for a conditional model),
  evaluated in batches of ``batch_size`` with key ``rng`` (the same preprocessing, e.g.
  binarization, at every call). With ``replicas`` the parameters carry a leading axis of
  vmapped seed replicas and each value is a list over them.
  """

  def __init__(self, model, likelihood, data: dict[str, np.ndarray], batch_size: int,
               rng: jax.Array, preprocess=loop.identity_preprocess, kl: str = "analytic",
               prefix: str = "test_", replicas: bool = False):
    terms = elbo.make_elbo_terms(model, likelihood, kl)
    metrics = lambda p, b, r: elbo.elbo_metrics(terms(p, b, r))   # noqa: E731
    if replicas:
      metrics = jax.vmap(metrics, in_axes=(0, None, None))
    self._evaluate = loop.make_eval_fn(metrics, preprocess)
    size = len(next(iter(data.values())))
    self._batches = loop.pad_batches(data, min(batch_size, size))
    self._rng, self._prefix, self._replicas = rng, prefix, replicas

  def __call__(self, params: Any) -> dict[str, Any]:
    out = jax.device_get(self._evaluate(params, *self._batches, self._rng))
    if self._replicas:
      return {f"{self._prefix}{k}": np.asarray(v).tolist() for k, v in out.items()}
    return {f"{self._prefix}{k}": float(v) for k, v in out.items()}


class LogLikelihood:
  """log p(x) (log p(x|c) for a conditional model) by importance sampling with
  ``num_samples`` proposals from q(z|x) (Burda et al. 2016), averaged over ``data``
  (images [n, H, W, C], or a dict with ``image`` and ``condition``): ``{"log_px": mean,
  "log_px_se": standard error of that mean}`` (the per-example Monte Carlo errors
  combined) and ``elbo``, the mean log-weight of the same draws (the ELBO on the same
  examples, with ``num_samples`` samples). The batches run in about ``PROGRESS_STEPS`` compiled calls from a host loop
  (``loop.make_chunked_eval_fn``: the numbers of one call), so an evaluation longer than a
  few seconds shows a progress bar (``genjax.io.progress``)."""

  PROGRESS_STEPS = 50   # about this many calls (and bar updates) per evaluation

  def __init__(self, model, likelihood, data: np.ndarray | dict[str, np.ndarray],
               num_samples: int, examples_per_batch: int | None = None):
    data = data if isinstance(data, dict) else {"image": data}
    self._n, self._num_samples = len(data["image"]), num_samples
    chunk = loop.largest_divisor_at_most(num_samples, 500)
    if examples_per_batch is None:   # about 20,000 (example, sample) pairs at a time
      examples_per_batch = max(1, min(self._n, 20_000 // min(num_samples, 500)))
    self._batches = loop.pad_batches(data, examples_per_batch)
    self._num_batches = self._batches[1].shape[0]
    self._evaluate = loop.make_chunked_eval_fn(
        likelihood_metrics.make_log_likelihood_fn(model, likelihood, num_samples, chunk),
        batches_per_call=max(1, self._num_batches // self.PROGRESS_STEPS))

  def __call__(self, params: Any, rng: jax.Array) -> dict[str, float]:
    with progress.bar(self._num_batches, f"log p(x), K={self._num_samples}", unit="batch",
                      delay=progress.EVAL_DELAY_S) as shown:
      out = jax.device_get(self._evaluate(params, *self._batches, rng, shown.update))
    return {"log_px": float(out["log_px"]),
            "log_px_se": float(np.sqrt(out["log_px_var"] / self._n)),
            "elbo": float(out["elbo"])}


def test_subset(rng: jax.Array, n: int, total: int) -> np.ndarray:
  """Indices of ``n`` test examples: all of them (n >= total), or a uniform random subset
  fixed by ``rng`` (a prefix would not be representative: data sets are often ordered)."""
  if n >= total:
    return np.arange(total)
  return np.sort(np.asarray(jax.random.permutation(rng, total)[:n]))


def test_log_likelihood(model, likelihood, params, data: dict[str, np.ndarray],
                        preprocess, rng: jax.Array, num_samples: int,
                        num_examples: int) -> dict[str, float]:
  """``test_nll`` = -log p(x) (given ``data["condition"]`` if there is one) by importance
  sampling with ``num_samples`` proposals on ``num_examples`` test examples (a fixed random
  subset; all for 0), preprocessed (e.g. binarized) once with a fixed key; ``test_ll_se``,
  the Monte Carlo standard error of the mean; ``ll_examples_used``."""
  subset_rng, preprocess_rng, ll_rng = jax.random.split(rng, 3)
  total = len(data["image"])
  subset = test_subset(subset_rng, num_examples or total, total)
  chosen = {k: np.asarray(v)[subset] for k, v in data.items()}
  chosen["image"] = np.asarray(preprocess({"image": chosen["image"]}, preprocess_rng)["image"])
  ll = LogLikelihood(model, likelihood, chosen, num_samples)(params, ll_rng)
  return {"test_nll": -ll["log_px"], "test_ll_se": ll["log_px_se"],
          "ll_examples_used": len(subset)}


def prior_sample_means(model, likelihood, params, rng: jax.Array, num: int,
                       condition: np.ndarray | None = None,
                       batch_size: int = 1000) -> np.ndarray:
  """Means of p(x|z) for ``num`` draws z ~ p(z) (for a conditional model, one per row of
  ``condition`` [num, C]), decoded ``batch_size`` at a time: [num, H, W, C]."""

  @jax.jit
  def one(key, c):
    z = protocol.sample_prior(model, params, key, batch_size)
    return likelihood.mean(protocol.decode(model, params, z, c))

  out = []
  with progress.bar(-(-num // batch_size), "prior samples", unit="batch",
                    delay=progress.EVAL_DELAY_S) as shown:
    for i, start in enumerate(range(0, num, batch_size)):
      c = None
      if condition is not None:
        c = np.resize(condition[start:start + batch_size], (batch_size, condition.shape[1]))
      out.append(np.asarray(one(jax.random.fold_in(rng, i), c)))
      shown.update(1)
  return np.concatenate(out)[:num]


# --- Final evaluations by name ----------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Context:
  """What a final evaluation sees: the config, the trained model, the data and the run's
  PRNG streams (``keys``: ``eval``, ``quality``), and the workdir for its figures."""
  config: Any
  model: Any
  likelihood: Any
  params: Any
  dataset: Any
  preprocess: Callable
  keys: dict[str, jax.Array]
  sample_quality: Callable[..., dict] | None = None   # runner.sample_quality


@dataclasses.dataclass(frozen=True)
class Evaluator:
  """A final evaluation a config chooses by name.

  Attributes:
    name: its name in ``config.evaluators``.
    doc: what it computes, one sentence (shown by --help).
    reads: the config fields it reads (read only when it is chosen).
    run: ``Context -> {result name: number}``.
    requires: ``config -> None``, or what is missing (e.g. factors of variation), checked
      before anything is written.
  """
  name: str
  doc: str
  reads: tuple[str, ...]
  run: Callable[[Context], dict[str, Any]]
  requires: Callable[[Any], str | None] = lambda config: None


EVALUATORS: dict[str, Evaluator] = {}


def register(evaluator: Evaluator) -> Evaluator:
  return registries.add(EVALUATORS, evaluator, "evaluator")


def run_chosen(names: list[str], context: Context) -> dict[str, Any]:
  """Every chosen evaluation's results, in the order chosen."""
  out: dict[str, Any] = {}
  for name in names:
    out.update(EVALUATORS[name].run(context))
  return out


def _log_likelihood(ctx: Context) -> dict[str, Any]:
  c = ctx.config
  return test_log_likelihood(ctx.model, ctx.likelihood, ctx.params,
                             {"image": ctx.dataset.test_images}, ctx.preprocess,
                             jax.random.fold_in(ctx.keys["eval"], 1), c.ll_samples,
                             c.ll_examples)


def _sample_quality(ctx: Context) -> dict[str, Any]:
  if not ctx.config.quality_samples:
    return {}
  return ctx.sample_quality(ctx.config, ctx.dataset, prior_sample_means(
      ctx.model, ctx.likelihood, ctx.params, ctx.keys["quality"], ctx.config.quality_samples))


TRAVERSAL_STEPS = 9          # values of each z dimension in traversals.png
TRAVERSAL_RANGE = 2.5        # from -this to +this (in prior standard deviations)


def posterior_means(model, params, images: np.ndarray, batch_size: int = 500) -> np.ndarray:
  """E_q[z|x] for every image, ``batch_size`` at a time: [N, latent_dim]."""
  mean = jax.jit(lambda x: protocol.posterior(model, params, x).mean)
  return np.concatenate([np.asarray(mean(images[i:i + batch_size]))
                         for i in range(0, len(images), batch_size)])


def _factors(ctx: Context) -> dict[str, Any]:
  """How strongly each latent dimension tracks each factor of variation (the mutual
  information gap of Chen et al. 2018, on the posterior means of the test set), and the
  latent traversals: writes factors.md (the normalised MI table) and traversals.png."""
  from genjax.metrics import factors  # pylint: disable=import-outside-toplevel
  data = ctx.dataset
  means = posterior_means(ctx.model, ctx.params, data.test_images)
  gap = factors.mutual_information_gap(means, data.test_factors)
  names = data.factor_names
  best = [int(i) for i in gap["best_latent"]]
  workdir = ctx.config.workdir
  _write_factor_table(os.path.join(workdir, "factors.md"), gap, names)
  _write_traversals(ctx, means[0], os.path.join(workdir, "traversals.png"), gap, names)
  return {"mig": float(gap["mig"]),
          **{f"mig_{n}": float(g) for n, g in zip(names, gap["gaps"])},
          **{f"best_latent_{n}": b for n, b in zip(names, best)}}


def _write_factor_table(path: str, gap: dict, names: tuple[str, ...]) -> None:
  """factors.md: I(z_j; v_k) / H(v_k) for every latent dimension j and factor k."""
  mi = np.asarray(gap["normalized_mi"])
  lines = ["# How strongly each latent dimension tracks each factor", "",
           "I(z_j; v_k) / H(v_k) on the test set's posterior means (20-bin histograms); "
           f"MIG = {float(gap['mig']):.3f} (Chen et al. 2018).", "",
           "| z | " + " | ".join(names) + " |", "|---" * (len(names) + 1) + "|"]
  lines += [f"| z_{j} | " + " | ".join(f"{v:.3f}" for v in row) + " |"
            for j, row in enumerate(mi)]
  lines += ["| gap | " + " | ".join(f"{float(g):.3f}" for g in gap["gaps"]) + " |"]
  with open(path, "w") as f:
    f.write("\n".join(lines) + "\n")


def _write_traversals(ctx: Context, z0: np.ndarray, path: str, gap: dict,
                      names: tuple[str, ...]) -> None:
  """Each z dimension varied over [-TRAVERSAL_RANGE, TRAVERSAL_RANGE], the others fixed at
  the first test image's posterior mean; rows labelled by the factor each tracks best."""
  values = np.linspace(-TRAVERSAL_RANGE, TRAVERSAL_RANGE, TRAVERSAL_STEPS)
  d = len(z0)
  z = np.repeat(np.repeat(z0[None, None], d, 0), TRAVERSAL_STEPS, 1)   # [d, steps, d]
  for j in range(d):
    z[j, :, j] = values
  images = ctx.likelihood.mean(protocol.decode(ctx.model, ctx.params,
                                               z.reshape(-1, d).astype(np.float32)))
  images = np.asarray(images).reshape(d, TRAVERSAL_STEPS, *images.shape[1:])
  mi = np.asarray(gap["normalized_mi"])
  labels = [f"{names[int(mi[j].argmax())]} {mi[j].max():.2f}" for j in range(d)]
  plotting.save_traversals(path, images, values=values, factor_labels=labels,
                           title="latent traversals (row: z_j varied; label: the factor it "
                                 "tracks best, I/H)")


def _needs_factors(config: Any) -> str | None:
  if not data_registry.get(config.dataset).factors:
    with_factors = [n for n in data_registry.names() if data_registry.get(n).factors]
    return (f"config.evaluators has factors: dataset={config.dataset} has no known factors "
            f"of variation; use dataset={' or dataset='.join(with_factors)}")


register(Evaluator(
    "log_likelihood", "importance-sampled test log p(x) with K = ll_samples on ll_examples "
    "test images", ("ll_samples", "ll_examples"), _log_likelihood))
register(Evaluator(
    "sample_quality", "quality_samples prior samples on the reference classifier's scale",
    ("quality_samples",), _sample_quality))
register(Evaluator(
    "factors", "how strongly each z dimension tracks each factor of variation (MIG, Chen "
    "et al. 2018; factors.md) and the latent traversals (traversals.png)", (), _factors,
    requires=_needs_factors))
