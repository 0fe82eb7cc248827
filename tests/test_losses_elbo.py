"""losses/elbo (_samples, _bounds, _iwae, make_loss): the ELBO against a linear-Gaussian
model whose log p(x) is exact, and the default family's numbers against the pre-protocol
implementation."""

import chex
import jax
import jax.flatten_util
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from scipy import stats

from genjax import distributions as D
from genjax import likelihoods
from genjax.losses import elbo as elbo_losses
from genjax.models import protocol

from tests import linear_gaussian as lg
from tests import regression_helpers as reg
from tests.linear_gaussian import DIM_X, NOISE_STD


@pytest.fixture(scope="module")
def linear_gaussian():
  """The model, the exact posterior's params, data and its exact log p(x)."""
  return lg.exact_setup()


def _likelihood():
  return likelihoods.make_likelihood("gaussian_fixed", gaussian_std=NOISE_STD)


def _repeat(batch, n):
  return {"image": jnp.repeat(batch["image"], n, axis=0)}


def test_elbo_with_exact_posterior_equals_log_px_for_every_sample(linear_gaussian):
  """With q = p(z|x), log p(x,z) - log q(z|x) = log p(x) for every z (MC KL)."""
  model, params, batch, log_px = linear_gaussian
  terms = elbo_losses.make_elbo_terms(model, _likelihood(), kl="mc")(
      params, _repeat(batch, 50), jax.random.PRNGKey(0))
  elbo = np.asarray(elbo_losses.elbo_metrics(terms)["elbo"]).reshape(4, 50)
  np.testing.assert_allclose(elbo, np.repeat(log_px[:, None], 50, 1), atol=2e-3)


def test_analytic_kl_elbo_expectation_equals_log_px_at_exact_posterior(linear_gaussian):
  model, params, batch, log_px = linear_gaussian
  n = 40_000
  terms = elbo_losses.make_elbo_terms(model, _likelihood(), kl="analytic")(
      params, _repeat(batch, n), jax.random.PRNGKey(1))
  elbo = np.asarray(elbo_losses.elbo_metrics(terms)["elbo"], np.float64).reshape(4, n)
  se = elbo.std(1) / np.sqrt(n)
  assert np.all(np.abs(elbo.mean(1) - log_px) < 5 * se + 1e-3), (elbo.mean(1), log_px, se)


def test_elbo_gap_is_kl_to_true_posterior_and_elbo_below_log_px(linear_gaussian):
  """ELBO = log p(x) - KL(q(z|x) || p(z|x)); checked for both KL estimators."""
  model, exact, batch, log_px = linear_gaussian
  params = lg.perturbed(exact)
  gap = np.asarray(D.kl_divergence(protocol.posterior(model, params, batch["image"]),
                                   protocol.posterior(model, exact, batch["image"])))
  assert np.all(gap > 0.1)
  n = 40_000
  for kl in elbo_losses.KL_ESTIMATORS:
    terms = elbo_losses.make_elbo_terms(model, _likelihood(), kl=kl)(
        params, _repeat(batch, n), jax.random.PRNGKey(2))
    elbo = np.asarray(elbo_losses.elbo_metrics(terms)["elbo"], np.float64).reshape(4, n)
    se = elbo.std(1) / np.sqrt(n)
    assert np.all(elbo.mean(1) < log_px)
    assert np.all(np.abs(elbo.mean(1) - (log_px - gap)) < 5 * se + 1e-3), kl


def test_loss_weights_kl_by_beta_and_reports_unweighted_elbo(linear_gaussian):
  model, params, batch, _ = linear_gaussian
  rng = jax.random.PRNGKey(3)
  terms = elbo_losses.make_elbo_terms(model, _likelihood())(params, batch, rng)
  recon, kl = -np.asarray(terms["log_px"]), np.asarray(terms["kl"])
  for beta in (0.0, 0.5, 4.0):
    loss, metrics = elbo_losses.make_elbo_loss(model, _likelihood(), beta=beta)(params, batch, rng)
    np.testing.assert_allclose(loss, np.mean(recon + beta * kl), rtol=1e-5)
    np.testing.assert_allclose(metrics["elbo"], -np.mean(recon + kl), rtol=1e-5)
    np.testing.assert_allclose(metrics["recon"], recon.mean(), rtol=1e-5)
    np.testing.assert_allclose(metrics["kl"], kl.mean(), rtol=1e-5)


