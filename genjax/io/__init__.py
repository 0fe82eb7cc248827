"""What a run writes: its workdir files (``workdir``: config, metrics, results) and its
figures (``plotting``)."""
