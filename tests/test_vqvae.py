"""The VQ-VAE and its PixelCNN prior: quantization, the straight-through estimator, the
losses' gradients, the EMA codebook against a hand computation, codebook statistics, the
masked convolutions' receptive fields, the EMA state's checkpoint and placement
independence, and experiments/train_vqvae.py end to end on tiny data."""

import json
import os
import pathlib
import shutil
import subprocess
import sys

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import launch
from experiments import train_vqvae
from experiments.framework.configuration import ConfigError, parse
from genjax import likelihoods, models
from genjax.losses import vq
from genjax.data import registry
from genjax.models import pixelcnn, vqvae
from genjax.training import checkpoint, vq_step
from tests.experiment_helpers import run_experiment, write_synthetic_mnist

ROOT = pathlib.Path(__file__).resolve().parents[1]
K, D, WIDTH = 5, 3, 4
SHAPE = (8, 8, 1)   # a 2x2 code grid


def _model_and_params(seed=0):
  model = models.VQVAE(K, D, WIDTH)
  params = jax.jit(model.init)(jax.random.PRNGKey(seed), jnp.zeros((1, *SHAPE)))["params"]
  return model, params


def _images(n=4, seed=1):
  return jax.random.bernoulli(jax.random.PRNGKey(seed), 0.4, (n, *SHAPE)).astype(jnp.float32)


def test_nearest_codes_picks_the_closest_codebook_vector():
  z = jax.random.normal(jax.random.PRNGKey(0), (6, 4, D))
  codebook = jax.random.normal(jax.random.PRNGKey(1), (K, D))
  distances = np.sum((np.asarray(z)[..., None, :] - np.asarray(codebook)) ** 2, -1)
  np.testing.assert_array_equal(vqvae.nearest_codes(z, codebook), distances.argmin(-1))
  # A vector on a code is that code.
  assert int(vqvae.nearest_codes(codebook[3] + 1e-3, codebook)) == 3


def test_straight_through_passes_the_gradient_at_z_q_to_z_e_and_none_to_e():
  z_e, e = jax.random.normal(jax.random.PRNGKey(0), (2, 3, D)), jnp.ones((2, 3, D))
  weights = jax.random.normal(jax.random.PRNGKey(1), (2, 3, D))
  f = lambda z_e, e: jnp.sum(weights * jnp.sin(vqvae.straight_through(z_e, e)))  # noqa: E731
  g_z_e, g_e = jax.grad(f, argnums=(0, 1))(z_e, e)
  chex.assert_trees_all_close(vqvae.straight_through(z_e, e), e)    # the forward value is e
  chex.assert_trees_all_close(g_z_e, weights * jnp.cos(e))          # d f / d z_q at z_q = e
  assert not np.any(np.asarray(g_e))


def test_the_decoder_gradient_reaches_z_e_as_it_is_at_z_q():
  model, params = _model_and_params()
  x = _images()
  likelihood = likelihoods.make_likelihood("bernoulli")
  apply = lambda method, *a: model.apply({"params": params}, *a, method=method)  # noqa: E731

  @jax.jit
  def gradients():
    z_e = apply(model.encode, x)
    e = apply(model.lookup, apply(model.quantize, z_e))
    recon = lambda z: -jnp.sum(likelihood.log_prob(x, apply(model.decode, z)))  # noqa: E731
    return jax.grad(lambda z: recon(vqvae.straight_through(z, e)))(z_e), jax.grad(recon)(e)

  through, at_z_q = gradients()
  chex.assert_trees_all_close(through, at_z_q, rtol=1e-5, atol=1e-6)
  assert np.any(np.asarray(through))


def test_the_codebook_learns_only_from_the_codebook_loss():
  model, params = _model_and_params()
  batch = {"image": _images()}
  likelihood = likelihoods.make_likelihood("bernoulli")
  out = model.apply({"params": params}, batch["image"])
  codes, z_e = np.asarray(out.codes), np.asarray(out.z_e)
  codebook = np.asarray(params["codebook"])
  # d/de_j of mean_b sum ||sg[z_e] - e||^2 = 2 / B sum_{positions coded j} (e_j - z_e).
  expected = np.zeros_like(codebook)
  for j in range(K):
    expected[j] = 2.0 / len(z_e) * np.sum(codebook[j] - z_e[codes == j], axis=0)
  grad = lambda update: jax.grad(vq.make_vqvae_loss(model, likelihood, 0.25, update),  # noqa
                                 has_aux=True)(params, batch, None)[0]
  by_loss, by_ema = jax.jit(lambda: (grad("loss"), grad("ema")))()   # one compile
  np.testing.assert_allclose(by_loss["codebook"], expected, rtol=1e-5, atol=1e-6)
  assert not np.any(np.asarray(by_ema["codebook"]))
  # The encoder does learn (reconstruction and commitment), the same in both.
  assert np.any(np.asarray(by_ema["encoder_layers_0"]["kernel"]))
  chex.assert_trees_all_close(by_ema["encoder_layers_0"], by_loss["encoder_layers_0"])


