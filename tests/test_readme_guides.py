"""The README's "Extending" guides run as printed (each a ```python block whose first line
is ``# guide: NAME``)."""

import pathlib
import re


from experiments.framework import configuration

ROOT = pathlib.Path(__file__).resolve().parents[1]
GUIDES = dict(
    (m.group(1), m.group(0))
    for m in re.finditer(r"# guide: (\w+)\n.*?(?=```)",
                         (ROOT / "README.md").read_text(), flags=re.S))


def test_the_readme_has_the_guides():
  assert {"model", "model_entry", "objective", "study", "dataset"} <= set(GUIDES)


def test_guide_a_new_data_set_is_one_entry(tmp_path, monkeypatch):
  from genjax.data import registry
  monkeypatch.setattr(registry, "REGISTRY", dict(registry.REGISTRY))   # the guide's entry stays here
  namespace = {}
  exec(compile(GUIDES["dataset"], "README.md (guide: dataset)", "exec"), namespace)  # noqa: S102
  assert registry.get("noise_rgb").shape() == (16, 16, 3)
  from genjax.data import sources
  assert sources.load("noise_rgb").train_images.shape == (48, 16, 16, 3)
  invocation = configuration.parse("train_vae", [f"--workdir={tmp_path / 'run'}",
                                                 "--config.dataset=noise_rgb",
                                                 "--config.model=conv",
                                                 "--config.preprocess=continuous"])
  assert invocation.config.dataset == "noise_rgb"


def test_guide_a_new_model_trains_with_the_elbo_family():
  namespace = {}
  exec(compile(GUIDES["model"], "README.md (guide: model)", "exec"), namespace)   # noqa: S102
  assert namespace["samples"].shape == (4, 28, 28, 1)
  assert set(namespace["params"]) == {"encoder", "decoder", "prior_mean", "prior_log_var"}


def test_guide_a_new_model_is_one_entry_and_trains_from_the_experiments(tmp_path, monkeypatch):
  """The model guide's class and its registry entry, appended as one module: train_vae
  trains it by name with the closed-form KL (the README's command, smoke-sized)."""
  from experiments import train_vae
  from genjax.models import registry
  from tests.experiment_helpers import run_experiment, write_synthetic_mnist
  monkeypatch.setattr(registry, "PRIORS", dict(registry.PRIORS))   # the entry stays here
  namespace = {}
  exec(compile(GUIDES["model"] + GUIDES["model_entry"], "README.md (guides: model)", "exec"),  # noqa: S102
       namespace)
  assert registry.capabilities("learned_gaussian", "diagonal").closed_form_kl
  command = re.search(r"`python launch.py train_vae (--workdir=runs/learned [^`]*)`",
                      (ROOT / "README.md").read_text().replace("\n", " ")).group(1).split()
  data_dir = write_synthetic_mnist(tmp_path, 64, 40)
  results = run_experiment(train_vae, [f"--workdir={tmp_path / 'run'}", *command[1:],
                                       "--config=experiments/configs/train_vae.py:smoke",
                                       f"--config.data_dir={data_dir}"])
  assert results["num_params"] > 0 and results["test_kl"] > 0


def test_guide_a_new_objective_is_one_registry_entry():
  namespace = {}
  exec(compile(GUIDES["objective"], "README.md (guide: objective)", "exec"), namespace)  # noqa: S102
  assert "stl_k" in namespace["registry"] and namespace["objective"].name == "stl_k=5+beta=0.5"
  assert "stl_k" not in namespace["elbo"].VARIANTS    # the guide's copy, not the global registry


def test_guide_a_new_study_is_one_config(tmp_path):
  path = tmp_path / "beta_vae_2d.py"
  path.write_text(GUIDES["study"])
  invocation = configuration.parse("train_vae", [f"--workdir={tmp_path / 'run'}",
                                                 f"--config={path}:smoke"])
  assert (invocation.config.beta, invocation.config.latent_dim) == (4.0, 2)
  assert invocation.config.epochs == 2                    # the smoke variant came along


def _readme_commands() -> list[list[str]]:
  """Every ``python launch.py EXPERIMENT ...`` command of the README (continuation lines
  joined), as argv after the experiment name."""
  import shlex   # pylint: disable=import-outside-toplevel
  text = (ROOT / "README.md").read_text().replace("\\\n", " ")
  commands = []
  for line in text.splitlines():
    for match in re.finditer(r"python launch\.py (\w+)((?:\s+--?[\w.=,:/\-]+)*)", line):
      commands.append([match.group(1), *shlex.split(match.group(2))])
  return commands


def test_every_readme_command_resolves_to_a_valid_config(tmp_path):
  """Each README command parses and validates (it is not run: that is what the tables are
  for); so a renamed field or config file cannot leave a stale command behind."""
  commands = [c for c in _readme_commands() if "--help" not in c
              and not any("beta_vae_2d" in a for a in c)     # the study guide's own file
              and not any("noise_rgb" in a for a in c)       # the data-set guide's entry
              and not any("learned_gaussian" in a for a in c)]   # the model guide's entry
  assert len(commands) >= 12
  for name, *argv in commands:
    argv = [a for a in argv if not a.startswith(("--workdir", "--local_processes"))]
    invocation = configuration.parse(name, [f"--workdir={tmp_path / name}", *argv])
    assert invocation.config.workdir == str(tmp_path / name)


def test_guide_a_new_data_set_touches_only_datasets_py(tmp_path):
  """The guide's entry appended to a copy of genjax/data/datasets.py, and nothing else
  changed: the README's command trains on it (a subprocess in the copy)."""
  import shutil
  import subprocess
  import sys
  copy = tmp_path / "repo"
  shutil.copytree(ROOT, copy, ignore=shutil.ignore_patterns(".git", "runs", "__pycache__",
                                                            "*.egg-info", ".pytest_cache"))
  with open(copy / "genjax" / "data" / "datasets.py", "a") as f:
    f.write("\n\n" + GUIDES["dataset"].split("\n", 1)[1])
  command = re.search(r"`(python launch.py train_vae --workdir=runs/noise [^`]*)`",
                      (ROOT / "README.md").read_text().replace("\n", " ")).group(1).split()
  run = subprocess.run([sys.executable, *command[1:], f"--workdir={tmp_path / 'run'}",
                        "--config=experiments/configs/train_vae.py:smoke", "--config.epochs=1"],
                       cwd=copy, capture_output=True, text=True, timeout=600,
                       env={**__import__("os").environ, "PYTHONPATH": str(copy)})
  assert run.returncode == 0, run.stderr[-2000:]
  results = __import__("json").loads((tmp_path / "run" / "results.json").read_text())
  assert results["dataset"] == "noise_rgb" and results["data_source"] == "generated:memory"
