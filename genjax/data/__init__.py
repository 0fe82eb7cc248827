"""Data sets and their preprocessing: ``registry`` (one ``DatasetEntry`` per data set; the
built-in ones, in ``datasets``, are registered on import), ``sources`` (``load``: a data
set as arrays, found offline), ``readers`` (npz, TFDS), ``transforms`` (binarization, per
batch or once), ``subsets`` (balanced labelled subsets, rows repeated to a length) and
``dsprites`` (a generated data set with known factors of variation)."""

from genjax.data import datasets as _datasets  # noqa: F401  (registers the built-in entries)