def test_vq_terms_weigh_the_commitment_by_beta():
  model, params = _model_and_params()
  x = _images()
  likelihood = likelihoods.make_likelihood("bernoulli")
  out = model.apply({"params": params}, x)
  recon = -np.asarray(likelihood.log_prob(x, out.logits))
  distance = np.sum((np.asarray(out.z_e) - np.asarray(out.e)) ** 2, axis=(1, 2, 3))
  for update, beta, expected in (("loss", 0.25, recon + 1.25 * distance),
                                 ("ema", 0.5, recon + 0.5 * distance)):
    loss, (metrics, stats) = vq.make_vqvae_loss(model, likelihood, beta, update)(
        params, {"image": x}, None)
    np.testing.assert_allclose(loss, expected.mean(), rtol=1e-5)
    np.testing.assert_allclose(metrics["commitment_loss"], distance.mean(), rtol=1e-5)
    assert float(jnp.sum(stats["counts"])) == x.shape[0] * 2 * 2


def test_ema_update_against_a_hand_computation():
  codes = jnp.array([[0, 2], [2, 2]])                                  # K = 3: code 1 unused
  z_e = jnp.array([[[1.0, 2.0], [3.0, 0.0]], [[5.0, 2.0], [1.0, 4.0]]])
  counts, sums = vq.code_counts(codes, 3), vq.code_sums(codes, z_e, 3)
  np.testing.assert_array_equal(counts, [1, 0, 3])
  np.testing.assert_allclose(sums, [[1, 2], [0, 0], [9, 6]])
  ema = {"counts": jnp.array([2.0, 1.0, 0.5]), "sums": jnp.array([[2.0, 2.0], [1.0, -1.0],
                                                                  [0.5, 0.0]])}
  gamma, eps = 0.9, 1e-5
  new, codebook = vq.ema_codebook_update(ema, counts, sums, gamma, eps)
  n = np.array([2.0, 1.0, 0.5]) * 0.9 + np.array([1, 0, 3]) * 0.1       # [1.9, 0.9, 0.75]
  m = np.array([[2, 2], [1, -1], [0.5, 0]]) * 0.9 + np.array([[1, 2], [0, 0], [9, 6]]) * 0.1
  smoothed = (n + eps) / (n.sum() + 3 * eps) * n.sum()
  np.testing.assert_allclose(new["counts"], n, rtol=1e-6)
  np.testing.assert_allclose(new["sums"], m, rtol=1e-6)
  np.testing.assert_allclose(codebook, m / smoothed[:, None], rtol=1e-5)
  # Starting from init_ema, a step with no codes used leaves every code where it was...
  start = jnp.array([[1.0, 0.0], [0.0, 2.0], [3.0, 3.0]])
  _, same = vq.ema_codebook_update(vq.init_ema(start), jnp.zeros(3), jnp.zeros((3, 2)), 0.9)
  np.testing.assert_allclose(same, start * 0.9 / ((0.9 + 1e-5) / (2.7 + 3e-5) * 2.7), rtol=1e-6)
  # ... and with gamma = 0 a used code is the mean of its vectors.
  _, fresh = vq.ema_codebook_update(vq.init_ema(start), counts, sums, 0.0, epsilon=0.0)
  np.testing.assert_allclose(np.asarray(fresh)[[0, 2]], [[1, 2], [3, 2]], rtol=1e-6)


def test_code_distribution_usage_and_perplexity_on_a_hand_example():
  codes = jnp.array([[[0, 0], [1, 1]], [[0, 0], [0, 0]]])               # K = 4
  p = np.asarray(vq.code_distribution(codes, 4))
  np.testing.assert_allclose(p, [[0.5, 1.0], [0.5, 0.0], [0, 0], [0, 0]])
  average = p.mean(-1)                                                  # [0.75, 0.25, 0, 0]
  assert float(vq.codebook_usage(average)) == 0.5
  np.testing.assert_allclose(vq.perplexity(average),
                             np.exp(-(0.75 * np.log(0.75) + 0.25 * np.log(0.25))), rtol=1e-6)
  np.testing.assert_allclose(vq.perplexity(jnp.full(8, 1 / 8)), 8.0, rtol=1e-6)
  np.testing.assert_allclose(vq.perplexity(jnp.array([1.0, 0, 0])), 1.0)


