"""objectives.py: the ELBO against a linear-Gaussian model whose log p(x) is exact."""

import chex
import jax
import jax.flatten_util
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import stats

from genjax import distributions as D
from genjax import objectives

from tests import linear_gaussian as lg
from tests.linear_gaussian import DIM_X, NOISE_STD


@pytest.fixture(scope="module")
def linear_gaussian():
  """The model, the exact posterior's params, data and its exact log p(x)."""
  return lg.exact_setup()


def _likelihood():
  return objectives.make_likelihood("gaussian_fixed", gaussian_std=NOISE_STD)


def _repeat(batch, n):
  return {"image": jnp.repeat(batch["image"], n, axis=0)}


def test_elbo_with_exact_posterior_equals_log_px_for_every_sample(linear_gaussian):
  """With q = p(z|x), log p(x,z) - log q(z|x) = log p(x) for every z (MC KL)."""
  model, params, batch, log_px = linear_gaussian
  terms = objectives.make_elbo_terms(model, _likelihood(), kl="mc")(
      params, _repeat(batch, 50), jax.random.PRNGKey(0))
  elbo = np.asarray(objectives.elbo_metrics(terms)["elbo"]).reshape(4, 50)
  np.testing.assert_allclose(elbo, np.repeat(log_px[:, None], 50, 1), atol=2e-3)


def test_analytic_kl_elbo_expectation_equals_log_px_at_exact_posterior(linear_gaussian):
  model, params, batch, log_px = linear_gaussian
  n = 40_000
  terms = objectives.make_elbo_terms(model, _likelihood(), kl="analytic")(
      params, _repeat(batch, n), jax.random.PRNGKey(1))
  elbo = np.asarray(objectives.elbo_metrics(terms)["elbo"], np.float64).reshape(4, n)
  se = elbo.std(1) / np.sqrt(n)
  assert np.all(np.abs(elbo.mean(1) - log_px) < 5 * se + 1e-3), (elbo.mean(1), log_px, se)


def test_elbo_gap_is_kl_to_true_posterior_and_elbo_below_log_px(linear_gaussian):
  """ELBO = log p(x) - KL(q(z|x) || p(z|x)); checked for both KL estimators."""
  model, exact, batch, log_px = linear_gaussian
  params = lg.perturbed(exact)
  q_mean, q_lv = model.apply({"params": params}, batch["image"], method=model.encode)
  p_mean, p_lv = model.apply({"params": exact}, batch["image"], method=model.encode)
  gap = np.asarray(D.kl_diag_gaussians(q_mean, q_lv, p_mean, p_lv))
  assert np.all(gap > 0.1)
  n = 40_000
  for kl in objectives.KL_ESTIMATORS:
    terms = objectives.make_elbo_terms(model, _likelihood(), kl=kl)(
        params, _repeat(batch, n), jax.random.PRNGKey(2))
    elbo = np.asarray(objectives.elbo_metrics(terms)["elbo"], np.float64).reshape(4, n)
    se = elbo.std(1) / np.sqrt(n)
    assert np.all(elbo.mean(1) < log_px)
    assert np.all(np.abs(elbo.mean(1) - (log_px - gap)) < 5 * se + 1e-3), kl


def test_loss_weights_kl_by_beta_and_reports_unweighted_elbo(linear_gaussian):
  model, params, batch, _ = linear_gaussian
  rng = jax.random.PRNGKey(3)
  terms = objectives.make_elbo_terms(model, _likelihood())(params, batch, rng)
  recon, kl = -np.asarray(terms["log_px"]), np.asarray(terms["kl"])
  for beta in (0.0, 0.5, 4.0):
    loss, metrics = objectives.make_elbo_loss(model, _likelihood(), beta=beta)(params, batch, rng)
    np.testing.assert_allclose(loss, np.mean(recon + beta * kl), rtol=1e-5)
    np.testing.assert_allclose(metrics["elbo"], -np.mean(recon + kl), rtol=1e-5)
    np.testing.assert_allclose(metrics["recon"], recon.mean(), rtol=1e-5)
    np.testing.assert_allclose(metrics["kl"], kl.mean(), rtol=1e-5)


