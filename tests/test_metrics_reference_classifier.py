"""metrics/reference_classifier.py: the reference classifier trained on tiny data, its
cache, and sample quality on its scale."""

import numpy as np
import pytest

from genjax.metrics import reference_classifier, sample_quality
from genjax.training import loop


def test_reference_classifier_fd_small_between_halves_large_against_noise(tmp_path, monkeypatch):
  from genjax.data import sources
  d = sources.synthetic(num_train=512, num_test=400)
  args = (d.name, d.train_images, d.train_labels, d.test_images, d.test_labels, str(tmp_path))
  reference = reference_classifier.reference_classifier(*args, epochs=3)
  assert reference.test_accuracy > 0.7     # the blobs of a few classes overlap
  half = len(d.test_images) // 2
  quality = sample_quality.sample_quality(reference, d.test_images[:half], d.test_images[half:],
                                          conditioned_on=d.test_labels[:half],
                                          real_baseline=d.train_images[:half])
  noise = np.random.default_rng(0).random(d.test_images[:half].shape).astype(np.float32)
  noisy = sample_quality.sample_quality(reference, noise, d.test_images[half:])
  assert noisy["sample_fd"] > 20 * max(quality["sample_fd"], quality["data_fd"])
  assert quality["conditional_accuracy"] > 0.7 and quality["sample_score"] > 4
  assert noisy["sample_modes"] < quality["sample_modes"] == 10
  # The second call restores the cached classifier instead of training again.
  monkeypatch.setattr(loop, "fit", lambda *a, **k: pytest.fail("trained again"))
  again = reference_classifier.reference_classifier(*args, epochs=3)
  assert again.fingerprint == reference.fingerprint
  np.testing.assert_allclose(again.test_accuracy, reference.test_accuracy)
  with pytest.raises(ValueError, match="unknown settings"):
    reference_classifier.reference_classifier(*args, width=3)
