"""The framework every study runs on, apart from the studies themselves: ``configuration``
(config files, the shared fields, validation, ``--help``), ``runner`` (data, placement,
resume, the fused fit loop, checkpoints, metrics, run info) and ``evaluators`` (by name)."""