def test_bernoulli_recon_sums_over_pixels_and_means_over_batch(linear_gaussian):
  model, params, _, _ = linear_gaussian
  x = (np.random.default_rng(5).random((3, 1, 1, DIM_X)) > 0.5).astype(np.float32)
  batch, rng = {"image": jnp.asarray(x)}, jax.random.PRNGKey(4)
  likelihood = objectives.make_likelihood("bernoulli")
  _, metrics = objectives.make_elbo_loss(model, likelihood)(params, batch, rng)
  mean, log_var = model.apply({"params": params}, batch["image"], method=model.encode)
  logits = np.asarray(model.apply({"params": params}, D.reparameterize(rng, mean, log_var),
                                  method=model.decode), np.float64)
  per_example = -stats.bernoulli.logpmf(x, 1 / (1 + np.exp(-logits))).reshape(3, -1).sum(1)
  np.testing.assert_allclose(metrics["recon"], per_example.mean(), rtol=1e-5)


def test_gaussian_learned_likelihood_matches_scipy():
  rng = np.random.default_rng(6)
  x = rng.random((2, 3, 3, 1)).astype(np.float32)
  out = rng.normal(size=(2, 3, 3, 2)).astype(np.float32)
  lik = objectives.make_likelihood("gaussian_learned")
  assert lik.params_per_channel == 2
  expected = stats.norm.logpdf(x[..., 0], out[..., 0], np.exp(0.5 * out[..., 1])).reshape(2, -1)
  chex.assert_trees_all_close(lik.log_prob(x, out), expected.sum(1), rtol=1e-5)
  chex.assert_trees_all_close(lik.mean(out), out[..., :1])


def test_gaussian_fixed_likelihood_matches_scipy():
  rng = np.random.default_rng(7)
  x, out = rng.random((2, 4, 4, 1)), rng.random((2, 4, 4, 1))
  lik = objectives.make_likelihood("gaussian_fixed", gaussian_std=0.3)
  expected = stats.norm.logpdf(x, out, 0.3).reshape(2, -1).sum(1)
  chex.assert_trees_all_close(lik.log_prob(x.astype(np.float32), out.astype(np.float32)),
                              expected, rtol=1e-5)


def test_bad_names_list_the_allowed_values(linear_gaussian):
  model = linear_gaussian[0]
  with pytest.raises(ValueError, match="likelihood='poisson'.*bernoulli, gaussian_fixed"):
    objectives.make_likelihood("poisson")
  with pytest.raises(ValueError, match="kl='exact'.*analytic, mc"):
    objectives.make_elbo_terms(model, _likelihood(), kl="exact")


# --- ELBO variants, IWAE and gradient estimators -------------------------------------------

def _encoder_grads(loss_fn, params, batch, num_draws, seed=0):
  """[num_draws, n_encoder_params] gradients of the loss, one per key."""
  from jax.flatten_util import ravel_pytree
  grad = jax.jit(jax.vmap(lambda k: ravel_pytree(jax.grad(
      lambda p: loss_fn(p, batch, k)[0])(params)["encoder"])[0]))
  return np.asarray(grad(jax.random.split(jax.random.PRNGKey(seed), num_draws)), np.float64)


def _assert_unbiased(draws, expected, z=5.0):
  se = draws.std(0) / np.sqrt(len(draws))
  assert np.all(np.abs(draws.mean(0) - expected) < z * se + 1e-5), (draws.mean(0), expected, se)


def test_iwae_with_one_sample_equals_the_mc_elbo(linear_gaussian):
  model, params, batch, _ = linear_gaussian
  params, rng = lg.perturbed(params), jax.random.PRNGKey(7)
  iwae = objectives.make_iwae_loss(model, _likelihood(), num_samples=1)
  elbo = objectives.make_elbo_loss(model, _likelihood(), kl="mc")
  (l_iwae, m_iwae), g_iwae = jax.value_and_grad(iwae, has_aux=True)(params, batch, rng)
  (l_elbo, _), g_elbo = jax.value_and_grad(elbo, has_aux=True)(params, batch, rng)
  np.testing.assert_allclose(l_iwae, l_elbo, rtol=1e-6)
  np.testing.assert_allclose(m_iwae["iwae"], m_iwae["elbo"], rtol=1e-6)
  chex.assert_trees_all_close(g_iwae, g_elbo, rtol=1e-5, atol=1e-6)


