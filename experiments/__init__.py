"""Experiment scripts: ``python launch.py EXPERIMENT [flags]`` runs ``experiments/EXPERIMENT.py``."""
