"""losses/semi_supervised.py: the classifier's cross-entropy and the M2 loss against direct
computations."""

import jax
import jax.numpy as jnp
import numpy as np
import optax

from genjax import likelihoods, models
from genjax.losses import semi_supervised
from genjax.models import protocol

from tests import regression_helpers as reg
from tests.loss_helpers import IMG, _sigmoid


def test_classifier_loss_is_softmax_cross_entropy():
  clf = models.build_classifier("mlp", 3, (8,), num_classes=4)
  x = jax.random.uniform(jax.random.PRNGKey(0), (6, *IMG))
  params = clf.init(jax.random.PRNGKey(1), x)["params"]
  labels = jnp.array([0, 1, 2, 3, 0, 1])
  loss, m = semi_supervised.make_classifier_loss(clf)(params, {"image": x, "label": labels}, None)
  logits = np.asarray(clf.apply({"params": params}, x), np.float64)
  log_p = logits - np.log(np.exp(logits).sum(-1, keepdims=True))
  np.testing.assert_allclose(loss, -log_p[np.arange(6), labels].mean(), rtol=1e-5)
  np.testing.assert_allclose(m["error"], (logits.argmax(-1) != labels).mean())


def test_m2_loss_matches_a_direct_computation():
  """On a tiny M2 whose decoder ignores z, L(x, y) has no noise: check every term by hand.

  L(x, y) = log p(x|y) - KL(q(z|x, y) || N(0, I)) - log K;
  U(x) = sum_y q(y|x) L(x, y) + H(q(y|x));
  loss = -mean L(x_l, y_l) - mean U(x_u) + alpha * mean CE(q(y_l|x_l)).
  """
  k, latent = 3, 2
  m2 = models.build_m2("mlp", IMG, latent, (8,), 1, num_classes=k)
  x_u = (jax.random.uniform(jax.random.PRNGKey(0), (4, *IMG)) > 0.5).astype(jnp.float32)
  x_l = (jax.random.uniform(jax.random.PRNGKey(1), (4, *IMG)) > 0.5).astype(jnp.float32)
  y_l = jnp.array([0, 2, 1, 2])
  params = m2.init(jax.random.PRNGKey(2), x_u)["params"]
  first = params["decoder"]["Dense_0"]
  params["decoder"]["Dense_0"] = {**first, "kernel": first["kernel"].at[:latent].set(0.0)}
  lik = likelihoods.make_likelihood("bernoulli")
  alpha = 2.5
  batch = {"image": x_u, "labelled_image": x_l, "label": y_l}
  for rng in (jax.random.PRNGKey(3), jax.random.split(jax.random.PRNGKey(3), 4)):
    loss, m = semi_supervised.make_m2_loss(m2, lik, alpha)(params, batch, rng)

    def bound(x, y):  # by hand, for one example and one class
      onehot = np.eye(k)[y][None]
      q = protocol.posterior(m2, params, x[None], onehot)
      mean, log_var = q.mean, q.log_var
      logits = protocol.decode(m2, params, mean, onehot)   # z is ignored
      p = _sigmoid(logits[0])
      log_px = (np.asarray(x) * np.log(p) + (1 - np.asarray(x)) * np.log(1 - p)).sum()
      mean, log_var = np.asarray(mean, np.float64), np.asarray(log_var, np.float64)
      kl = 0.5 * (mean ** 2 + np.exp(log_var) - 1 - log_var).sum()
      return log_px - kl - np.log(k)

    def q(x):
      logits = np.asarray(m2.apply({"params": params}, x, method=m2.classify), np.float64)
      return np.exp(logits) / np.exp(logits).sum(-1, keepdims=True)

    bound_l = np.array([bound(x_l[i], int(y_l[i])) for i in range(4)])
    q_u = q(x_u)
    bound_u = np.array([sum(q_u[i, y] * bound(x_u[i], y) for y in range(k))
                        - (q_u[i] * np.log(q_u[i])).sum() for i in range(4)])
    ce = -np.log(q(x_l)[np.arange(4), y_l])
    np.testing.assert_allclose(m["labelled_bound"], bound_l.mean(), rtol=1e-4)
    np.testing.assert_allclose(m["unlabelled_bound"], bound_u.mean(), rtol=1e-4)
    np.testing.assert_allclose(m["ce"], ce.mean(), rtol=1e-4)
    np.testing.assert_allclose(loss, -bound_l.mean() - bound_u.mean() + alpha * ce.mean(),
                               rtol=1e-4)


def test_m2_loss_reproduces_the_pre_protocol_numbers():
  """(loss, global gradient norm, unlabelled bound) of a tiny M2, computed with the
  pre-protocol implementation (``tests/regression_helpers.py``): M2 through the protocol
  must reproduce them."""
  m2, params, batch = reg.m2()
  expected = {"one_key": (1186.89478, 726.929688, -602.848572),
              "per_example": (1166.25732, 429.0271, -589.580627)}
  for key_kind, values in expected.items():
    rng = reg.keys()[key_kind]
    rng = rng if rng.ndim == 1 else rng[:4]
    loss_fn = semi_supervised.make_m2_loss(m2, reg.bernoulli(), 2.5)
    (loss, m), grads = jax.value_and_grad(loss_fn, has_aux=True)(params, batch, rng)
    np.testing.assert_allclose(np.array((loss, optax.global_norm(grads), m["unlabelled_bound"]),
                                        np.float64), values, rtol=reg.RTOL, err_msg=key_kind)
