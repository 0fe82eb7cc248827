"""Config files, their validation and --help (experiments/configuration.py, launch.py)."""

import os
import pathlib
import subprocess
import sys

import pytest

import launch
from experiments import configuration
from experiments.configuration import ConfigError

ROOT = pathlib.Path(__file__).resolve().parents[1]
EXPERIMENTS = sorted(launch.experiments())


def _defaults(name):
  return configuration.load_config_file(f"experiments/configs/{name}.py")


def test_every_experiment_has_a_default_config_whose_fields_are_documented_and_valid():
  assert {"train_vae", "compare_elbos", "train_gan", "scaling"} <= set(EXPERIMENTS)
  registry = configuration.fields()
  for name in EXPERIMENTS:
    config = _defaults(name)
    undocumented = [k for k in config.keys() if k not in registry]
    assert not undocumented, (name, undocumented)
    configuration.validate(name, config, config)            # the defaults are allowed
    smoke = configuration.load_config_file(f"experiments/configs/{name}.py:smoke")
    assert set(smoke.keys()) == set(config.keys()), name   # a variant only changes values
    configuration.validate(name, smoke, config)


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