def test_causal_masks():
  np.testing.assert_array_equal(pixelcnn.causal_mask(3, "A"), [[1, 1, 1], [1, 0, 0], [0, 0, 0]])
  np.testing.assert_array_equal(pixelcnn.causal_mask(3, "B"), [[1, 1, 1], [1, 1, 0], [0, 0, 0]])
  with pytest.raises(ValueError, match="mask_type='C': expected one of A, B"):
    pixelcnn.causal_mask(3, "C")
  with pytest.raises(ValueError, match="kernel_size=4: a masked convolution needs an odd"):
    pixelcnn.causal_mask(4, "A")


def _dependence(f, x):
  """dep[i, j]: output position i (raster order) depends on input position j."""
  jac = jax.jit(jax.jacfwd(f))(x)                          # [1, H, W, F, 1, H, W, C]
  h, w = x.shape[1:3]
  return np.abs(np.asarray(jac)).sum(axis=(0, 3, 4, 7)).reshape(h * w, h * w) > 0


class _Stack(pixelcnn.nn.Module):
  """A type A layer, then type B layers (the PixelCNN's causal core, continuous input)."""
  types: str

  @pixelcnn.nn.compact
  def __call__(self, x):
    for i, t in enumerate(self.types):
      x = pixelcnn.MaskedConv(3, 5 if i == 0 else 3, t)(jnp.tanh(x) if i else x)
    return x


@pytest.mark.parametrize("types", ["A", "B", "ABB"])
def test_masked_convolutions_see_only_earlier_positions(types):
  x = jax.random.normal(jax.random.PRNGKey(0), (1, 5, 5, 2))
  stack = _Stack(types)
  params = jax.jit(stack.init)(jax.random.PRNGKey(1), x)
  dep = _dependence(lambda v: stack.apply(params, v), x)
  n = dep.shape[0]
  assert not np.any(np.triu(dep, 1)), "an output depends on a later position"
  np.testing.assert_array_equal(np.diag(dep), np.full(n, types == "B"))  # own position: B only
  assert all(dep[i, i - 1] for i in range(1, n) if i % 5)   # the left neighbour is seen,
  assert all(dep[i, i - 5] for i in range(5, n))            # and the one above
  if types == "ABB":   # deeper layers see further back: the row above, two columns right
    assert dep[2 * 5 + 1, 1 * 5 + 3]


def test_pixelcnn_logits_at_a_position_ignore_its_own_code_and_later_ones():
  prior = models.PixelCNN(K, 16, 2)
  codes = jax.random.randint(jax.random.PRNGKey(0), (1, 4, 4), 0, K)
  params = jax.jit(prior.init)(jax.random.PRNGKey(1), codes)
  logits = jax.jit(lambda c: prior.apply(params, c).reshape(16, K))
  base = np.asarray(logits(codes))
  for j in range(16):
    changed = codes.reshape(-1).at[j].set((codes.reshape(-1)[j] + 1) % K).reshape(codes.shape)
    moved = np.any(np.abs(np.asarray(logits(changed)) - base) > 0, axis=-1)
    assert not np.any(moved[:j + 1]), j           # positions <= j never see code j
    if j < 15:
      assert np.any(moved[j + 1:]), j             # some later one does


def test_prior_nll_and_sampling():
  logits = jax.random.normal(jax.random.PRNGKey(0), (2, 2, 3, K))
  codes = jax.random.randint(jax.random.PRNGKey(1), (2, 2, 3), 0, K)
  log_p = np.asarray(jax.nn.log_softmax(logits))
  expected = -np.array([sum(log_p[b, i, j, codes[b, i, j]] for i in range(2) for j in range(3))
                        for b in range(2)])
  np.testing.assert_allclose(vq.prior_nll(logits, codes), expected, rtol=1e-5)
  prior = models.PixelCNN(K, 4, 1)
  params = jax.jit(prior.init)(jax.random.PRNGKey(2), codes[:, :, :2])["params"]
  drawn = jax.jit(lambda key: pixelcnn.sample(prior, params, key, 3, (2, 2)))(
      jax.random.PRNGKey(3))
  assert drawn.shape == (3, 2, 2) and drawn.dtype == jnp.int32
  assert np.all((np.asarray(drawn) >= 0) & (np.asarray(drawn) < K))


