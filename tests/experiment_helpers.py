"""Shared by the experiment end-to-end tests: tiny labelled data on disk, and one run of an
experiment on the config its command line resolves to, checking that it reads every field
it accepts and that every JSON file in its workdir is strict JSON (no NaN or Infinity)."""

import json
import pathlib
from types import ModuleType

import numpy as np

from experiments.framework import configuration
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
  checked = assert_strict_json(invocation.config.workdir)
  assert pathlib.Path(invocation.config.workdir, "results.json") in checked, checked
  return results


def _refuse_constant(name: str):
  raise ValueError(f"{name} is not JSON (RFC 8259): a figure must be a number or null")


def strict_loads(text: str):
  """``json.loads`` that refuses NaN, Infinity and -Infinity, as strict parsers do."""
  return json.loads(text, parse_constant=_refuse_constant)


def assert_strict_json(workdir) -> list[pathlib.Path]:
  """Parses every .json and .jsonl file under ``workdir`` with ``strict_loads`` (each line
  of a .jsonl); fails naming the file when one holds NaN or Infinity. Returns the files."""
  files = sorted(p for p in pathlib.Path(workdir).rglob("*")
                 if p.suffix in (".json", ".jsonl") and p.is_file())
  for path in files:
    text = path.read_text()
    docs = text.splitlines() if path.suffix == ".jsonl" else [text]
    for i, doc in enumerate(d for d in docs if d.strip()):
      try:
        strict_loads(doc)
      except ValueError as e:
        raise AssertionError(f"{path} (document {i}) is not strict JSON: {e}") from None
  return files
