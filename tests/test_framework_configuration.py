"""Config files, their validation and --help (experiments/framework/configuration.py, launch.py)."""

import os
import pathlib
import re
import subprocess
import sys

import pytest

import launch
from experiments.framework import configuration
from experiments.framework.configuration import ConfigError

ROOT = pathlib.Path(__file__).resolve().parents[1]
EXPERIMENTS = sorted(launch.experiments())


def _defaults(name):
  return configuration.load_config_file(f"experiments/configs/{name}.py")


def test_every_experiment_has_a_default_config_whose_fields_are_documented_and_valid():
  assert {"train_vae", "compare_elbos", "train_gan", "scaling"} <= set(EXPERIMENTS)
  for name in EXPERIMENTS:
    registry = configuration.fields(name)
    config = _defaults(name)
    undocumented = [k for k in config.keys() if k not in registry]
    assert not undocumented, (name, undocumented)
    configuration.validate(name, config, config)            # the defaults are allowed
    smoke = configuration.load_config_file(f"experiments/configs/{name}.py:smoke")
    assert set(smoke.keys()) == set(config.keys()), name   # a variant only changes values
    configuration.validate(name, smoke, config)


def test_a_field_one_experiment_reads_is_declared_in_that_experiment():
  """Shared fields live in configuration.py; an experiment's own fields in its FIELDS, known
  to it and unknown to the others (and to the shared registry)."""
  shared = configuration.fields()
  own = {name: set(configuration.fields(name)) - set(shared) for name in EXPERIMENTS}
  assert {"gan_top_k", "gan_loss"} <= own["train_gan"] and "models" in own["compare_elbos"]
  assert "gan_top_k" not in shared and "gan_top_k" not in configuration.fields("train_vae")
  assert "image_size" in shared   # a data set's option, declared by its entry
  for name in EXPERIMENTS:
    module = __import__(f"experiments.{name}", fromlist=["FIELDS"])
    assert own[name] == set(getattr(module, "FIELDS", {})), name
    assert set(getattr(module, "FIELDS", {})) <= set(_defaults(name).keys()), name
  sizes = {n: len(own[n]) for n in EXPERIMENTS}
  assert sum(sizes.values()) >= 60, sizes


def test_table_configs_are_their_experiments_fields_with_other_values():
  base = _defaults("compare_elbos")
  for variant in ("", ":static", ":smoke"):
    table = configuration.load_config_file(f"experiments/configs/iwae_table1.py{variant}")
    assert set(table.keys()) == set(base.keys())
    configuration.validate("compare_elbos", table, base)
  table = configuration.load_config_file("experiments/configs/iwae_table1.py")
  assert (table.hidden, table.latent_dim, table.activation, table.batch_size) == (
      (200, 200), 50, "tanh", 100)


def test_the_vamp_prior_config_is_train_vaes_with_a_monte_carlo_kl(tmp_path):
  base = _defaults("train_vae")
  for variant in ("", ":smoke"):
    vamp = configuration.load_config_file(f"experiments/configs/vamp_prior.py{variant}")
    assert set(vamp.keys()) == set(base.keys())
    assert (vamp.prior, vamp.kl) == ("vamp", "mc")
    configuration.validate("train_vae", vamp, base)
  with pytest.raises(ConfigError, match="config.kl=analytic: the VampPrior .* has no "
                                        "closed-form KL; use kl=mc"):
    configuration.parse("train_vae", [f"--workdir={tmp_path}", "--config.prior=vamp"])
  with pytest.raises(ConfigError, match="config.variants: elbo, beta=0.5 need a closed-form KL"):
    configuration.parse("compare_elbos", [f"--workdir={tmp_path}", "--config.prior=vamp",
                                          "--config.variants=elbo,iwae=5,beta=0.5"])
  with pytest.raises(ConfigError, match="pseudo_inputs=3 is not read: train_vae reads "
                                        "pseudo_inputs only when prior=vamp"):
    configuration.parse("train_vae", [f"--workdir={tmp_path}", "--config.pseudo_inputs=3"])


