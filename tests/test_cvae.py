"""Conditional VAEs: the ELBO family given c on an exact model, the CVAE module, the
figures' conditions, celeb_a through TFDS mock data, and train_cvae end to end."""

import json
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from experiments import train_cvae
from genjax import likelihoods, models
from genjax.data import datasets, registry, sources
from genjax.losses import elbo
from genjax.metrics import likelihood as likelihood_metrics
from genjax.models import protocol
from tests import linear_gaussian as lg
from tests.experiment_helpers import run_experiment, write_synthetic_mnist

ALL_VARIANTS = "elbo,elbo_mc,elbo_stl,elbo_k=3,beta=0.5,beta_warmup=10,free_bits=0.1,iwae=3,iwae_dreg=3"


@pytest.fixture(scope="module")
def conditional():
  model, params, batch, log_px = lg.conditional_exact_setup()
  enc = params["encoder"]
  off = {**params, "encoder": {**enc, "base": {**enc["base"], "b": enc["base"]["b"] + 0.4,
                                               "log_var": enc["base"]["log_var"] + 0.7}}}
  return model, params, off, batch, log_px


def _likelihood():
  return likelihoods.make_likelihood("gaussian_fixed", gaussian_std=lg.NOISE_STD)


def test_conditional_elbo_matches_its_closed_form_and_bounds_exact_log_p_x_given_c(conditional):
  model, _, off, batch, log_px = conditional
  loss_fn = jax.jit(elbo.make_elbo_loss(model, _likelihood()))
  keys = jax.random.split(jax.random.PRNGKey(0), 2000)
  losses = np.asarray(jax.vmap(lambda k: loss_fn(off, batch, k)[0])(keys), np.float64)
  exact_elbo = float(lg.conditional_closed_form_elbo(off, batch))
  assert abs(-losses.mean() - exact_elbo) < 4 * losses.std() / np.sqrt(len(losses)) + 1e-3
  assert exact_elbo < log_px.mean()
  # The loss reads the condition: the same x under other conditions has another ELBO.
  wrong = {**batch, "condition": batch["condition"][::-1]}
  wrong_loss = np.mean([loss_fn(off, wrong, k)[0] for k in keys[:200]])
  assert abs(-wrong_loss - float(lg.conditional_closed_form_elbo(off, wrong))) < 0.5
  assert abs(float(lg.conditional_closed_form_elbo(off, wrong)) - exact_elbo) > 0.1


def test_conditional_importance_sampled_log_likelihood_is_exact_within_its_error(conditional):
  model, _, off, batch, log_px = conditional
  est, se = likelihood_metrics.importance_sampled_log_likelihood(
      model, _likelihood(), off, batch["image"], jax.random.PRNGKey(1), 5000, 500,
      condition=batch["condition"])
  est, se = np.asarray(est, np.float64), np.asarray(se, np.float64)
  assert np.all(np.abs(est - log_px) < 4 * se + 1e-3), (est, log_px, se)


def test_every_elbo_variant_trains_a_conditional_model(conditional):
  """All variants of the ELBO lab take the condition and give finite gradients that reach
  the condition's weights; at q = p(z|x, c) every Monte Carlo bound is tight (its log-weight
  equals log p(x|c) for any sample)."""
  model, exact, off, batch, log_px = conditional
  batch = {**batch, "step": jnp.asarray(1000)}
  for objective in elbo.parse_variants(ALL_VARIANTS):
    loss_fn = elbo.make_loss(model, _likelihood(), objective)
    (loss, _), grads = jax.value_and_grad(loss_fn, has_aux=True)(off, batch,
                                                                  jax.random.PRNGKey(2))
    leaves = jax.tree.leaves(grads)
    assert all(np.all(np.isfinite(g)) for g in leaves), objective.name
    assert np.any(np.asarray(grads["encoder"]["u"]) != 0), objective.name
    if objective.kl == "mc" and objective.beta == 1.0 and objective.free_bits == 0.0:
      _, metrics = loss_fn(exact, batch, jax.random.PRNGKey(3))
      bound = metrics["iwae" if objective.kind == "iwae" else "elbo"]
      np.testing.assert_allclose(bound, log_px.mean(), rtol=1e-4, err_msg=objective.name)


