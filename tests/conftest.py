"""Session-wide test setup.

Full float32 matrix products and convolutions everywhere: the tests compare formulas with
references at rtol 1e-5, and JAX's default on NVIDIA GPUs (TF32 inputs) misses that by up to
1e-4 (bench/RESULTS.md, "On a GPU"). On the CPU this changes nothing. Subprocesses inherit
it through the environment.
"""

import os

import jax
import pytest

os.environ.setdefault("JAX_DEFAULT_MATMUL_PRECISION", "float32")
jax.config.update("jax_default_matmul_precision", os.environ["JAX_DEFAULT_MATMUL_PRECISION"])


@pytest.fixture(scope="session", autouse=True)
def reference_classifier_cache(tmp_path_factory):
  """Reference classifiers (genjax.metrics.reference_classifier) trained by tests are
  cached in a fresh directory, never in the user's ~/.cache/genjax; subprocesses inherit it."""
  path = str(tmp_path_factory.mktemp("genjax_cache"))
  old = os.environ.get("GENJAX_CACHE")
  os.environ["GENJAX_CACHE"] = path
  yield path
  if old is None:
    os.environ.pop("GENJAX_CACHE", None)
  else:
    os.environ["GENJAX_CACHE"] = old