def test_parse_applies_overrides_after_the_config_file_in_any_order(tmp_path):
  inv = configuration.parse("train_vae", ["--config.latent_dim=3", f"--workdir={tmp_path}",
                                          "--config=experiments/configs/train_vae.py:smoke",
                                          "--config.hidden=400,200", "--host_devices=2"])
  assert inv.config.latent_dim == 3 and inv.config.hidden == (400, 200)
  assert inv.config.epochs == 2                       # from the smoke variant
  assert inv.config.workdir == str(tmp_path) and inv.flags["host_devices"] == 2
  with pytest.raises(AttributeError):                 # the resolved config is frozen
    inv.config.latent_dim = 4


@pytest.mark.parametrize("name", EXPERIMENTS)
def test_each_experiment_refuses_a_field_it_does_not_have(name, tmp_path):
  config = _defaults(name)
  foreign = next(f for f in ("likelihood", "gan_loss", "variants", "placements")
                 if f not in config)
  with pytest.raises(ConfigError, match=f"config.{foreign}: {name} has no such field") as e:
    configuration.parse(name, [f"--workdir={tmp_path}", f"--config.{foreign}=x"])
  assert "\n" not in str(e.value)


@pytest.mark.parametrize("name,argv,expected", [
    ("train_vae", ["--config.gaussian_std=0.2"],
     "config.gaussian_std=0.2 is not read: train_vae reads gaussian_std only when "
     "likelihood=gaussian_fixed"),
    ("train_cvae", ["--config.image_size=64"],
     "config.image_size=64 is not read: train_cvae reads image_size only when dataset=celeb_a"),
    ("train_vae", ["--config.evaluators=sample_quality", "--config.ll_samples=100"],
     "config.ll_samples=100 is not read: train_vae reads ll_samples only when evaluators has "
     "log_likelihood"),
    ("semi_supervised", ["--config.methods=scratch", "--config.alpha=0.5"],
     "config.alpha=0.5 is not read: semi_supervised reads alpha only when methods has m2"),
])
def test_a_field_the_experiment_would_not_read_with_these_settings_is_an_error(
    name, argv, expected, tmp_path):
  with pytest.raises(ConfigError, match=expected):
    configuration.parse(name, [f"--workdir={tmp_path}", *argv])
  # With its condition true the same value is accepted.
  if "--config.gaussian_std=0.2" in argv:
    inv = configuration.parse(name, [f"--workdir={tmp_path}", *argv,
                                     "--config.likelihood=gaussian_fixed"])
    assert inv.config.gaussian_std == 0.2


@pytest.mark.parametrize("name,argv,expected", [
    ("train_vae", ["--config.model=resnet"], "config.model=resnet: expected one of mlp, conv"),
    ("train_vae", ["--config.hidden=400,0"], "config.hidden=400,0: expected comma-separated "
                                             "integers >= 1"),
    ("train_vae", ["--config.likelihood=poisson"], "config.likelihood=poisson: expected one of "
                                                   "bernoulli, gaussian_fixed"),
    ("train_vae", ["--config.batch_size=0"], "config.batch_size=0: expected an integer >= 1"),
    ("train_vae", ["--config.kl=exact"], "config.kl=exact: expected one of analytic, mc"),
    ("train_vae", ["--config.learning_rate=nan"], "config.learning_rate=nan: expected a finite"),
    ("train_vae", ["--config.latent_dim=abc"], "flag --config.latent_dim=abc: invalid literal"),
    ("train_vae", ["--config.latend_dim=2"], "did you mean latent_dim"),
    ("compare_elbos", ["--config.variants=elbo,iwae=x"], "bad variant 'iwae=x'"),
    ("train_gan", ["--config.gan_loss=wgan"], "config.gan_loss=wgan: expected one of minimax, "
                                              "non_saturating, hinge"),
    ("semi_supervised", ["--config.methods=scratch,m3"], "config.methods=scratch,m3: expected "
                                                         "comma-separated names from scratch"),
    ("train_vae", ["--config=experiments/configs/train_vae.py:huge"], "unknown variant 'huge'"),
    ("train_vae", ["--config=experiments/configs/nope.py"], "no such file"),
    ("train_vae", ["--epochs=3"], "unknown flag --epochs; settings are config fields: "
                                  "--config.epochs=3"),
])
def test_bad_settings_are_one_line_errors_naming_the_field_and_allowed_values(
    name, argv, expected, tmp_path):
  with pytest.raises(ConfigError, match=expected.replace("(", r"\(")) as e:
    configuration.parse(name, [f"--workdir={tmp_path}", *argv])
  assert "\n" not in str(e.value)


