"""losses/elbo (_variants, _builtin): the variant registry, "+" composition and the refused
combinations.

The losses the variants build are tested in test_losses_elbo.py; here: the strings, the
Objectives they parse to, and the errors."""

import dataclasses
import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from genjax import likelihoods
from genjax.losses import elbo
from genjax.losses.elbo import Objective

from tests import linear_gaussian as lg


def _old_parse_variant(text):
  """The parser before the registry, verbatim: the reference the registry must reproduce."""
  name, sep, value = text.strip().partition("=")
  fixed = {"elbo": {}, "elbo_mc": {"kl": "mc"}, "elbo_stl": {"kl": "mc", "estimator": "stl"}}
  valued = {"elbo_k": ("num_samples", int, {"kl": "mc"}), "beta": ("beta", float, {}),
            "beta_warmup": ("warmup_steps", int, {}), "free_bits": ("free_bits", float, {}),
            "iwae": ("num_samples", int, {"kind": "iwae", "kl": "mc"}),
            "iwae_dreg": ("num_samples", int, {"kind": "iwae", "kl": "mc", "estimator": "dreg"})}
  error = ValueError(f"bad variant {text!r}")
  if not sep and name in fixed:
    return Objective(text.strip(), **fixed[name])
  if not sep or name not in valued:
    raise error
  field, cast, extra = valued[name]
  try:
    number = cast(value)
  except ValueError:
    raise error from None
  if not np.isfinite(number) or number < 0 or (cast is int and number < 1):
    raise error
  return Objective(text.strip(), **extra, **{field: number})


# One example per registry entry and the Objective it must parse to. A new entry needs a row.
REGISTRY_TABLE = {
    "elbo": ("elbo", Objective("elbo")),
    "elbo_mc": ("elbo_mc", Objective("elbo_mc", kl="mc")),
    "elbo_stl": ("elbo_stl", Objective("elbo_stl", kl="mc", estimator="stl")),
    "elbo_k": ("elbo_k=5", Objective("elbo_k=5", num_samples=5, kl="mc")),
    "beta": ("beta=0.5", Objective("beta=0.5", beta=0.5)),
    "beta_warmup": ("beta_warmup=1000", Objective("beta_warmup=1000", warmup_steps=1000)),
    "free_bits": ("free_bits=0.25", Objective("free_bits=0.25", free_bits=0.25)),
    "iwae": ("iwae=50", Objective("iwae=50", kind="iwae", num_samples=50, kl="mc")),
    "iwae_dreg": ("iwae_dreg=50", Objective("iwae_dreg=50", kind="iwae", num_samples=50,
                                            kl="mc", estimator="dreg")),
}


def test_the_table_covers_the_registry_and_the_forms_come_from_it():
  builtin = [v.name for v in elbo.BUILTIN_VARIANTS]
  assert set(REGISTRY_TABLE) == set(builtin)
  assert list(elbo.VARIANTS)[:len(builtin)] == builtin     # a caller may have registered more
  assert elbo.VARIANT_FORMS[:len(builtin)] == (
      "elbo", "elbo_mc", "elbo_stl", "elbo_k=K", "beta=B", "beta_warmup=STEPS",
      "free_bits=NATS", "iwae=K", "iwae_dreg=K")
  assert elbo.VARIANT_FORMS == tuple(v.form for v in elbo.VARIANTS.values())
  for v in elbo.BUILTIN_VARIANTS:
    assert v.doc and "\n" not in v.doc and any(c.isdigit() for c in v.doc), v.name  # a year


@pytest.mark.parametrize("name", list(REGISTRY_TABLE))
def test_every_registry_entry_parses_to_its_objective(name):
  text, expected = REGISTRY_TABLE[name]
  assert elbo.parse_variant(text) == expected
  assert dataclasses.astuple(elbo.parse_variant(text)) == dataclasses.astuple(expected)


@pytest.mark.parametrize("text", [
    "elbo", "elbo_mc", "elbo_stl", "elbo_k=1", "elbo_k=3", "beta=0", "beta=0.5", "beta=4",
    "beta=1e-3", "beta_warmup=1", "beta_warmup=1000", "free_bits=0", "free_bits=0.13",
    "iwae=1", "iwae=3", "iwae=50", "iwae_dreg=3", "iwae_dreg=50", " iwae=5 ", "beta= 2"])
def test_old_strings_give_the_old_objective_field_by_field(text):
  new, old = elbo.parse_variant(text), _old_parse_variant(text)
  for field in dataclasses.fields(Objective):
    assert getattr(new, field.name) == getattr(old, field.name), field.name
    assert type(getattr(new, field.name)) is type(getattr(old, field.name)), field.name


@pytest.mark.parametrize("text", ["iwae", "iwae=0", "iwae=2.5", "beta=-1", "beta=x", "elbo=3",
                                  "vae", "", "iwae_dreg=", "beta=nan", "beta=inf",
                                  "elbo_k=-2", "free_bits=-0.1", "ELBO"])
