"""io/plotting.py: the traversal figure's layout, read back from the PNG."""

import matplotlib.pyplot as plt
import numpy as np
import pytest

from genjax.io import plotting


def _runs(mask):
  """Number of runs of True in a 1-D boolean array."""
  return int(np.sum(mask[1:] & ~mask[:-1]) + mask[0])


def test_save_traversals_lays_out_one_row_per_latent(tmp_path):
  dims, steps, h, w = 3, 5, 8, 8
  red = np.zeros((dims, steps, h, w, 3), np.float32)
  red[..., 0] = 1.0   # a colour no text or padding has
  path = str(tmp_path / "traversals.png")
  plotting.save_traversals(path, red, values=np.linspace(-2, 2, steps),
                           factor_labels=["shape", None, "pos_x"], title="traversals")
  png = plt.imread(path)[..., :3]
  cells = (png[..., 0] > 0.9) & (png[..., 1] < 0.1) & (png[..., 2] < 0.1)
  rows, cols = cells.any(1), cells.any(0)
  assert _runs(rows) == dims and _runs(cols) == steps
  # The cells keep the grid's pixel aspect: (D(H+1) - 1) / (steps(W+1) - 1) = 26 / 44.
  extent = np.ptp(np.nonzero(rows)[0]) + 1, np.ptp(np.nonzero(cols)[0]) + 1
  np.testing.assert_allclose(extent[0] / extent[1], 26 / 44, rtol=0.05)
  # Row labels sit left of the cells, the value labels below them, the title above.
  left, top, bottom = np.nonzero(cols)[0][0], np.nonzero(rows)[0][0], np.nonzero(rows)[0][-1]
  assert png[:, :left].min() < 0.5 and png[bottom + 2:].min() < 0.5 and png[:top].min() < 0.5

  grey = np.full((2, 4, 6, 6, 1), 0.5, np.float32)   # one channel, no labels but "z_i"
  plotting.save_traversals(str(tmp_path / "grey.png"), grey)
  png = plt.imread(str(tmp_path / "grey.png"))[..., :3]
  assert png.shape[1] > png.shape[0]
  with pytest.raises(ValueError, match="images must be \\[num_latents, steps"):
    plotting.save_traversals(path, red[0])
  with pytest.raises(ValueError, match="factor_labels must have 3 entries"):
    plotting.save_traversals(path, red, factor_labels=["shape"])