@pytest.mark.parametrize("name,argv,expected", [
    # Float fields: finite, and in range.
    ("train_vae", ["--config.likelihood=gaussian_fixed", "--config.gaussian_std=inf"],
     "config.gaussian_std=inf: expected a finite number > 0"),
    ("train_vae", ["--config.likelihood=gaussian_fixed", "--config.gaussian_std=0"],
     "config.gaussian_std=0.0: expected a finite number > 0"),
    ("train_vae", ["--config.beta=nan"], "config.beta=nan: expected a finite number >= 0"),
    ("train_vae", ["--config.beta=-1"], "config.beta=-1.0: expected a finite number >= 0"),
    ("train_vae", ["--config.learning_rate=-inf"], "config.learning_rate=-inf: expected a finite"),
    ("train_vae", ["--config.learning_rate=1e400"], "config.learning_rate=inf: expected a finite"),
    ("semi_supervised", ["--config.alpha=inf"], "config.alpha=inf: expected a finite number"),
    ("semi_supervised", ["--config.finetune_learning_rate=0"],
     "config.finetune_learning_rate=0.0: expected a finite number > 0"),
    ("train_gan", ["--config.r1_gamma=nan"], "config.r1_gamma=nan: expected a finite number"),
    ("train_gan", ["--config.g_learning_rate=inf"], "config.g_learning_rate=inf: expected"),
    ("train_ae", ["--config.noise_level=-0.1"], "config.noise_level=-0.1: expected a finite"),
    ("train_ae", ["--config.corruption=masking", "--config.noise_level=1.5"],
     "config.noise_level=1.5: the pixel rate of corruption=masking must be in [0, 1]"),
    ("compare_elbos", ["--config.variants=elbo,free_bits=inf"], "bad variant 'free_bits=inf'"),
    ("compare_elbos", ["--config.variants=beta=nan"], "bad variant 'beta=nan'"),
    ("compare_elbos", ["--config.variants=free_bits=-0.5"], "bad variant 'free_bits=-0.5'"),
    # Integers: the right type, in range.
    ("train_vae", ["--config.epochs=1.5"], "flag --config.epochs=1.5: invalid literal for int()"),
    ("train_vae", ["--config.seed=-1"], "config.seed=-1: expected an integer in [0, 2147483647]"),
    ("train_vae", ["--config.seed=4294967296"],           # would wrap around to seed 0's keys
     "config.seed=4294967296: expected an integer in [0, 2147483647]"),
    ("train_vae", ["--config.steps_per_chunk=-1"], "config.steps_per_chunk=-1: expected an "
                                                   "integer >= 0"),
    # Booleans: true or false only.
    ("train_ae", ["--config.denoising=maybe"], "flag --config.denoising=maybe: ('Non-boolean"),
    # Cross-field: a conv model halves celeb_a images twice.
    ("train_cvae", ["--config.dataset=celeb_a", "--config.model=conv",
                    "--config.image_size=30"],
     "config.image_size=30: model=conv needs a multiple of 4"),
])
def test_bad_values_are_refused_before_any_work(name, argv, expected, tmp_path):
  with pytest.raises(ConfigError, match=re.escape(expected)) as e:
    configuration.parse(name, [f"--workdir={tmp_path / 'w'}", *argv])
  assert "\n" not in str(e.value)
  assert not (tmp_path / "w").exists()


@pytest.mark.parametrize("value,expected", [
    (1.0, "expected an integer >= 1"), (True, "expected an integer >= 1"),
    ("3", "expected an integer >= 1"), (0, "expected an integer >= 1")])
def test_integer_fields_from_a_config_file_are_checked_for_type_too(value, expected):
  """A config file (not the command line, which absl type-checks) may hold any value."""
  defaults = _defaults("train_vae")
  config = _defaults("train_vae")
  with config.ignore_type():
    config.epochs = value
  with pytest.raises(ConfigError, match=re.escape(f"config.epochs={value}: {expected}")):
    configuration.validate("train_vae", config, defaults)