def test_old_and_new_refuse_the_same_strings(text):
  with pytest.raises(ValueError):
    _old_parse_variant(text)
  with pytest.raises(ValueError, match=r"^bad variant "):
    elbo.parse_variant(text)


@pytest.mark.parametrize("text,fields", [
    ("iwae=5+beta_warmup=1000", dict(kind="iwae", num_samples=5, kl="mc", warmup_steps=1000)),
    ("elbo_k=5+free_bits=0.5", dict(num_samples=5, kl="mc", free_bits=0.5)),
    ("elbo_mc+beta=4", dict(kl="mc", beta=4.0)),
    ("iwae_dreg=5+beta=0.5", dict(kind="iwae", num_samples=5, kl="mc", estimator="dreg",
                                  beta=0.5)),
    ("elbo_k=3+elbo_stl+beta_warmup=10", dict(num_samples=3, kl="mc", estimator="stl",
                                             warmup_steps=10)),
    ("beta=2+beta_warmup=100+free_bits=0.1", dict(beta=2.0, warmup_steps=100, free_bits=0.1)),
    ("elbo_mc+elbo_stl", dict(kl="mc", estimator="stl")),        # agreeing fields merge
    (" iwae=5 + beta=0.5 ", dict(kind="iwae", num_samples=5, kl="mc", beta=0.5)),
])
def test_composition_merges_the_parts_fields(text, fields):
  assert elbo.parse_variant(text) == Objective(text.strip(), **fields)
  # The order of the parts changes only the name.
  swapped = "+".join(reversed(text.split("+")))
  assert dataclasses.replace(elbo.parse_variant(swapped), name=text.strip()) == \
      elbo.parse_variant(text)


@pytest.mark.parametrize("text,pattern", [
    ("iwae=5+elbo_k=3", r"iwae=5 sets kind='iwae' but elbo_k=3 sets kind='elbo'"),
    ("elbo_stl+iwae_dreg=5", r"elbo_stl sets estimator='stl' but iwae_dreg=5 sets "
                             r"estimator='dreg'"),
    ("elbo+iwae=5", r"elbo sets kind='elbo' but iwae=5 sets kind='iwae'"),
    ("elbo+elbo_k=2", r"elbo sets kl='analytic' but elbo_k=2 sets kl='mc'"),
    ("iwae=5+iwae_dreg=3", r"iwae=5 sets num_samples=5 but iwae_dreg=3 sets num_samples=3"),
    ("beta=1+beta=1", r"beta is given twice"),
])
def test_conflicting_parts_are_one_line_errors_naming_both(text, pattern):
  with pytest.raises(ValueError, match=f"^variant '{re.escape(text)}': {pattern}") as e:
    elbo.parse_variant(text)
  assert "\n" not in str(e.value)


@pytest.mark.parametrize("text,pattern", [
    ("iwae=5+free_bits=0.5", r"free_bits=0.5 with iwae=5: free bits .*elbo_k=K\+free_bits"),
    ("free_bits=0.5+iwae_dreg=5", r"free_bits=0.5 with iwae_dreg=5: free bits"),
    ("elbo_stl+iwae=5", r"elbo_stl with iwae=5: STL is biased for IWAE \(Tucker et al. 2019\)"),
    ("iwae=5+elbo_stl", r"elbo_stl with iwae=5: STL is biased for IWAE"),
])
def test_combinations_the_losses_cannot_compute_are_refused_at_parse_time(text, pattern):
  with pytest.raises(ValueError, match=f"^variant '{re.escape(text)}': {pattern}") as e:
    elbo.parse_variant(text)
  assert "\n" not in str(e.value)


def test_free_bits_zero_is_no_floor_and_composes_with_iwae():
  assert elbo.parse_variant("iwae=5+free_bits=0").free_bits == 0.0


def test_make_loss_refuses_a_hand_built_unsupported_objective():
  bad = dataclasses.replace(elbo.parse_variant("iwae=5"), free_bits=0.5)
  with pytest.raises(ValueError, match="objective 'iwae=5': free_bits=0.5 with kind='iwae'"):
    elbo.make_loss(lg.LinearGaussian(), None, bad)
  assert elbo.unsupported(elbo.parse_variant("iwae_dreg=5+beta_warmup=10")) is None


@pytest.mark.parametrize("text", ["vae", "iwae=5+vae", "iwae=5+", "iwae=0+beta=1",
                                  "beta=4+elbo=1"])
def test_an_unknown_or_malformed_part_lists_every_registered_form(text):
  with pytest.raises(ValueError, match=r"^bad variant ") as e:
    elbo.parse_variant(text)
  message = str(e.value)
  assert "\n" not in message
  for form in elbo.VARIANT_FORMS:
    assert form in message, form
  assert re.search(r"\(K, STEPS(, \w+)*: positive integers; B, NATS(, \w+)*: non-negative "
                   r"numbers\)", message)
  if "+" in text:
    assert f"in '{text}'" in message


