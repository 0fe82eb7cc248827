"""Data sets and their preprocessing: ``sources`` (data sets as arrays, found offline),
``transforms`` (binarization, per batch or once) and ``subsets`` (balanced labelled
subsets, rows repeated to a length)."""