@pytest.fixture(scope="module")
def cvae():
  model = models.build_cvae("mlp", (8, 8, 1), latent_dim=3, hidden=(16,), output_channels=1)
  params = model.init(jax.random.PRNGKey(0), jnp.zeros((2, 8, 8, 1)), jnp.zeros((2, 4)))["params"]
  return model, params


def test_cvae_condition_changes_the_output_and_shapes_hold(cvae):
  model, params = cvae
  x = jax.random.uniform(jax.random.PRNGKey(1), (5, 8, 8, 1))
  c1, c2 = jnp.eye(4)[jnp.zeros(5, int)], jnp.eye(4)[jnp.ones(5, int)]
  q = protocol.posterior(model, params, x, c1)
  assert q.mean.shape == q.log_var.shape == (5, 3)
  z = jnp.ones((5, 3))
  out1 = protocol.decode(model, params, z, c1)
  out2 = protocol.decode(model, params, z, c2)
  assert out1.shape == (5, 8, 8, 1)
  assert float(jnp.max(jnp.abs(out1 - out2))) > 1e-3
  assert not np.allclose(q.mean, protocol.posterior(model, params, x, c2).mean)
  z = protocol.sample_prior(model, params, jax.random.PRNGKey(2), 5)
  assert protocol.decode(model, params, z, c1).shape == (5, 8, 8, 1)


@pytest.mark.parametrize("architecture", ["mlp", "conv"])
def test_condition_every_layer_reaches_each_decoder_layer(architecture):
  """The option adds C input rows to every decoder layer after the first (conv-transposes:
  C input channels) and leaves the encoder, the output shape and the default alone."""
  shape, hidden, k = (8, 8, 1), (16, 12), 4
  x, c = jnp.zeros((2, *shape)), jnp.eye(k)[jnp.array([0, 1])]
  init = lambda m: m.init(jax.random.PRNGKey(0), x, c)["params"]   # noqa: E731
  plain = init(models.build_cvae(architecture, shape, 3, hidden, 1))
  every = init(models.build_cvae(architecture, shape, 3, hidden, 1,
                                 condition_every_layer=True))
  assert jax.tree.map(jnp.shape, plain["encoder"]) == jax.tree.map(jnp.shape, every["encoder"])
  assert sorted(plain["decoder"]) == sorted(every["decoder"])
  for name in plain["decoder"]:     # kernels [..., inputs, outputs]
    rows = lambda p: p["decoder"][name]["kernel"].shape[-2]   # noqa: E731
    assert rows(every) - rows(plain) == (0 if name == "Dense_0" else k), name
  model = models.build_cvae(architecture, shape, 3, hidden, 1, condition_every_layer=True)
  z = jnp.ones((2, 3))
  out = protocol.decode(model, every, z, c)
  assert out.shape == (2, *shape)
  assert float(jnp.max(jnp.abs(out - protocol.decode(model, every, z, c[::-1])))) > 1e-4


def test_class_grid_uses_the_same_z_down_a_column(cvae):
  model, params = cvae
  likelihood = likelihoods.make_likelihood("bernoulli")
  z = jax.random.normal(jax.random.PRNGKey(3), (6, 3))
  rows = jnp.eye(4)
  grid = train_cvae.condition_grid(model, likelihood, params, z, rows)
  assert grid.shape == (4, 6, 8, 8, 1)
  for r in range(4):
    for j in range(6):
      single = likelihood.mean(protocol.decode(model, params, z[j:j + 1], rows[r:r + 1]))
      np.testing.assert_allclose(grid[r, j], single[0], atol=1e-6)
  # Identical conditions give identical rows: only z varies along a row.
  same = train_cvae.condition_grid(model, likelihood, params, z, jnp.stack([rows[1]] * 3))
  np.testing.assert_allclose(same[0], same[2], atol=1e-6)
  assert float(jnp.max(jnp.abs(grid[:, 0] - grid[:, 1]))) > 1e-3


