"""Session-wide test setup."""

import os

import pytest


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
