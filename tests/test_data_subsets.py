"""data/subsets.py: balanced labelled subsets and rows repeated to a length."""

import numpy as np
import pytest

from genjax.data import sources, subsets


def test_labelled_subset_is_balanced_and_depends_on_the_seed():
  labels = np.repeat(np.arange(10), 30)[np.random.default_rng(0).permutation(300)]
  idx = subsets.labelled_subset(labels, 5, seed=0)
  assert len(idx) == 50 and len(set(idx)) == 50
  np.testing.assert_array_equal(np.bincount(labels[idx]), np.full(10, 5))
  assert not np.array_equal(idx, subsets.labelled_subset(labels, 5, seed=1))
  np.testing.assert_array_equal(idx, subsets.labelled_subset(labels, 5, seed=0))
  with pytest.raises(ValueError, match="labels_per_class=31: class 0 has only 30"):
    subsets.labelled_subset(labels, 31, seed=0)
  with pytest.raises(ValueError, match="no labels"):
    subsets.labelled_subset(np.full(10, sources.NO_LABEL), 1, seed=0)


def test_repeat_to_cycles_rows():
  out = subsets.repeat_to({"a": np.arange(3), "b": np.arange(6).reshape(3, 2)}, 7)
  np.testing.assert_array_equal(out["a"], [0, 1, 2, 0, 1, 2, 0])
  np.testing.assert_array_equal(out["b"][3], [0, 1])