def test_accuracy_curve_keeps_the_last_record_of_each_epoch():
  records = [{"epoch": 1, "step": 5, "loss": 3.0}, {"epoch": 1, "conditional_accuracy": 0.2},
             {"epoch": 2, "conditional_accuracy": 0.5}, {"epoch": 2, "conditional_accuracy": 0.6},
             {"step": 9, "loss": 1.0}]
  assert train_cvae.accuracy_curve(records) == ([1, 2], [0.2, 0.6])
  assert train_cvae.accuracy_curve([{"epoch": 1, "loss": 2.0}]) == ([], [])


def test_figure_rows_for_labels_and_attributes():
  labels = train_cvae.Conditions(np.eye(3)[[0, 1]], np.eye(3)[[2]], "label", ("0", "1", "2"),
                                 (0, 1, 2))
  rows, names = train_cvae.figure_rows(labels, np.zeros(3))
  np.testing.assert_array_equal(rows, np.eye(3)) and names == ["0", "1", "2"]
  attrs = train_cvae.Conditions(np.zeros((2, 4)), np.zeros((1, 4)), "attributes",
                                ("A", "B", "C", "D"), (1, 3))
  base = np.array([1, 0, 0, 0], np.float32)
  rows, names = train_cvae.figure_rows(attrs, base)
  np.testing.assert_array_equal(rows, [[1, 0, 0, 0], [1, 1, 0, 0], [1, 0, 0, 1]])
  assert names == ["as is", "+B", "+D"]


def test_celeb_a_crop_and_resize():
  faces = np.zeros((2, 218, 178, 3), np.uint8)
  top, left = (218 - 140) // 2, (178 - 140) // 2
  faces[:, top:top + 140, left:left + 140] = 255     # white exactly where the crop is
  faces[1, top:top + 70] = 0                          # second face: top half of the crop black
  out = datasets.celeb_a_images(faces, 8)
  assert out.shape == (2, 8, 8, 3) and out.dtype == np.float32
  np.testing.assert_allclose(out[0], 1.0, atol=1e-6)
  np.testing.assert_allclose(out[1, :3], 0.0, atol=1e-6)   # away from the edge the
  np.testing.assert_allclose(out[1, 5:], 1.0, atol=1e-6)   # antialiasing filter blurs
  np.testing.assert_allclose(out[1].mean(), 0.5, atol=1e-6)


def test_celeb_a_through_tfds_mock_data():
  import tensorflow_datasets as tfds
  with tfds.testing.mock_data(num_examples=5, policy=tfds.testing.MockPolicy.USE_CODE):
    celeb = datasets.read_celeb_a(registry.get("celeb_a"), None, False, {"image_size": 16},
                                  chunk=2)
  assert celeb.train_images.shape == (5, 16, 16, 3) and celeb.valid_images.shape == (5, 16, 16, 3)
  assert celeb.train_attributes.shape == (5, 40) and len(celeb.attribute_names) == 40
  assert set(np.unique(celeb.train_attributes)) <= {0.0, 1.0}
  assert "Smiling" in celeb.attribute_names and np.all(celeb.train_labels == sources.NO_LABEL)
  assert 0.0 <= celeb.train_images.min() and celeb.train_images.max() <= 1.0


def test_celeb_a_without_a_tfds_copy_is_a_clear_error(tmp_path):
  with pytest.raises(sources.DataNotFoundError, match="TFDS-prepared copy"):
    sources.load("celeb_a", str(tmp_path))


TINY = ["--config=experiments/configs/train_cvae.py:smoke"]   # 2 epochs, batch 32, 16-2-16


def _run(argv):
  return run_experiment(train_cvae, argv)


@pytest.fixture(scope="module")
def labelled_dir(tmp_path_factory):
  return write_synthetic_mnist(tmp_path_factory.mktemp("cvae_data"), 256, 64)


