"""data/registry.py and data/datasets.py: entries by name, their capabilities and options,
a new data set as one entry, and no data-set name outside its entry."""

import ast
import pathlib

import numpy as np
import pytest

from genjax.data import registry, sources

ROOT = pathlib.Path(__file__).resolve().parents[1]


def test_built_in_entries_and_what_they_say():
  assert registry.names()[:3] == ("mnist", "fashion_mnist", "binarized_mnist")
  assert {"cifar10", "svhn_cropped", "celeb_a"} <= set(registry.names())
  mnist, binarized = registry.get("mnist"), registry.get("binarized_mnist")
  assert mnist.shape() == (28, 28, 1) and mnist.num_classes == 10 and mnist.reference == "mnist"
  assert not binarized.labelled and binarized.binary and binarized.reference == "mnist"
  assert binarized.splits == ("train", "valid", "test")
  assert registry.get("cifar10").shape() == registry.get("svhn_cropped").shape() == (32, 32, 3)
  celeb = registry.get("celeb_a")
  assert celeb.reference is None and celeb.num_attributes == 40
  assert celeb.shape() == (32, 32, 3) and celeb.shape({"image_size": 16}) == (16, 16, 3)
  assert "cifar10: 32x32x3, 10 classes; TFDS, npz." in registry.get("cifar10").describe()
  assert registry.labelled_names() == ("mnist", "fashion_mnist", "cifar10", "svhn_cropped")


def test_options_are_checked_by_name():
  celeb = registry.get("celeb_a")
  with pytest.raises(ValueError, match="dataset=celeb_a: no option size .*image_size"):
    celeb.resolve_options({"size": 8})
  with pytest.raises(ValueError, match="image_size=2: expected an integer >= 4"):
    celeb.resolve_options({"image_size": 2})
  with pytest.raises(ValueError, match="dataset=mnist: no option image_size .*none"):
    sources.load("mnist", image_size=16)


def test_register_refuses_a_taken_name_and_bad_splits():
  entry = registry.DatasetEntry("mnist", (28, 28, 1), provenance="", obtain="")
  with pytest.raises(ValueError, match="'mnist' is already registered"):
    registry.register(entry)
  with pytest.raises(ValueError, match="splits .* must include train"):
    registry.register(registry.DatasetEntry("x", (2, 2, 1), "", "", splits=("test",)), {})
  with pytest.raises(ValueError, match="has labels: its own classifier scores it"):
    registry.register(registry.DatasetEntry("x", (2, 2, 1), "", "", num_classes=2,
                                            scored_by="mnist"), {})
  with pytest.raises(ValueError, match="dataset='nope': expected one of mnist, "):
    registry.get("nope")


def test_a_new_data_set_is_one_entry(tmp_path, monkeypatch):
  """An offline entry of 6x4 colour images: its shape comes from the entry, and ``load``
  and the not-found message follow its sources."""
  arrays = np.random.default_rng(0).integers(0, 256, (5, 6, 4, 3)).astype(np.uint8)

  def read(path):
    images = arrays.astype(np.float32) / 255.0
    return registry.Dataset("tiny_colour", images, np.arange(5, dtype=np.int32) % 2,
                            images[:2], np.zeros(2, np.int32), source=f"offline:{path}")

  here = {"path": None}
  entry = registry.DatasetEntry(
      "tiny_colour", (6, 4, 3), provenance="made up", obtain="a tiny_colour.npz",
      num_classes=2, npz=("x_train", "y_train", "x_test", "y_test"),
      offline=registry.OfflineSource("the test's arrays", lambda: here["path"], read,
                                     install="set the path"))
  monkeypatch.setitem(registry.REGISTRY, entry.name, entry)
  with pytest.raises(sources.DataNotFoundError, match=r"tiny_colour.npz \(absent\); the "
                     r"test's arrays \(not installed\). To fix: run `set the path`"):
    sources.load("tiny_colour", str(tmp_path))
  np.savez(tmp_path / "tiny_colour.npz", x_train=arrays, y_train=np.arange(5) % 2,
           x_test=arrays[:2], y_test=np.zeros(2))
  from_npz = sources.load("tiny_colour", str(tmp_path))
  assert from_npz.train_images.shape == (5, 6, 4, 3) and from_npz.source.endswith(".npz")
  here["path"] = "somewhere"
  offline = sources.load("tiny_colour")
  np.testing.assert_array_equal(offline.train_images, from_npz.train_images)
  assert offline.source == "offline:somewhere"


def _string_constants(path: pathlib.Path) -> list[tuple[int, str]]:
  """String literals of a module that are not docstrings."""
  tree = ast.parse(path.read_text())
  docstrings = {id(n.body[0].value) for n in ast.walk(tree)
                if isinstance(n, (ast.Module, ast.FunctionDef, ast.ClassDef, ast.AsyncFunctionDef))
                and n.body and isinstance(n.body[0], ast.Expr)
                and isinstance(n.body[0].value, ast.Constant)}
  return [(n.lineno, n.value) for n in ast.walk(tree)
          if isinstance(n, ast.Constant) and isinstance(n.value, str) and id(n) not in docstrings]


def test_no_code_outside_its_entry_names_a_data_set():
  """Outside genjax/data/datasets.py (the entries, and dsprites.py, one entry's generator)
  and the config files (which choose a data
  set), no string literal of genjax/ or experiments/ is a data set's name or mentions one
  as ``dataset=NAME``: code asks the entry what it can do."""
  names = set(registry.names())
  allowed = {ROOT / "genjax" / "data" / "datasets.py",   # the entries
             ROOT / "genjax" / "data" / "dsprites.py"}   # one entry's generator
  found = []
  for path in sorted([*ROOT.glob("genjax/**/*.py"), *ROOT.glob("experiments/**/*.py")]):
    if path in allowed or "configs" in path.parts:
      continue
    for line, text in _string_constants(path):
      if text in names or any(f"dataset={n}" in text for n in names):
        found.append(f"{path.relative_to(ROOT)}:{line}: {text!r}")
  assert not found, "data-set names outside their entries:\n" + "\n".join(found)
