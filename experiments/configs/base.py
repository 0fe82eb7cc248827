"""Building blocks of the config files: the shared fields with their usual defaults, and
named variants (``--config=experiments/configs/X.py:variant``).

Every config file defines ``get_config(variant=None)``; ``variant="smoke"`` is the tiny
setting the tests run. The meaning and allowed values of each field are documented once,
in ``experiments/framework/configuration.py`` (``python launch.py EXPERIMENT --help`` prints them).
"""

from __future__ import annotations

from typing import Any, Mapping

import ml_collections
from ml_collections import config_dict


def run(**overrides: Any) -> ml_collections.ConfigDict:
  """The fields every training experiment has (data, seed, budget, placement, cadence)."""
  c = ml_collections.ConfigDict()
  c.dataset = "mnist"
  c.data_dir = config_dict.placeholder(str)
  c.download = False
  c.seed = 0
  c.epochs = 25
  c.batch_size = 128
  c.latent_dim = 32
  c.parallel = "none"
  c.steps_per_chunk = 0
  c.checkpoint_every = 5
  c.checkpoint_every_steps = 0
  c.checkpoint_every_minutes = 0.0
  c.preprocess = "dynamic"
  return _update(c, overrides)


def model(**overrides: Any) -> ml_collections.ConfigDict:
  """``run`` plus an encoder/decoder family, its optimiser and its test-set evaluation."""
  c = run()
  c.learning_rate = 1e-3
  c.model = "mlp"
  c.hidden = (512, 256)
  c.activation = "relu"
  c.eval_every = 5
  c.eval_batch_size = 1000
  return _update(c, overrides)


def likelihood(c: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
  """Adds p(x|z)'s fields."""
  c.likelihood = "bernoulli"
  c.gaussian_std = 0.1
  return c


def latent(c: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
  """Adds the latent-variable model's prior and posterior (and stochastic layers above z)."""
  c.prior = "standard_normal"
  c.pseudo_inputs = 500
  c.posterior = "diagonal"
  c.flow_steps = 2
  c.upper_latents = ()
  c.upper_hidden = (100, 100)
  return c


def evaluators(c: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
  """Adds the final evaluations a VAE-family study chooses (``evaluators``) and theirs."""
  c.evaluators = "sample_quality"
  c.ll_samples = 5000
  c.ll_examples = 1000
  c.quality_samples = 10000
  return c


def budget(c: ml_collections.ConfigDict, **paper: Any) -> ml_collections.ConfigDict:
  """Adds ``budget`` (``machine``: the config's fields as written, sized for this project's
  2-core CPU; ``paper``: those fields with ``paper_budget``'s values, the paper's budget)
  and ``paper_budget`` (the fields the paper's budget sets; empty when the config has none).
  ``--config.budget=paper`` is resolved when the command line is parsed
  (``experiments.framework.configuration.apply_budget``)."""
  c.budget = "machine"
  c.paper_budget = ml_collections.ConfigDict(paper)
  return c


# The smoke variant's evaluation settings: every evaluator, on a few samples.
SMOKE_EVALUATORS = dict(evaluators="log_likelihood,sample_quality", ll_samples=20,
                        ll_examples=10, quality_samples=200)


def _update(c: ml_collections.ConfigDict, values: Mapping[str, Any]) -> ml_collections.ConfigDict:
  for name, value in values.items():
    if name not in c:
      raise KeyError(f"no field {name!r} to override")
    c[name] = value
  return c


def with_variant(c: ml_collections.ConfigDict, variant: str | None,
                 variants: Mapping[str, Mapping[str, Any]]) -> ml_collections.ConfigDict:
  """``c`` with the named variant's overrides; KeyError naming the known variants."""
  if variant is None:
    return c
  if variant not in variants:
    raise KeyError(f"unknown variant {variant!r}; known: {', '.join(variants)}")
  return _update(c, variants[variant])