def test_the_ema_step_sets_the_codebook_and_its_state_round_trips_a_checkpoint(tmp_path):
  model, params = _model_and_params()
  likelihood = likelihoods.make_likelihood("bernoulli")
  optimizer = vq_step.make_optimizer(optax.adam(1e-2), params, "ema")
  state = vq_step.create_vq_train_state(params, optimizer, jax.random.PRNGKey(2))
  step = jax.jit(vq_step.make_vq_train_step(vq.make_vqvae_loss(model, likelihood, 0.25, "ema"),
                                            optimizer, "ema", 0.9))
  batch = {"image": _images()}
  new, metrics = step(state, batch)
  out = model.apply({"params": params}, batch["image"])
  ema, codebook = vq.ema_codebook_update(state.ema, vq.code_counts(out.codes, K),
                                         vq.code_sums(out.codes, out.z_e, K), 0.9)
  chex.assert_trees_all_close(new.ema, ema, rtol=1e-5)
  chex.assert_trees_all_close(new.params["codebook"], codebook, rtol=1e-5)
  assert np.isfinite(float(metrics["perplexity"])) and int(new.step) == 1
  new, _ = step(new, batch)
  manager = checkpoint.make_manager(str(tmp_path))
  checkpoint.save(manager, new, 2)
  restored, at = checkpoint.restore_latest(checkpoint.make_manager(str(tmp_path)), state)
  assert at == 2
  chex.assert_trees_all_close(restored.ema, jax.device_get(new.ema))
  chex.assert_trees_all_close(restored.params, jax.device_get(new.params))


PLACEMENT_SCRIPT = r'''
import chex, jax, jax.numpy as jnp, numpy as np, optax
from genjax import likelihoods, models
from genjax.data import sources, transforms
from genjax.losses import vq
from genjax.training import loop, parallel, vq_step

assert jax.device_count() == 2, jax.devices()
x = sources.synthetic(32, 8, shape=(8, 8, 1)).train_images
model = models.VQVAE(5, 3, 4)
params = model.init(jax.random.PRNGKey(0), jnp.zeros((1, 8, 8, 1)))["params"]
opt = vq_step.make_optimizer(optax.adam(1e-2), params, "ema")
loss = vq.make_vqvae_loss(model, likelihoods.make_likelihood("bernoulli"), 0.25, "ema")
pre = lambda b, k: {**b, "image": transforms.preprocess(b["image"], k, "dynamic")}
results = {}
for kind in parallel.PLACEMENTS:
  placement = parallel.make_placement(kind)
  step = vq_step.make_vq_train_step(loss, opt, "ema", 0.9, axis_name=placement.axis_name)
  state = vq_step.create_vq_train_state(params, opt, jax.random.PRNGKey(1))
  for state, log in loop.fit(state, step, {"image": x}, batch_size=8, num_epochs=1,
                             data_rng=jax.random.PRNGKey(2), preprocess=pre,
                             steps_per_chunk=4, placement=placement):
    pass
  results[kind] = jax.device_get(state)
  print(kind, log["loss"], log["perplexity"], flush=True)
for kind in ("pmap", "sharded"):
  chex.assert_trees_all_close(results[kind].ema, results["none"].ema, rtol=1e-5, atol=1e-6)
  chex.assert_trees_all_close(results[kind].params, results["none"].params, rtol=2e-4,
                              atol=2e-5)
assert float(results["none"].ema["counts"].sum()) != 5.0   # the EMA moved
print("ok")
'''


def test_ema_statistics_are_the_global_batchs_on_every_placement():
  """Under pmap each device's code counts and sums are psum'd: 1 and 2 devices agree."""
  env = {**os.environ, "XLA_FLAGS": launch.host_devices_xla_flags(2, ""),
         "PYTHONPATH": str(ROOT), "JAX_PLATFORMS": "cpu"}
  result = subprocess.run([sys.executable, "-c", PLACEMENT_SCRIPT], capture_output=True,
                          text=True, env=env, cwd=ROOT, timeout=300)
  assert result.returncode == 0 and result.stdout.strip().endswith("ok"), (
      result.stdout + result.stderr[-3000:])


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
  """mnist.npz holding the ten-class synthetic blobs: 64 train, 32 test images."""
  return write_synthetic_mnist(tmp_path_factory.mktemp("vq_blobs"), 64, 32, seed=1)


