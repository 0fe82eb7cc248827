"""Evaluators: small objects an experiment hands to ``runner.train`` (called every
``eval_every`` epochs and at the end) or calls once at the end. Each is built from a model
and a data set once, then maps parameters to a flat dict of numbers.
"""

from __future__ import annotations

from typing import Any

import jax
import numpy as np

from genjax.io import progress
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
