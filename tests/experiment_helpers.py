"""Shared by the experiment end-to-end tests: tiny labelled data on disk, and one run of an
experiment under parsed flags."""

import pathlib
from types import ModuleType

from absl import flags
import numpy as np

from genjax import data


def write_synthetic_mnist(path: pathlib.Path, num_train: int, num_test: int,
                          seed: int = 0) -> str:
  """Writes ``path/mnist.npz`` (the keys of ../shared/data/mnist.npz) holding
  ``data.synthetic``'s ten blob classes as uint8 images; returns ``str(path)``."""
  ds = data.synthetic(num_train, num_test, seed=seed)
  as_bytes = lambda x: np.rint(x[..., 0] * 255).astype(np.uint8)   # noqa: E731
  np.savez(path / "mnist.npz", x_train=as_bytes(ds.train_images), y_train=ds.train_labels,
           x_test=as_bytes(ds.test_images), y_test=ds.test_labels)
  return str(path)


def run_experiment(module: ModuleType, argv: list[str]) -> dict:
  """``module.run`` on the config parsed from ``argv``; the flags are reset either way."""
  flags.FLAGS.unparse_flags()
  flags.FLAGS([module.__name__, *argv])
  try:
    return module.run(module.config_from_flags())
  finally:
    flags.FLAGS.unparse_flags()