def test_train_cvae_end_to_end_with_an_iwae_objective(labelled_dir, tmp_path):
  workdir = tmp_path / "run"
  results = _run([f"--workdir={workdir}", f"--config.data_dir={labelled_dir}",
                  "--config.objective=iwae=2", *TINY])
  for name in ("config.json", "metrics.jsonl", "class_grid.png", "analogies.png",
               "reconstructions.png", "conditional_accuracy.png", "results.json", "results.md"):
    assert os.path.getsize(workdir / name) > 0, name
  # The curve: conditional accuracy beside the test ELBO at every evaluation (eval_every=1).
  records = [json.loads(line) for line in open(workdir / "metrics.jsonl")]
  curve = [r for r in records if "conditional_accuracy" in r]
  assert [r["epoch"] for r in curve] == [1, 2]
  assert all(0 <= r["conditional_accuracy"] <= 1 and np.isfinite(r["test_elbo"]) for r in curve)
  assert train_cvae.accuracy_curve(records)[0] == [1, 2]
  stored = json.load(open(workdir / "results.json"))
  assert stored["objective"] == "iwae=2" and stored["condition_dim"] == 10
  assert stored["test_elbo"] < 0 and stored["steps"] == 16
  for key in ("sample_fd", "sample_score", "conditional_accuracy", "classifier_test_accuracy"):
    assert np.isfinite(stored[key]), key
  assert 0 <= stored["conditional_accuracy"] <= 1
  # The smoke config names the log-likelihood evaluator: log p(x|c), K = 20, 10 images.
  assert np.isfinite(stored["test_nll"]) and stored["ll_examples_used"] == 10
  assert results["sample_fd"] == stored["sample_fd"]


def test_train_cvae_on_celeb_a_mock_data(tmp_path):
  import tensorflow_datasets as tfds
  data_dir = tmp_path / "tfds"
  (data_dir / "celeb_a").mkdir(parents=True)
  workdir = tmp_path / "celeb"
  with tfds.testing.mock_data(num_examples=40, policy=tfds.testing.MockPolicy.USE_CODE):
    results = _run([f"--workdir={workdir}", f"--config.data_dir={data_dir}",
                    "--config=experiments/configs/train_cvae.py:celeb_a",
                    "--config.image_size=8", "--config.epochs=1", "--config.batch_size=20",
                    "--config.hidden=16", "--config.latent_dim=2", "--config.grid_columns=2",
                    "--config.analogies=2", "--config.attributes=Smiling,Eyeglasses"])
  assert results["condition"] == "attributes" and results["condition_dim"] == 40
  assert "sample_fd" not in results and np.isfinite(results["test_elbo"])
  config = json.load(open(workdir / "config.json"))
  assert config["model"] == "conv" and config["preprocess"] == "continuous"
  assert os.path.getsize(workdir / "class_grid.png") > 0
  # Attributes are no class to score: no accuracy curve.
  assert not (workdir / "conditional_accuracy.png").exists()
  assert not any("conditional_accuracy" in line for line in open(workdir / "metrics.jsonl"))


@pytest.mark.parametrize("flag,expected", [
    ("--config.objective=iwae=0", "config.objective=iwae=0: bad variant"),
    ("--config.dataset=binarized_mnist", "has neither labels nor attributes"),
])
def test_bad_input_is_one_clear_error_and_writes_nothing(labelled_dir, tmp_path, flag, expected):
  workdir = tmp_path / "never"
  extra = []
  if "binarized" in flag:
    np.savez(tmp_path / "binarized_mnist.npz", train=np.zeros((40, 784), np.uint8),
             valid=np.zeros((8, 784), np.uint8), test=np.zeros((8, 784), np.uint8))
    extra = [f"--config.data_dir={tmp_path}"]
  else:
    extra = [f"--config.data_dir={labelled_dir}"]
  with pytest.raises(ValueError, match=expected):
    _run([f"--workdir={workdir}", *extra, *TINY, flag])
  assert not workdir.exists()