def test_parse_variants_splits_commas_and_refuses_duplicates():
  objectives = elbo.parse_variants("elbo,iwae=5+beta_warmup=100,elbo_mc+beta=4")
  assert [o.name for o in objectives] == ["elbo", "iwae=5+beta_warmup=100", "elbo_mc+beta=4"]
  assert objectives[1].warmup_steps == 100 and objectives[2].beta == 4.0
  with pytest.raises(ValueError, match="duplicate variant"):
    elbo.parse_variants("iwae=5+beta=2,elbo,iwae=5+beta=2")
  with pytest.raises(ValueError, match="variant 'iwae=5\\+free_bits=1'"):
    elbo.parse_variants("elbo,iwae=5+free_bits=1")


# --- A new variant is one registry entry -----------------------------------------------------

DREG = elbo.Variant("dreg", "doubly reparameterized gradients of IWAE (Tucker et al. 2019)",
                    lambda _: {"estimator": "dreg"})


def test_a_new_variant_parses_composes_and_builds_a_loss_without_touching_anything_else():
  registry = dict(elbo.VARIANTS)
  before, forms = dict(elbo.VARIANTS), elbo.VARIANT_FORMS
  elbo.register(DREG, registry)
  assert (elbo.VARIANTS, elbo.VARIANT_FORMS) == (before, forms)           # the copy only
  assert elbo.variant_forms(registry)[-1] == "dreg"
  composed = elbo.parse_variant("iwae=5+dreg+beta_warmup=10", registry)
  assert composed == Objective("iwae=5+dreg+beta_warmup=10", kind="iwae", num_samples=5,
                               kl="mc", estimator="dreg", warmup_steps=10)
  assert dataclasses.replace(composed, name="x") == dataclasses.replace(
      elbo.parse_variant("iwae_dreg=5+beta_warmup=10"), name="x")
  # Its combinations are checked like every other's: DReG without IWAE, two estimators.
  with pytest.raises(ValueError, match=r"'elbo_k=3\+dreg': dreg with elbo_k=3: DReG is "
                                       r"an estimator of the IWAE gradient"):
    elbo.parse_variant("elbo_k=3+dreg", registry)
  with pytest.raises(ValueError, match=r"'beta=2\+dreg': dreg with the default kind='elbo'"):
    elbo.parse_variant("beta=2+dreg", registry)
  with pytest.raises(ValueError, match="elbo_stl sets estimator='stl' but dreg sets"):
    elbo.parse_variant("elbo_stl+dreg", registry)
  with pytest.raises(ValueError, match=r"expected one of elbo, .*iwae_dreg=K, dreg \("):
    elbo.parse_variant("dreg=3", registry)
  with pytest.raises(ValueError, match="bad variant 'dreg'"):
    elbo.parse_variant("dreg")                                     # not in VARIANTS
  model, params, batch, _ = lg.exact_setup()
  lik = likelihoods.make_likelihood("gaussian_fixed", gaussian_std=lg.NOISE_STD)
  loss, metrics = elbo.make_loss(model, lik, composed)(
      params, {**batch, "step": jnp.int32(5)}, jax.random.PRNGKey(0))
  assert np.isfinite(loss) and float(metrics["beta"]) == 0.5


def test_register_refuses_duplicates_and_bad_names_and_refreshes_the_forms(monkeypatch):
  with pytest.raises(ValueError, match="variant 'iwae' is already registered: the K-sample"):
    elbo.register(elbo.Variant("iwae", "again", lambda k: {}, elbo.positive_int("K")),
                  dict(elbo.VARIANTS))
  for name in ("iwae+beta", "a=b", "Dreg", ""):
    with pytest.raises(ValueError, match="use lower-case letters, digits and _"):
      elbo.register(dataclasses.replace(DREG, name=name), {})
  monkeypatch.setattr(elbo, "VARIANTS", dict(elbo.VARIANTS))
  monkeypatch.setattr(elbo, "VARIANT_FORMS", elbo.VARIANT_FORMS)
  elbo.register(DREG)
  assert elbo.VARIANT_FORMS[-1] == "dreg" and elbo.parse_variant("iwae=2+dreg").estimator == "dreg"


def test_a_variant_setting_an_unknown_field_is_refused():
  registry = dict(elbo.VARIANTS)
  elbo.register(elbo.Variant("lr", "not an objective field (nobody 2024)",
                             lambda v: {"learning_rate": v}, elbo.non_negative("LR")), registry)
  with pytest.raises(ValueError, match="variant 'lr' sets learning_rate, which Objective has"):
    elbo.parse_variant("lr=0.1", registry)