def test_iwae_bound_grows_with_k_towards_log_px(linear_gaussian):
  model, params, batch, log_px = linear_gaussian
  params = lg.perturbed(params)
  reps = 2000
  means, ses = [], []
  for k in (1, 5, 50):
    loss = jax.jit(jax.vmap(lambda r: objectives.make_iwae_loss(model, _likelihood(), k)(
        params, batch, r)[0]))
    bounds = -np.asarray(loss(jax.random.split(jax.random.PRNGKey(k), reps)), np.float64)
    means.append(bounds.mean())
    ses.append(bounds.std() / np.sqrt(reps))
  assert means[0] + 3 * (ses[0] + ses[1]) < means[1] < means[2] - 3 * (ses[1] + ses[2])
  assert means[2] < np.mean(log_px) + 3 * ses[2]
  assert np.mean(log_px) - means[2] < 0.2 * (np.mean(log_px) - means[0])


def test_closed_form_and_mc_kl_give_the_same_expected_objective_and_gradient(linear_gaussian):
  model, params, batch, _ = linear_gaussian
  params = lg.perturbed(params)
  exact_value = float(lg.closed_form_elbo(params, batch))
  exact_grad = np.asarray(jax.flatten_util.ravel_pytree(
      jax.grad(lambda p: -lg.closed_form_elbo(p, batch))(params)["encoder"])[0])
  for kl in objectives.KL_ESTIMATORS:
    loss = objectives.make_elbo_loss(model, _likelihood(), kl=kl)
    values = np.asarray(jax.vmap(lambda r: loss(params, batch, r)[0])(
        jax.random.split(jax.random.PRNGKey(1), 4000)), np.float64)
    assert abs(-values.mean() - exact_value) < 5 * values.std() / np.sqrt(4000) + 1e-4, kl
    _assert_unbiased(_encoder_grads(loss, params, batch, 4000), exact_grad)


def test_stl_is_unbiased_and_has_zero_variance_at_the_exact_posterior(linear_gaussian):
  model, exact, batch, _ = linear_gaussian
  stl = objectives.make_elbo_loss(model, _likelihood(), kl="mc", estimator="stl")
  reparam = objectives.make_elbo_loss(model, _likelihood(), kl="mc")
  params = lg.perturbed(exact)
  exact_grad = np.asarray(jax.flatten_util.ravel_pytree(
      jax.grad(lambda p: -lg.closed_form_elbo(p, batch))(params)["encoder"])[0])
  _assert_unbiased(_encoder_grads(stl, params, batch, 4000), exact_grad)
  at_optimum_stl = _encoder_grads(stl, exact, batch, 200)
  at_optimum_reparam = _encoder_grads(reparam, exact, batch, 200)
  assert at_optimum_stl.var(0).max() < 1e-8
  assert at_optimum_reparam.var(0).max() > 1e-2


def test_dreg_is_unbiased_for_the_iwae_gradient(linear_gaussian):
  model, params, batch, _ = linear_gaussian
  params = lg.perturbed(params)
  iwae = objectives.make_iwae_loss(model, _likelihood(), 5)
  dreg = objectives.make_iwae_loss(model, _likelihood(), 5, estimator="dreg")
  a = _encoder_grads(iwae, params, batch, 4000, seed=1)
  b = _encoder_grads(dreg, params, batch, 4000, seed=2)
  se = np.sqrt(a.var(0) / len(a) + b.var(0) / len(b))
  assert np.all(np.abs(a.mean(0) - b.mean(0)) < 5 * se + 1e-5)
  assert np.all(b.var(0) <= a.var(0) * 1.1)   # DReG is the lower-variance estimator here
  # Same value, and the decoder's gradient is the IWAE one, draw by draw.
  rng = jax.random.PRNGKey(3)
  (la, _), ga = jax.value_and_grad(iwae, has_aux=True)(params, batch, rng)
  (lb, _), gb = jax.value_and_grad(dreg, has_aux=True)(params, batch, rng)
  np.testing.assert_allclose(la, lb, rtol=1e-6)
  chex.assert_trees_all_close(ga["decoder"], gb["decoder"], rtol=1e-4, atol=1e-5)


def test_dreg_encoder_gradient_vanishes_at_the_exact_posterior(linear_gaussian):
  model, exact, batch, _ = linear_gaussian
  dreg = objectives.make_iwae_loss(model, _likelihood(), 5, estimator="dreg")
  assert np.abs(_encoder_grads(dreg, exact, batch, 50)).max() < 1e-3


