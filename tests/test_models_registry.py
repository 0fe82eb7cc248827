"""models/registry.py: priors and posteriors by name, with what each can do; a new part
is one entry; nothing outside the models compares their names."""

import ast
import pathlib

import jax
import jax.numpy as jnp
import pytest

from genjax import models
from genjax.models import registry as parts

ROOT = pathlib.Path(__file__).resolve().parents[1]


def test_the_entries_know_what_they_can_do():
  table = {(p, q): parts.capabilities(p, q) for p in parts.PRIORS for q in parts.POSTERIORS
           if parts.combines(p, q)}
  assert set(table) == {("standard_normal", q) for q in parts.POSTERIORS} | {("vamp", "diagonal")}
  closed = {k for k, c in table.items() if c.closed_form_kl}
  assert closed == {("standard_normal", "diagonal"), ("standard_normal", "full_covariance")}
  anywhere = {k[1] for k, c in table.items() if c.density_anywhere}
  assert anywhere == {"diagonal", "full_covariance"}          # STL and DReG need it
  assert {k[1] for k, c in table.items() if c.factorized} == {"diagonal"}   # free bits
  assert "VampPrior" in table[("vamp", "diagonal")].kl_problem
  hierarchy = parts.capabilities("standard_normal", "diagonal", (50,))
  assert not hierarchy.closed_form_kl and "upper_latents=50" in hierarchy.description
  assert not parts.combines("standard_normal", "planar", (50,))
  assert models.FLOW_POSTERIORS == parts.reading("flow_steps", parts.POSTERIORS) == (
      "planar", "iaf")


def test_builder_kwargs_are_the_fields_the_parts_read():
  class Config:
    prior, posterior, pseudo_inputs, flow_steps = "vamp", "diagonal", 7, 3
  assert parts.builder_kwargs(Config) == {"num_pseudo_inputs": 7}
  Config.prior, Config.posterior = "standard_normal", "iaf"
  assert parts.builder_kwargs(Config) == {"flow_steps": 3}
  with pytest.raises(ValueError, match="posterior='nope': expected one of diagonal, "):
    parts.posterior("nope")
  with pytest.raises(ValueError, match="'vamp' is already registered"):
    parts.register_prior(parts.Part("vamp", "again"))


def test_a_new_posterior_is_one_entry(monkeypatch):
  """A posterior registered outside genjax.models builds through models.build_vae and
  brings its capabilities with it."""
  built = []

  def build(model, image_shape, latent_dim, hidden, output_channels, activation, scale):
    built.append(scale)
    return parts.posterior("diagonal").build(model, image_shape, latent_dim, hidden,
                                             output_channels, activation)

  entry = parts.Part("scaled", "posterior=scaled", reads={"posterior_scale": "scale"},
                     factorized=False, build=build)
  monkeypatch.setitem(parts.POSTERIORS, entry.name, entry)
  assert not parts.capabilities("standard_normal", "scaled").factorized
  vae = models.build_vae("mlp", (4, 4, 1), 2, (8,), 1, posterior="scaled", scale=2.0)
  assert built == [2.0]
  params = vae.init(jax.random.PRNGKey(0), jnp.zeros((1, 4, 4, 1)))
  assert "params" in params
  with pytest.raises(ValueError, match="posterior='scaled' read scale: pass it to build_vae"):
    models.build_vae("mlp", (4, 4, 1), 2, (8,), 1, posterior="scaled")


def _compared_strings(path: pathlib.Path) -> list[tuple[int, str]]:
  """String constants that a comparison (==, !=, in, not in) tests against."""
  found = []
  for node in ast.walk(ast.parse(path.read_text())):
    if isinstance(node, ast.Compare):
      for side in [node.left, *node.comparators]:
        items = side.elts if isinstance(side, (ast.Tuple, ast.List, ast.Set)) else [side]
        found += [(node.lineno, i.value) for i in items
                  if isinstance(i, ast.Constant) and isinstance(i.value, str)]
  return found


def test_nothing_outside_the_models_compares_a_prior_or_posterior_name():
  names = set(parts.PRIORS) | set(parts.POSTERIORS)
  found = [f"{p.relative_to(ROOT)}:{line}: {text!r}"
           for p in sorted([*ROOT.glob("experiments/**/*.py"), *ROOT.glob("genjax/**/*.py")])
           if "models" not in p.parts
           for line, text in _compared_strings(p) if text in names]
  assert not found, "\n".join(found)


def test_a_parts_settings_are_config_fields_declared_by_its_entry(tmp_path):
  from experiments.framework import configuration
  fields = configuration.fields()
  assert fields["pseudo_inputs"].doc == ("prior=vamp: " + parts.prior("vamp").settings[
      "pseudo_inputs"].doc + ".")
  assert fields["flow_steps"].doc.startswith("posterior=planar or iaf: number of flow steps")
  with pytest.raises(configuration.ConfigError, match=r"config.flow_steps=0: expected an "
                                                      r"integer >= 1"):
    configuration.parse("train_vae", [f"--workdir={tmp_path}", "--config.posterior=planar",
                                      "--config.kl=mc", "--config.flow_steps=0"])


def test_families_by_name_build_from_a_config():
  from genjax import likelihoods
  assert {"vae", "cvae", "m2", "autoencoder", "gan", "vaegan", "vqvae", "pixelcnn"} <= set(
      parts.FAMILIES)
  assert parts.family("m2").conditional and not parts.family("vqvae").latent
  assert parts.family("cvae").conditional and not parts.family("vae").conditional
  assert parts.family("gan").adversarial and not parts.family("gan").latent
  assert parts.family("vae").latent and not parts.family("autoencoder").latent

  class Config:
    model, latent_dim, hidden, activation = "mlp", 2, (8,), "relu"
    prior, posterior, upper_latents, pseudo_inputs = "vamp", "diagonal", (), 3
  gaussian = likelihoods.make_likelihood("gaussian_learned")   # two parameters per channel
  vae = parts.family("vae").from_config(Config, (4, 4, 1), gaussian)
  direct = models.build_vae("mlp", (4, 4, 1), 2, (8,), 2, prior="vamp", num_pseudo_inputs=3)
  x = jnp.zeros((1, 4, 4, 1))
  shapes = lambda m: jax.tree.map(jnp.shape, m.init(jax.random.PRNGKey(0), x)["params"])
  assert shapes(vae) == shapes(direct) and vae.num_pseudo_inputs == 3
  with pytest.raises(ValueError, match="model family 'flow': expected one of vae, "):
    parts.family("flow")
