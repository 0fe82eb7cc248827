"""The reference classifier that puts every model's samples on one scale: a small
classifier trained once on the data set's own labelled images (in place of Inception,
whose weights cannot be downloaded here) and cached, keyed by a hash of its training
data and settings. ``metrics.sample_quality`` scores samples in its feature space."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from typing import Any

from absl import logging
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax

from genjax import models
from genjax.io import progress
from genjax.losses import semi_supervised
from genjax.training import checkpoint, loop
from genjax.training import state as train_state
from genjax.training import step as train_step

REFERENCE_ARCHITECTURE = {"model": "mlp", "latent_dim": 128, "hidden": (512, 256), "epochs": 5,
                          "batch_size": 128, "learning_rate": 1e-3, "seed": 0}
CACHE_ENV = "GENJAX_CACHE"


@dataclasses.dataclass(frozen=True)
class ReferenceClassifier:
  """The classifier that puts every model's samples on one scale.

  ``model`` is a ``models.Classifier``; its features are the encoder's code (the layer
  before the linear head). ``test_accuracy`` is on the data set's test split.
  """
  model: nn.Module
  params: Any
  test_accuracy: float
  dataset: str
  fingerprint: str

  def features_and_probs(self, images: np.ndarray, batch_size: int = 500
                         ) -> tuple[np.ndarray, np.ndarray]:
    """images [n, H, W, C] in [0, 1] -> (features [n, F], class probabilities [n, K])."""
    return _features_and_probs(self.model, self.params, np.asarray(images, np.float32),
                               batch_size)


def _features_and_probs(model: nn.Module, params: Any, images: np.ndarray, batch_size: int):
  @jax.jit
  def apply(x):
    code = model.encoder.apply({"params": params["encoder"]}, x)
    logits = model.apply({"params": params}, x)
    return code, jax.nn.softmax(logits)

  n = len(images)
  pad = -n % batch_size
  padded = np.concatenate([images, np.zeros((pad, *images.shape[1:]), images.dtype)])
  outs = []
  with progress.bar(len(padded) // batch_size, "classifier features", unit="batch",
                    delay=progress.EVAL_DELAY_S) as shown:
    for i in range(0, len(padded), batch_size):
      outs.append(jax.device_get(apply(padded[i:i + batch_size])))
      shown.update(1)
  return (np.concatenate([o[0] for o in outs])[:n], np.concatenate([o[1] for o in outs])[:n])


def default_cache_dir() -> str:
  """``$GENJAX_CACHE``, else ``~/.cache/genjax``."""
  return os.environ.get(CACHE_ENV) or os.path.join(os.path.expanduser("~"), ".cache", "genjax")


def _fingerprint(images: np.ndarray, labels: np.ndarray, settings: dict) -> str:
  digest = hashlib.sha256()
  digest.update(np.ascontiguousarray(images).tobytes())
  digest.update(np.ascontiguousarray(labels).tobytes())
  digest.update(json.dumps(settings, sort_keys=True).encode())
  return digest.hexdigest()[:16]


def reference_classifier(dataset_name: str, train_images: np.ndarray, train_labels: np.ndarray,
                         test_images: np.ndarray, test_labels: np.ndarray,
                         cache_dir: str | None = None, **overrides: Any) -> ReferenceClassifier:
  """The data set's reference classifier: restored from the cache, else trained and cached.

  Trains ``REFERENCE_ARCHITECTURE`` (an MLP ``Classifier`` 784-512-256-128-K: 98.0% test
  accuracy on MNIST after 5 epochs, ~20 s on two CPU cores; ``overrides`` change its
  entries, e.g. ``epochs``) with softmax cross-entropy on the labelled training images.
  The cache entry ``<cache_dir>/reference_classifier/<dataset>-<fingerprint>/`` is keyed
  by a hash of the training data and the settings, so a different data source or
  architecture trains anew. Labels must be class indices 0..K-1 (no unlabelled data).
  """
  settings = {**REFERENCE_ARCHITECTURE, **overrides}
  unknown = set(settings) - set(REFERENCE_ARCHITECTURE)
  if unknown:
    raise ValueError(f"reference_classifier: unknown settings {sorted(unknown)}; expected "
                     f"some of {sorted(REFERENCE_ARCHITECTURE)}")
  train_labels = np.asarray(train_labels, np.int32)
  if train_labels.min() < 0:
    raise ValueError(f"reference_classifier: data set {dataset_name!r} has no labels")
  num_classes = int(max(train_labels.max(), np.max(test_labels))) + 1
  settings_key = {**settings, "hidden": list(settings["hidden"]), "num_classes": num_classes}
  fingerprint = _fingerprint(train_images, train_labels, settings_key)
  directory = os.path.join(cache_dir or default_cache_dir(), "reference_classifier",
                           f"{dataset_name}-{fingerprint}")
  model = models.build_classifier(settings["model"], settings["latent_dim"], settings["hidden"],
                                  num_classes)
  init_rng, state_rng, data_rng = jax.random.split(jax.random.PRNGKey(settings["seed"]), 3)
  params = model.init(init_rng, jnp.zeros((1, *train_images.shape[1:]), jnp.float32))["params"]
  optimizer = optax.adam(settings["learning_rate"])
  state = train_state.create_train_state(params, optimizer, state_rng)
  manager = checkpoint.make_manager(directory, max_to_keep=1)
  state, restored = checkpoint.restore_latest(manager, state)
  if restored is None:
    logging.info("training the reference classifier of %s (cached in %s)", dataset_name,
                 directory)
    step = train_step.make_train_step(semi_supervised.make_classifier_loss(model), optimizer)
    batch_size = min(settings["batch_size"], len(train_images))
    steps_per_epoch = loop.steps_per_epoch(len(train_images), batch_size)
    with progress.bar(settings["epochs"] * steps_per_epoch,
                      f"reference classifier ({dataset_name})", unit="step") as shown:
      for state, _ in loop.fit(state, step, {"image": train_images, "label": train_labels},
                               batch_size=batch_size, num_epochs=settings["epochs"],
                               data_rng=data_rng):
        shown.update(steps_per_epoch)   # fit's default chunk: one epoch
    checkpoint.save(manager, state, int(state.step))
  manager.close()
  _, probs = _features_and_probs(model, state.params, np.asarray(test_images, np.float32), 500)
  accuracy = float(np.mean(probs.argmax(-1) == np.asarray(test_labels)))
  return ReferenceClassifier(model, state.params, accuracy, dataset_name, fingerprint)