def test_k_sample_elbo_averages_samples(linear_gaussian):
  model, params, batch, _ = linear_gaussian
  params, rng = lg.perturbed(params), jax.random.PRNGKey(4)
  loss, metrics = objectives.make_elbo_loss(model, _likelihood(), kl="mc", num_samples=7)(
      params, batch, rng)
  t = objectives.sample_terms(model, _likelihood(), params, batch["image"], rng, 7)
  np.testing.assert_allclose(-loss, np.mean(t["log_w"]), rtol=1e-5)
  np.testing.assert_allclose(metrics["elbo"], np.mean(t["log_w"]), rtol=1e-5)


def test_kl_warmup_and_free_bits(linear_gaussian):
  model, params, batch, _ = linear_gaussian
  rng = jax.random.PRNGKey(5)
  np.testing.assert_allclose(objectives.beta_schedule(jnp.int32(50), 2.0, 200), 0.5)
  np.testing.assert_allclose(objectives.beta_schedule(jnp.int32(500), 2.0, 200), 2.0)
  np.testing.assert_allclose(objectives.beta_schedule(jnp.int32(5), 2.0, 0), 2.0)
  warm = objectives.make_elbo_loss(model, _likelihood(), warmup_steps=100)
  _, m = warm(params, {**batch, "step": jnp.int32(25)}, rng)
  np.testing.assert_allclose(m["loss"], m["recon"] + 0.25 * m["kl"], rtol=1e-5)
  kl_per_dim = jnp.array([[0.1, 2.0, 0.0], [0.3, 1.0, 0.0]])
  # batch means 0.2, 1.5, 0.0 -> floored at 0.5: 0.5 + 1.5 + 0.5
  np.testing.assert_allclose(objectives.free_bits_kl(kl_per_dim, 0.5), 2.5, rtol=1e-6)
  fb = objectives.make_elbo_loss(model, _likelihood(), free_bits=100.0)
  loss, m = fb(params, batch, rng)
  np.testing.assert_allclose(loss, m["recon"] + 100.0 * lg.DIM_Z, rtol=1e-5)
  # The floor is above every dimension's KL: the KL term sends no gradient at all.
  recon_only = objectives.make_elbo_loss(model, _likelihood(), beta=0.0)
  chex.assert_trees_all_close(jax.grad(lambda p: fb(p, batch, rng)[0])(params),
                              jax.grad(lambda p: recon_only(p, batch, rng)[0])(params),
                              rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("text,expected", [
    ("elbo", dict(kind="elbo", kl="analytic", estimator="reparam", num_samples=1)),
    ("elbo_mc", dict(kl="mc")),
    ("elbo_stl", dict(kl="mc", estimator="stl")),
    ("beta=0.5", dict(beta=0.5)),
    ("iwae=50", dict(kind="iwae", num_samples=50)),
    ("iwae_dreg=50", dict(kind="iwae", num_samples=50, estimator="dreg")),
    ("elbo_k=5", dict(kind="elbo", num_samples=5, kl="mc")),
    ("beta_warmup=1000", dict(warmup_steps=1000)),
    ("free_bits=0.25", dict(free_bits=0.25)),
])
def test_parse_variant(text, expected):
  objective = objectives.parse_variant(text)
  assert objective.name == text
  for key, value in expected.items():
    assert getattr(objective, key) == value, key


@pytest.mark.parametrize("text", ["iwae", "iwae=0", "iwae=2.5", "beta=-1", "beta=x", "elbo=3",
                                  "vae", "", "iwae_dreg=", "beta=nan"])
def test_parse_variant_rejects_bad_input_listing_valid_forms(text):
  with pytest.raises(ValueError, match=r"bad variant .*expected one of elbo, elbo_mc, elbo_stl, "
                                       r"elbo_k=K, beta=B, .*iwae=K, iwae_dreg=K"):
    objectives.parse_variant(text)


def test_parse_variants_rejects_duplicates_and_builds_losses(linear_gaussian):
  with pytest.raises(ValueError, match="duplicate variant"):
    objectives.parse_variants("elbo,iwae=5,elbo")
  model, params, batch, _ = linear_gaussian
  for v in objectives.parse_variants("elbo,elbo_mc,beta=0.5,iwae=5,iwae_dreg=5,elbo_stl"):
    loss, metrics = objectives.make_loss(model, _likelihood(), v)(params, batch,
                                                                  jax.random.PRNGKey(0))
    assert np.isfinite(loss) and "elbo" in metrics, v.name


def test_estimator_combinations_that_are_wrong_are_refused(linear_gaussian):
  model = linear_gaussian[0]
  with pytest.raises(ValueError, match="estimator='stl' needs kl='mc'"):
    objectives.make_elbo_loss(model, _likelihood(), kl="analytic", estimator="stl")
  with pytest.raises(ValueError, match="STL is biased for IWAE"):
    objectives.make_iwae_loss(model, _likelihood(), 5, estimator="stl")


# --- Autoencoders, classifiers, M2 -------------------------------------------------------

from genjax import data, models  # noqa: E402

IMG = (4, 4, 1)


def _sigmoid(a):
  return 1.0 / (1.0 + np.exp(-np.asarray(a, np.float64)))


def test_reconstruction_errors_against_direct_formulas():
  rng = np.random.default_rng(0)
  x = rng.random((3, *IMG)).astype(np.float32)
  out = rng.normal(size=(3, *IMG)).astype(np.float32) * 3
  p = _sigmoid(out)
  np.testing.assert_allclose(objectives.reconstruction_error(x, out, "mse"),
                             ((x - p) ** 2).sum((1, 2, 3)), rtol=1e-5)
  bce = -(x * np.log(p) + (1 - x) * np.log(1 - p)).sum((1, 2, 3))
  np.testing.assert_allclose(objectives.reconstruction_error(x, out, "bernoulli"), bce,
                             rtol=1e-5)
  with pytest.raises(ValueError, match="--reconstruction='l1': expected one of mse, bernoulli"):
    objectives.reconstruction_error(x, out, "l1")


@pytest.fixture(scope="module")
def tiny_ae():
  ae = models.build_autoencoder("mlp", IMG, latent_dim=2, hidden=(8,))
  params = ae.init(jax.random.PRNGKey(0), jnp.zeros((1, *IMG)))["params"]
  x = jax.random.uniform(jax.random.PRNGKey(1), (5, *IMG))
  return ae, params, {"image": x}


def test_denoising_loss_encodes_the_corrupted_input_and_targets_the_clean_image(tiny_ae):
  ae, params, batch = tiny_ae
  rng = jax.random.PRNGKey(7)
  loss, metrics = objectives.make_autoencoder_loss(ae, "mse", "masking", 0.5)(params, batch, rng)
  noisy = data.corrupt(rng, batch["image"], "masking", 0.5)
  out = ae.apply({"params": params}, noisy)
  clean_target = ((batch["image"] - _sigmoid(out)) ** 2).sum((1, 2, 3)).mean()
  noisy_target = ((noisy - _sigmoid(out)) ** 2).sum((1, 2, 3)).mean()
  np.testing.assert_allclose(loss, clean_target, rtol=1e-5)
  assert abs(float(loss) - noisy_target) > 1e-3
  assert float(metrics["recon"]) == float(loss)
  # Without corruption it is the plain autoencoder: the input is the target.
  plain, _ = objectives.make_autoencoder_loss(ae, "bernoulli")(params, batch, rng)
  out = ae.apply({"params": params}, batch["image"])
  np.testing.assert_allclose(
      plain, objectives.reconstruction_error(batch["image"], out, "bernoulli").mean(), rtol=1e-6)


def test_classifier_loss_is_softmax_cross_entropy():
  clf = models.build_classifier("mlp", 3, (8,), num_classes=4)
  x = jax.random.uniform(jax.random.PRNGKey(0), (6, *IMG))
  params = clf.init(jax.random.PRNGKey(1), x)["params"]
  labels = jnp.array([0, 1, 2, 3, 0, 1])
  loss, m = objectives.make_classifier_loss(clf)(params, {"image": x, "label": labels}, None)
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
  lik = objectives.make_likelihood("bernoulli")
  alpha = 2.5
  batch = {"image": x_u, "labelled_image": x_l, "label": y_l}
  for rng in (jax.random.PRNGKey(3), jax.random.split(jax.random.PRNGKey(3), 4)):
    loss, m = objectives.make_m2_loss(m2, lik, alpha)(params, batch, rng)

    def bound(x, y):  # by hand, for one example and one class
      onehot = np.eye(k)[y][None]
      mean, log_var = m2.apply({"params": params}, x[None], onehot, method=m2.encode)
      logits = m2.apply({"params": params}, mean, onehot, method=m2.decode)   # z is ignored
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
