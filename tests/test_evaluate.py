"""evaluate.py: importance-sampled log p(x) against an exact marginal, active units, SNR."""

import jax
import numpy as np
import pytest

from genjax import distributions as D
from genjax import evaluate, objectives, train
from tests import linear_gaussian as lg


@pytest.fixture(scope="module")
def setup():
  return lg.exact_setup()


def _likelihood():
  return objectives.make_likelihood("gaussian_fixed", gaussian_std=lg.NOISE_STD)


def test_importance_sampled_log_likelihood_matches_exact_within_its_standard_error(setup):
  model, exact, batch, log_px = setup
  params = lg.perturbed(exact, shift=0.5, log_var_shift=0.7)  # a wider q: a good proposal
  est, se = evaluate.importance_sampled_log_likelihood(
      model, _likelihood(), params, batch["image"], jax.random.PRNGKey(0), 5000, chunk_size=500)
  est, se = np.asarray(est, np.float64), np.asarray(se, np.float64)
  assert np.all(se > 1e-4) and np.all(se < 0.1)
  assert np.all(np.abs(est - log_px) < 4 * se + 1e-3), (est, log_px, se)
  # Far from q = p(z|x), a single-sample ELBO is clearly worse than the estimate.
  elbo = float(lg.closed_form_elbo(params, batch))
  assert elbo < np.mean(est) - 0.5


def test_importance_sampling_with_the_exact_posterior_is_exact(setup):
  model, exact, batch, log_px = setup
  est, se = evaluate.importance_sampled_log_likelihood(
      model, _likelihood(), exact, batch["image"], jax.random.PRNGKey(1), 100, chunk_size=50)
  np.testing.assert_allclose(est, log_px, atol=2e-3)
  assert np.all(np.asarray(se) < 1e-3)


def test_log_likelihood_metrics_plug_into_the_eval_loop(setup):
  model, exact, batch, log_px = setup
  metric = evaluate.make_log_likelihood_fn(model, _likelihood(), num_samples=100, chunk_size=50)
  out = train.make_eval_fn(metric)(exact, *train.pad_batches(batch, 3), jax.random.PRNGKey(2))
  np.testing.assert_allclose(out["log_px"], np.mean(log_px), atol=2e-3)
  with pytest.raises(ValueError, match="num_samples=100 must divide by chunk_size=30"):
    evaluate.importance_sampled_log_likelihood(model, _likelihood(), exact, batch["image"],
                                               jax.random.PRNGKey(0), 100, chunk_size=30)


def test_active_units_counts_dimensions_whose_mean_varies():
  rng = np.random.default_rng(0)
  means = rng.normal(size=(5000, 4)) * np.array([1.0, 0.05, 0.3, 0.0])  # var 1, .0025, .09, 0
  assert evaluate.active_units(means) == 2
  assert evaluate.active_units(means, threshold=0.001) == 3


def test_posterior_statistics(setup):
  model, exact, batch, _ = setup
  x = np.repeat(np.asarray(batch["image"]), 5, axis=0)
  stats = evaluate.posterior_statistics(model, exact, x, batch_size=7)
  mean, log_var = model.apply({"params": exact}, x, method=model.encode)
  np.testing.assert_allclose(
      stats["kl_per_dim"],
      np.asarray(D.kl_diag_gaussian_standard_normal(mean, log_var, event_ndims=0)).mean(0),
      rtol=1e-5)
  np.testing.assert_allclose(stats["mean_cov"], np.asarray(mean).var(0), rtol=1e-4)
  assert stats["active_units"] == int(np.sum(np.asarray(mean).var(0) > 0.01))


def test_gradient_snr_separates_estimators_at_the_optimum(setup):
  model, exact, batch, _ = setup
  stl = objectives.make_elbo_loss(model, _likelihood(), kl="mc", estimator="stl")
  reparam = objectives.make_elbo_loss(model, _likelihood(), kl="mc")
  a = evaluate.gradient_snr(stl, exact, batch, jax.random.PRNGKey(0), num_draws=64)
  b = evaluate.gradient_snr(reparam, exact, batch, jax.random.PRNGKey(0), num_draws=64)
  assert set(a) == {"encoder_grad_snr", "encoder_grad_var", "decoder_grad_snr",
                    "decoder_grad_var"}
  assert a["encoder_grad_var"] < 1e-9 < 1e-2 < b["encoder_grad_var"]
  np.testing.assert_allclose(a["decoder_grad_var"], b["decoder_grad_var"], rtol=1e-4)


def test_detection_scores_on_separable_and_identical_cases():
  rng = np.random.default_rng(0)
  normal = rng.random(50)
  separable = evaluate.detection_scores(normal, normal.max() + 1 + rng.random(20))
  np.testing.assert_allclose([separable["auroc"], separable["ap"]], [1.0, 1.0], rtol=1e-12)
  identical = evaluate.detection_scores(np.full(50, 3.0), np.full(20, 3.0))
  assert identical["auroc"] == 0.5
  np.testing.assert_allclose(identical["ap"], 20 / 70)   # the share of anomalies
  # Against the pairwise definition: P(score_anomaly > score_normal) + 1/2 P(tie).
  a, b = rng.integers(0, 5, 30).astype(float), rng.integers(1, 6, 40).astype(float)
  pairs = (b[:, None] > a[None]).mean() + 0.5 * (b[:, None] == a[None]).mean()
  np.testing.assert_allclose(evaluate.detection_scores(a, b)["auroc"], pairs)