def test_config_refuses_unread_and_unsupported_settings(tmp_path):
  with pytest.raises(ConfigError, match="config.ema_decay=0.9 is not read: train_vqvae reads "
                                        "ema_decay only when codebook_update=ema"):
    parse("train_vqvae", [f"--workdir={tmp_path}", "--config.codebook_update=loss",
                          "--config.ema_decay=0.9"])
  with pytest.raises(ConfigError, match=r"config.ema_decay=1.0: expected a number in \[0, 1\)"):
    parse("train_vqvae", [f"--workdir={tmp_path}", "--config.ema_decay=1.0"])
  with pytest.raises(ConfigError, match="config.codebook_update=kmeans: expected one of loss, "
                                        "ema"):
    parse("train_vqvae", [f"--workdir={tmp_path}", "--config.codebook_update=kmeans"])
  with pytest.raises(ConfigError, match="config.latent_dim: train_vqvae has no such field"):
    parse("train_vqvae", [f"--workdir={tmp_path}", "--config.latent_dim=3"])


def test_train_vqvae_end_to_end_writes_every_file_and_resumes_the_ema_state(data_dir, tmp_path):
  workdir = str(tmp_path / "vq")
  # The smoke config: 2 epochs at batch 16 (8 steps), 2 steps per chunk, prior 1 epoch.
  argv = [f"--workdir={workdir}", f"--config.data_dir={data_dir}",
          "--config=experiments/configs/train_vqvae.py:smoke", "--config.codebook_update=ema",
          "--config.ema_decay=0.9"]
  results = run_experiment(train_vqvae, argv)
  for name in ("config.json", "metrics.jsonl", "reconstructions.png", "samples.png",
               "results.json", "results.md", "prior/metrics.jsonl", "prior/vqvae.json"):
    assert os.path.getsize(os.path.join(workdir, name)) > 0, name
  assert sorted(os.listdir(os.path.join(workdir, "checkpoints"))) == ["4", "8"]
  assert sorted(os.listdir(os.path.join(workdir, "prior", "checkpoints"))) == ["4"]
  stored = json.load(open(os.path.join(workdir, "results.json")))
  for key in ("test_recon", "test_commitment", "codebook_usage", "codebook_perplexity",
              "prior_test_nll", "prior_bits_per_dim", "test_elbo", "sample_fd", "sample_score",
              "wall_s", "train_s"):
    assert np.isfinite(stored[key]), key
  assert 0 < stored["codebook_usage"] <= 1 and 1 <= stored["codebook_perplexity"] <= 8
  assert stored["test_elbo"] == pytest.approx(-(stored["test_recon"] + stored["prior_test_nll"]))
  assert stored["steps"] == 8 and stored["prior_steps"] == 4
  records = [json.loads(line) for line in open(os.path.join(workdir, "metrics.jsonl"))]
  assert [r["step"] for r in records if "recon" in r] == [2, 4, 6, 8]
  assert [r["epoch"] for r in records if "codebook_usage" in r] == [1, 2]

  # Resumed from step 4 (its EMA counts and sums restored), it ends where it ended.
  shutil.rmtree(os.path.join(workdir, "checkpoints", "8"))
  again = run_experiment(train_vqvae, argv)
  for key in ("params_digest", "test_recon", "codebook_perplexity", "prior_test_nll"):
    assert again[key] == results[key], key

  # A prior trained on another VQ-VAE's codes is not resumed.
  with pytest.raises(ValueError, match="holds a prior trained on the VQ-VAE's codes at step 8, "
                                       "but this run's VQ-VAE ends at step 12"):
    run_experiment(train_vqvae, [*argv, "--config.epochs=3"])


def test_train_vqvae_refuses_image_sides_it_cannot_halve_twice(tmp_path, monkeypatch):
  odd = registry.DatasetEntry("odd_sides", (30, 30, 1), provenance="a test entry",
                              obtain="nowhere", num_classes=2, npz=("x_train", "y_train"))
  monkeypatch.setitem(registry.REGISTRY, odd.name, odd)
  with pytest.raises(ConfigError, match="config.dataset=odd_sides: train_vqvae needs image "
                                        r"sides that are multiples of 4 \(got 30x30\)"):
    parse("train_vqvae", [f"--workdir={tmp_path}", "--config.dataset=odd_sides"])