def test_bernoulli_recon_sums_over_pixels_and_means_over_batch(linear_gaussian):
  model, params, _, _ = linear_gaussian
  x = (np.random.default_rng(5).random((3, 1, 1, DIM_X)) > 0.5).astype(np.float32)
  batch, rng = {"image": jnp.asarray(x)}, jax.random.PRNGKey(4)
  likelihood = likelihoods.make_likelihood("bernoulli")
  _, metrics = elbo_losses.make_elbo_loss(model, likelihood)(params, batch, rng)
  q = protocol.posterior(model, params, batch["image"])
  logits = np.asarray(protocol.decode(model, params, q.sample(rng)), np.float64)
  per_example = -stats.bernoulli.logpmf(x, 1 / (1 + np.exp(-logits))).reshape(3, -1).sum(1)
  np.testing.assert_allclose(metrics["recon"], per_example.mean(), rtol=1e-5)


def test_bad_names_list_the_allowed_values(linear_gaussian):
  model = linear_gaussian[0]
  with pytest.raises(ValueError, match="likelihood='poisson'.*bernoulli, gaussian_fixed"):
    likelihoods.make_likelihood("poisson")
  with pytest.raises(ValueError, match="kl='exact'.*analytic, mc"):
    elbo_losses.make_elbo_terms(model, _likelihood(), kl="exact")


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
  iwae = elbo_losses.make_iwae_loss(model, _likelihood(), num_samples=1)
  elbo = elbo_losses.make_elbo_loss(model, _likelihood(), kl="mc")
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
    loss = jax.jit(jax.vmap(lambda r: elbo_losses.make_iwae_loss(model, _likelihood(), k)(
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
  for kl in elbo_losses.KL_ESTIMATORS:
    loss = elbo_losses.make_elbo_loss(model, _likelihood(), kl=kl)
    values = np.asarray(jax.vmap(lambda r: loss(params, batch, r)[0])(
        jax.random.split(jax.random.PRNGKey(1), 4000)), np.float64)
    assert abs(-values.mean() - exact_value) < 5 * values.std() / np.sqrt(4000) + 1e-4, kl
    _assert_unbiased(_encoder_grads(loss, params, batch, 4000), exact_grad)


def test_stl_is_unbiased_and_has_zero_variance_at_the_exact_posterior(linear_gaussian):
  model, exact, batch, _ = linear_gaussian
  stl = elbo_losses.make_elbo_loss(model, _likelihood(), kl="mc", estimator="stl")
  reparam = elbo_losses.make_elbo_loss(model, _likelihood(), kl="mc")
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
  iwae = elbo_losses.make_iwae_loss(model, _likelihood(), 5)
  dreg = elbo_losses.make_iwae_loss(model, _likelihood(), 5, estimator="dreg")
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
  dreg = elbo_losses.make_iwae_loss(model, _likelihood(), 5, estimator="dreg")
  assert np.abs(_encoder_grads(dreg, exact, batch, 50)).max() < 1e-3


def test_k_sample_elbo_averages_samples(linear_gaussian):
  model, params, batch, _ = linear_gaussian
  params, rng = lg.perturbed(params), jax.random.PRNGKey(4)
  loss, metrics = elbo_losses.make_elbo_loss(model, _likelihood(), kl="mc", num_samples=7)(
      params, batch, rng)
  t = elbo_losses.sample_terms(model, _likelihood(), params, batch["image"], rng, 7)
  np.testing.assert_allclose(-loss, np.mean(t["log_w"]), rtol=1e-5)
  np.testing.assert_allclose(metrics["elbo"], np.mean(t["log_w"]), rtol=1e-5)


def test_kl_warmup_and_free_bits(linear_gaussian):
  model, params, batch, _ = linear_gaussian
  rng = jax.random.PRNGKey(5)
  np.testing.assert_allclose(elbo_losses.beta_schedule(jnp.int32(50), 2.0, 200), 0.5)
  np.testing.assert_allclose(elbo_losses.beta_schedule(jnp.int32(500), 2.0, 200), 2.0)
  np.testing.assert_allclose(elbo_losses.beta_schedule(jnp.int32(5), 2.0, 0), 2.0)
  warm = elbo_losses.make_elbo_loss(model, _likelihood(), warmup_steps=100)
  _, m = warm(params, {**batch, "step": jnp.int32(25)}, rng)
  np.testing.assert_allclose(m["loss"], m["recon"] + 0.25 * m["kl"], rtol=1e-5)
  kl_per_dim = jnp.array([[0.1, 2.0, 0.0], [0.3, 1.0, 0.0]])
  # batch means 0.2, 1.5, 0.0 -> floored at 0.5: 0.5 + 1.5 + 0.5
  np.testing.assert_allclose(elbo_losses.free_bits_kl(kl_per_dim, 0.5), 2.5, rtol=1e-6)
  fb = elbo_losses.make_elbo_loss(model, _likelihood(), free_bits=100.0)
  loss, m = fb(params, batch, rng)
  np.testing.assert_allclose(loss, m["recon"] + 100.0 * lg.DIM_Z, rtol=1e-5)
  # The floor is above every dimension's KL: the KL term sends no gradient at all.
  recon_only = elbo_losses.make_elbo_loss(model, _likelihood(), beta=0.0)
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
  objective = elbo_losses.parse_variant(text)
  assert objective.name == text
  for key, value in expected.items():
    assert getattr(objective, key) == value, key


@pytest.mark.parametrize("text", ["iwae", "iwae=0", "iwae=2.5", "beta=-1", "beta=x", "elbo=3",
                                  "vae", "", "iwae_dreg=", "beta=nan"])
def test_parse_variant_rejects_bad_input_listing_valid_forms(text):
  with pytest.raises(ValueError, match=r"bad variant .*expected one of elbo, elbo_mc, elbo_stl, "
                                       r"elbo_k=K, beta=B, .*iwae=K, iwae_dreg=K"):
    elbo_losses.parse_variant(text)


def test_parse_variants_rejects_duplicates_and_builds_losses(linear_gaussian):
  with pytest.raises(ValueError, match="duplicate variant"):
    elbo_losses.parse_variants("elbo,iwae=5,elbo")
  model, params, batch, _ = linear_gaussian
  for v in elbo_losses.parse_variants("elbo,elbo_mc,beta=0.5,iwae=5,iwae_dreg=5,elbo_stl"):
    loss, metrics = elbo_losses.make_loss(model, _likelihood(), v)(params, batch,
                                                                   jax.random.PRNGKey(0))
    assert np.isfinite(loss) and "elbo" in metrics, v.name


def test_estimator_combinations_that_are_wrong_are_refused(linear_gaussian):
  model = linear_gaussian[0]
  with pytest.raises(ValueError, match="estimator='stl' needs kl='mc'"):
    elbo_losses.make_elbo_loss(model, _likelihood(), kl="analytic", estimator="stl")
  with pytest.raises(ValueError, match="STL is biased for IWAE"):
    elbo_losses.make_iwae_loss(model, _likelihood(), 5, estimator="stl")


# --- IWAE with a KL weight and its warm-up, composed with "+" --------------------------------

def _variant_value_and_grad(text, model, params, batch, rng):
  loss_fn = elbo_losses.make_loss(model, _likelihood(), elbo_losses.parse_variant(text))
  return jax.value_and_grad(loss_fn, has_aux=True)(params, batch, rng)


@pytest.mark.parametrize("plain", ["iwae=5", "iwae_dreg=5"])
def test_iwae_warmup_starts_at_the_reconstruction_term_and_ends_at_iwae(linear_gaussian, plain):
  model, params, batch, _ = linear_gaussian
  params, rng = lg.perturbed(params), jax.random.PRNGKey(8)
  warm = plain + "+beta_warmup=100"
  # Step 0: beta_t = 0, log w_k = log p(x|z_k): loss = -mean_batch log 1/K sum_k p(x|z_k).
  (loss, m), _ = _variant_value_and_grad(warm, model, params, {**batch, "step": 0}, rng)
  t = elbo_losses.sample_terms(model, _likelihood(), params, batch["image"], rng, 5)
  assert float(m["beta"]) == 0.0
  np.testing.assert_allclose(loss, -np.mean(elbo_losses.log_mean_exp(t["log_px"])), rtol=1e-5)
  # The metrics stay those of beta = 1: the true bound, the K-sample ELBO, its KL.
  np.testing.assert_allclose(m["iwae"], np.mean(elbo_losses.log_mean_exp(t["log_w"])),
                             rtol=1e-6)
  np.testing.assert_allclose(m["elbo"], np.mean(t["log_w"]), rtol=1e-6)
  np.testing.assert_allclose(m["kl"], np.mean(t["log_q"] - t["log_pz"]), rtol=1e-5)
  # Step >= S: beta_t = 1 is plain IWAE, bit for bit (value, metrics and gradient).
  (l_plain, m_plain), g_plain = _variant_value_and_grad(plain, model, params, batch, rng)
  for step in (100, 250):
    (l, m), g = _variant_value_and_grad(warm, model, params, {**batch, "step": step}, rng)
    np.testing.assert_array_equal(l, l_plain)
    chex.assert_trees_all_equal(m, m_plain)
    chex.assert_trees_all_equal(g, g_plain)


def test_iwae_warmup_at_step_zero_with_one_sample_is_the_elbo_reconstruction_term(
    linear_gaussian):
  """K = 1, beta_t = 0: -E_q log p(x|z), the ELBO's reconstruction term (value, gradient)."""
  model, params, batch, _ = linear_gaussian
  params, rng = lg.perturbed(params), jax.random.PRNGKey(9)
  batch = {**batch, "step": 0}
  (l_iwae, m), g_iwae = _variant_value_and_grad("iwae=1+beta_warmup=10", model, params, batch,
                                                rng)
  (l_elbo, m_elbo), g_elbo = _variant_value_and_grad("elbo_mc+beta=0", model, params, batch,
                                                     rng)
  np.testing.assert_allclose(l_iwae, m_elbo["recon"], rtol=1e-6)
  np.testing.assert_allclose(l_iwae, l_elbo, rtol=1e-6)
  chex.assert_trees_all_close(g_iwae, g_elbo, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("beta", [0.3, 2.5])
def test_one_sample_annealed_iwae_is_the_beta_elbo_and_its_dreg_is_stl(linear_gaussian, beta):
  """K = 1: log w = log p(x|z) - beta (log q - log p), the beta-ELBO with the sampled KL; the
  annealed DReG weight (1 - beta) w~ + beta w~^2 is 1: the STL gradient of the beta-ELBO."""
  model, params, batch, _ = linear_gaussian
  params, rng = lg.perturbed(params), jax.random.PRNGKey(10)
  for iwae, elbo in ((f"iwae=1+beta={beta}", f"elbo_mc+beta={beta}"),
                     (f"iwae_dreg=1+beta={beta}", f"elbo_stl+beta={beta}")):
    (l_iwae, m), g_iwae = _variant_value_and_grad(iwae, model, params, batch, rng)
    (l_elbo, _), g_elbo = _variant_value_and_grad(elbo, model, params, batch, rng)
    np.testing.assert_allclose(l_iwae, l_elbo, rtol=1e-6, err_msg=iwae)
    np.testing.assert_allclose(m["beta"], beta, rtol=1e-7)
    chex.assert_trees_all_close(g_iwae, g_elbo, rtol=1e-5, atol=1e-5, custom_message=iwae)


@pytest.mark.parametrize("beta", [0.3, 2.5])
def test_dreg_is_unbiased_for_the_annealed_iwae_gradient(linear_gaussian, beta):
  """With annealed weights the DReG encoder weight is (1 - beta) w~ + beta w~^2 (see
  ``make_iwae_loss``); its expectation is the reparameterized gradient of IWAE_K^beta."""
  model, params, batch, _ = linear_gaussian
  params = lg.perturbed(params)
  objectives = [elbo_losses.parse_variant(f"{v}=5+beta={beta}") for v in ("iwae", "iwae_dreg")]
  iwae, dreg = (elbo_losses.make_loss(model, _likelihood(), o) for o in objectives)
  a = _encoder_grads(iwae, params, batch, 4000, seed=1)
  b = _encoder_grads(dreg, params, batch, 4000, seed=2)
  se = np.sqrt(a.var(0) / len(a) + b.var(0) / len(b))
  assert np.all(np.abs(a.mean(0) - b.mean(0)) < 5 * se + 1e-5), (a.mean(0), b.mean(0), se)
  # Same value (the annealed bound), and the decoder's gradient is IWAE's, draw by draw.
  rng = jax.random.PRNGKey(3)
  (la, _), ga = jax.value_and_grad(iwae, has_aux=True)(params, batch, rng)
  (lb, _), gb = jax.value_and_grad(dreg, has_aux=True)(params, batch, rng)
  np.testing.assert_allclose(la, lb, rtol=1e-6)
  chex.assert_trees_all_close(ga["decoder"], gb["decoder"], rtol=1e-4, atol=1e-5)


def test_composed_variants_build_losses_that_follow_the_step(linear_gaussian):
  model, params, batch, _ = linear_gaussian
  rng = jax.random.PRNGKey(0)
  for text in ("iwae=5+beta_warmup=10", "iwae_dreg=5+beta=0.5+beta_warmup=10",
               "elbo_k=5+free_bits=0.5", "elbo_mc+beta=4", "elbo_k=3+elbo_stl+beta_warmup=10"):
    loss_fn = elbo_losses.make_loss(model, _likelihood(), elbo_losses.parse_variant(text))
    _, m5 = loss_fn(params, {**batch, "step": jnp.int32(5)}, rng)
    _, m20 = loss_fn(params, {**batch, "step": jnp.int32(20)}, rng)
    objective = elbo_losses.parse_variant(text)
    expected = objective.beta * (0.5 if objective.warmup_steps else 1.0)
    np.testing.assert_allclose(m5["beta"], expected, rtol=1e-6, err_msg=text)
    np.testing.assert_allclose(m20["beta"], objective.beta, rtol=1e-6, err_msg=text)
    assert all(np.isfinite(v) for v in m5.values()), text


# --- The default family reproduces the pre-protocol implementation -------------------------

# variant -> (loss, global gradient norm, elbo metric, encoder gradient norm), per key kind.
PRE_PROTOCOL = {
    "one_key": {
        "elbo": (604.916077, 664.002441, -604.916077, 662.474426),
        "elbo_mc": (604.726868, 666.517334, -604.726868, 664.995117),
        "elbo_stl": (604.726868, 662.874878, -604.726868, 661.344238),
        "elbo_k=3": (628.461304, 720.502991, -628.461304, 718.819336),
        "beta=0.5": (604.786621, 662.568604, -604.916077, 661.037292),
        "free_bits=0.1": (604.916077, 664.002441, -604.916077, 662.474426),
        "free_bits=0.13": (604.938477, 663.730469, -604.916077, 662.201843),
        "iwae=3": (565.364136, 261.51001, -628.461304, 260.707672),
        "iwae_dreg=3": (565.364197, 263.153595, -628.461304, 262.356262),
    },
    "per_example": {
        "elbo": (694.831177, 1227.84961, -694.831177, 1225.24194),
        "elbo_mc": (694.430481, 1242.36035, -694.430481, 1239.78308),
        "elbo_stl": (694.430481, 1228.47449, -694.430481, 1225.86816),
        "elbo_k=3": (632.996826, 708.336975, -632.996826, 706.715332),
        "beta=0.5": (694.701721, 1226.46021, -694.831177, 1223.84961),
        "free_bits=0.1": (694.831177, 1227.84961, -694.831177, 1225.24194),
        "free_bits=0.13": (694.853577, 1227.24622, -694.831177, 1224.63708),
        "iwae=3": (558.242981, 175.044464, -632.996826, 173.499176),
        "iwae_dreg=3": (558.243042, 177.36618, -632.996826, 175.841293),
    },
}
# (loss, global gradient norm, elbo metric) of the tiny CVAE.
PRE_PROTOCOL_CVAE = {
    ("one_key", "elbo"): (562.50415, 94.5897064, -562.50415),
    ("per_example", "elbo"): (574.50769, 251.31131, -574.50769),
    ("one_key", "iwae_dreg=3"): (554.821228, 38.5569305, -565.253723),
    ("per_example", "iwae_dreg=3"): (555.362305, 41.6325035, -565.699341),
}


@pytest.fixture(scope="module")
def tiny_vae():
  return reg.vae()


@pytest.mark.parametrize("key_kind", ["one_key", "per_example"])
def test_default_family_reproduces_the_pre_protocol_numbers(tiny_vae, key_kind):
  """Every ELBO-lab variant on the tiny MLP VAE gives the loss, gradient norms and ELBO
  computed with the pre-protocol implementation (hard-coded N(0, I) prior and Gaussian
  posterior, ``elbo.encode``, ``params["encoder"]``): the default family must reproduce
  them (``tests/regression_helpers.py``)."""
  model, params, batch = tiny_vae
  rng = reg.keys()[key_kind]
  for name, expected in PRE_PROTOCOL[key_kind].items():
    loss_fn = elbo_losses.make_loss(model, reg.bernoulli(), elbo_losses.parse_variant(name))
    (loss, metrics), grads = jax.value_and_grad(loss_fn, has_aux=True)(params, batch, rng)
    got = (loss, optax.global_norm(grads), metrics["elbo"], optax.global_norm(grads["encoder"]))
    np.testing.assert_allclose(np.array(got, np.float64), expected, rtol=reg.RTOL,
                               err_msg=f"{key_kind} {name}")


def test_cvae_reproduces_the_pre_protocol_numbers():
  """The tiny CVAE's ELBO and DReG-IWAE against the pre-protocol numbers (as above)."""
  model, params, batch = reg.cvae()
  for (key_kind, name), expected in PRE_PROTOCOL_CVAE.items():
    loss_fn = elbo_losses.make_loss(model, reg.bernoulli(), elbo_losses.parse_variant(name))
    (loss, metrics), grads = jax.value_and_grad(loss_fn, has_aux=True)(params, batch,
                                                                      reg.keys()[key_kind])
    np.testing.assert_allclose(np.array((loss, optax.global_norm(grads), metrics["elbo"]),
                                        np.float64), expected, rtol=reg.RTOL,
                               err_msg=f"{key_kind} {name}")