def test_nearest_neighbour_distance_against_brute_force():
  rng = np.random.default_rng(1)
  refs, queries = rng.random((50, 3, 3, 1)), rng.random((7, 3, 3, 1))
  brute = ((queries.reshape(7, 1, -1) - refs.reshape(1, 50, -1)) ** 2).sum(-1).min(1)
  np.testing.assert_allclose(evaluate.nearest_neighbour_distance(queries, refs, chunk=3), brute,
                             rtol=1e-4, atol=1e-5)
  np.testing.assert_allclose(evaluate.nearest_neighbour_distance(refs[:4], refs), 0, atol=1e-5)


# --- Sample quality on the reference classifier's scale ------------------------------------


def test_frechet_distance_against_exact_identities():
  rng = np.random.default_rng(0)
  a = rng.normal(size=(500, 4)) @ rng.normal(size=(4, 4)) + 1.0
  shift = np.array([1.0, -2.0, 0.5, 0.0])
  np.testing.assert_allclose(evaluate.frechet_distance(a, a), 0.0, atol=1e-6)
  # Same covariance, shifted mean: d^2 = ||shift||^2.
  np.testing.assert_allclose(evaluate.frechet_distance(a, a + shift), shift @ shift, rtol=1e-6)
  # b = s a: S_b = s^2 S_a, (S_a S_b)^1/2 = s S_a, so d^2 = (1 - s)^2 (||mu_a||^2 + Tr S_a).
  s = 3.0
  expected = (1 - s) ** 2 * (np.sum(a.mean(0) ** 2) + np.trace(np.cov(a, rowvar=False)))
  np.testing.assert_allclose(evaluate.frechet_distance(a, s * a), expected, rtol=1e-6)
  # One dimension: (m_a - m_b)^2 + (sd_a - sd_b)^2.
  x, y = rng.normal(0, 1, (300, 1)), rng.normal(2, 3, (400, 1))
  np.testing.assert_allclose(evaluate.frechet_distance(x, y),
                             (x.mean() - y.mean()) ** 2 + (x.std(ddof=1) - y.std(ddof=1)) ** 2,
                             rtol=1e-6)


def test_classifier_score_histogram_and_conditional_accuracy():
  confident = np.eye(5)[np.arange(100) % 5]
  np.testing.assert_allclose(evaluate.classifier_score(confident), 5.0, rtol=1e-9)
  np.testing.assert_allclose(evaluate.classifier_score(np.full((7, 5), 0.2)), 1.0)
  probs = np.random.default_rng(1).dirichlet(np.ones(4), 50)
  marginal = probs.mean(0)
  direct = np.exp(np.mean([np.sum(p * np.log(p / marginal)) for p in probs]))
  np.testing.assert_allclose(evaluate.classifier_score(probs), direct, rtol=1e-9)
  collapsed = np.eye(5)[np.zeros(100, int)]
  np.testing.assert_allclose(evaluate.class_histogram(collapsed), [1, 0, 0, 0, 0])
  assert evaluate.mode_coverage(evaluate.class_histogram(collapsed)) == {
      "sample_modes": 1, "sample_class_kl": pytest.approx(np.log(5))}
  assert evaluate.mode_coverage(evaluate.class_histogram(confident))["sample_modes"] == 5
  assert evaluate.conditional_accuracy(confident, np.arange(100) % 5) == 1.0
  assert evaluate.conditional_accuracy(confident, (np.arange(100) + 1) % 5) == 0.0


def test_reference_classifier_fd_small_between_halves_large_against_noise(tmp_path, monkeypatch):
  from genjax import data
  d = data.synthetic(num_train=512, num_test=400)
  args = (d.name, d.train_images, d.train_labels, d.test_images, d.test_labels, str(tmp_path))
  reference = evaluate.reference_classifier(*args, epochs=3)
  assert reference.test_accuracy > 0.7     # the blobs of a few classes overlap
  half = len(d.test_images) // 2
  quality = evaluate.sample_quality(reference, d.test_images[:half], d.test_images[half:],
                                    conditioned_on=d.test_labels[:half],
                                    real_baseline=d.train_images[:half])
  noise = np.random.default_rng(0).random(d.test_images[:half].shape).astype(np.float32)
  noisy = evaluate.sample_quality(reference, noise, d.test_images[half:])
  assert noisy["sample_fd"] > 20 * max(quality["sample_fd"], quality["data_fd"])
  assert quality["conditional_accuracy"] > 0.7 and quality["sample_score"] > 4
  assert noisy["sample_modes"] < quality["sample_modes"] == 10
  # The second call restores the cached classifier instead of training again.
  monkeypatch.setattr(train, "fit", lambda *a, **k: pytest.fail("trained again"))
  again = evaluate.reference_classifier(*args, epochs=3)
  assert again.fingerprint == reference.fingerprint
  np.testing.assert_allclose(again.test_accuracy, reference.test_accuracy)
  with pytest.raises(ValueError, match="unknown settings"):
    evaluate.reference_classifier(*args, width=3)
