"""Shared by the experiment end-to-end tests: tiny labelled data on disk, and one run of an
experiment on the config its command line resolves to, checking that it reads every field
it accepts."""

import pathlib
from types import ModuleType

import numpy as np

from experiments import configuration
from genjax.data import sources


def write_synthetic_mnist(path: pathlib.Path, num_train: int, num_test: int,
                          seed: int = 0) -> str:
  """Writes ``path/mnist.npz`` (the keys of ../shared/data/mnist.npz) holding
  ``sources.synthetic``'s ten blob classes as uint8 images; returns ``str(path)``."""
  ds = sources.synthetic(num_train, num_test, seed=seed)
  as_bytes = lambda x: np.rint(x[..., 0] * 255).astype(np.uint8)   # noqa: E731
  np.savez(path / "mnist.npz", x_train=as_bytes(ds.train_images), y_train=ds.train_labels,
           x_test=as_bytes(ds.test_images), y_test=ds.test_labels)
  return str(path)


def run_experiment(module: ModuleType, argv: list[str]) -> dict:
  """``module.run`` on the config that ``launch.py EXPERIMENT *argv`` resolves to.

  The run sees a ``configuration.TrackedConfig``; after it, every field the config has
  must have been read, except those the experiment reads only under a condition that is
  false here (``READ_IF``): no setting is accepted and silently ignored.
  """
  name = module.__name__.rsplit(".", 1)[-1]
  read_if = getattr(module, "READ_IF", {})
  invocation = configuration.parse(name, argv, read_if)
  tracked = configuration.TrackedConfig(invocation.config)
  results = module.run(tracked)
  unread = (set(invocation.config.keys()) - {"workdir"} - tracked.read
            - configuration.unread_fields(invocation.config, read_if))
  assert not unread, f"{name} accepted these fields and did not read them: {sorted(unread)}"
  return results
