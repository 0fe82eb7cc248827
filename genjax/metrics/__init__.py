"""Evaluation beyond the ELBO.

``likelihood`` (importance-sampled log-likelihood, active units, KL per dimension, the
signal-to-noise ratio of gradient estimators), ``detection`` (outlier-detection scores:
AUROC, average precision; distances to the data: is a decoded point on the manifold?),
``sample_quality`` (sample quality on one scale for every model: Frechet distance and
score in the feature space of a reference classifier, class histogram, conditional
accuracy) and ``reference_classifier`` (that classifier, trained once and cached).
"""