def test_boolean_and_float_fields_from_a_config_file_are_checked_for_type_too():
  defaults = _defaults("train_ae")
  for field, value, expected in (("denoising", "true", "expected true or false"),
                                 ("denoising", 1, "expected true or false"),
                                 ("noise_level", "0.5", "expected a finite number >= 0")):
    config = _defaults("train_ae")
    with config.ignore_type():
      config[field] = value
    with pytest.raises(ConfigError, match=re.escape(f"config.{field}={value}: {expected}")):
      configuration.validate("train_ae", config, defaults)


def test_a_workdir_that_is_a_file_is_one_line_before_anything_is_written(tmp_path):
  file = tmp_path / "results.txt"
  file.write_text("keep me")
  with pytest.raises(ConfigError, match=re.escape(
      f"--workdir={file} is an existing file, not a directory: expected a directory")) as e:
    configuration.parse("train_vae", [f"--workdir={file}"])
  assert "\n" not in str(e.value)
  result = _launch("train_vae", f"--workdir={file / 'run'}")
  assert result.returncode != 0 and "Traceback" not in result.stderr
  assert result.stderr.strip() == (
      f"train_vae: error: --workdir={file / 'run'} lies under {file}, which is an existing "
      "file, not a directory: expected a directory (new or holding a run to resume)")
  assert file.read_text() == "keep me" and sorted(tmp_path.iterdir()) == [file]


def test_launch_level_output_flags_are_run_flags_not_unknown(tmp_path):
  """--noprogress and absl's --verbosity / -v are read by launch.py; parse admits them."""
  inv = configuration.parse("train_vae", [f"--workdir={tmp_path}", "--noprogress", "-v", "1"])
  assert inv.flags["noprogress"] is True and inv.flags["verbosity"] == 1
  inv = configuration.parse("train_vae", [f"--workdir={tmp_path}", "--verbosity=0"])
  assert inv.flags["noprogress"] is False and inv.flags["verbosity"] == 0
  assert launch._verbosity(["--noprogress", "-v", "2"]) == 2
  assert launch._verbosity(["--verbosity=-1"]) == -1 and launch._verbosity([]) is None


def test_workdir_is_required(tmp_path):
  with pytest.raises(ConfigError, match="--workdir=DIR is required"):
    configuration.parse("train_vae", [])


def _launch(*args, timeout=120):
  return subprocess.run([sys.executable, str(ROOT / "launch.py"), *args], capture_output=True,
                        text=True, timeout=timeout, cwd=ROOT)


def test_help_prints_the_experiments_own_fields_with_defaults_and_docs():
  result = _launch("train_gan", "--help")
  assert result.returncode == 0, result.stderr
  out = result.stdout
  assert "--config.gan_loss=non_saturating" in out and "GAN loss: the minimax game" in out
  assert "--config.epochs=10" in out                  # train_gan's own default
  assert "likelihood" not in out and "--config.hidden" not in out
  assert out.startswith("train_gan: Train a DCGAN")
  smoke = _launch("train_vae", "--config=experiments/configs/train_vae.py:smoke", "--helpshort")
  assert smoke.returncode == 0 and "--config.epochs=2 " in smoke.stdout


def test_launch_reports_a_bad_field_in_one_line_before_writing(tmp_path):
  result = _launch("train_vae", f"--workdir={tmp_path / 'w'}", "--config.kl=exact")
  assert result.returncode != 0
  assert result.stderr.strip() == ("train_vae: error: config.kl=exact: expected one of "
                                   "analytic, mc")
  assert not (tmp_path / "w").exists()


def test_tracked_config_records_reads_only():
  config = configuration.TrackedConfig(_defaults("train_vae"))
  assert config.latent_dim == 32 and config["beta"] == 1.0
  assert "hidden" in config.to_dict() and config.read == {"latent_dim", "beta"}
  with pytest.raises(AttributeError):
    config.latent_dim = 3
  assert os.fspath(ROOT)  # the repository root is importable from tests
