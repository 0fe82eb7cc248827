"""Shared by test_losses_autoencoder.py and test_losses_semi_supervised.py: a tiny image
shape and a float64 sigmoid."""

import numpy as np

IMG = (4, 4, 1)


def _sigmoid(a):
  return 1.0 / (1.0 + np.exp(-np.asarray(a, np.float64)))
