"""Damaged state and refused runs, end to end on train_vae's smoke config: a damaged latest
checkpoint costs the work since the one before it, never the run; a refused run (a bad
value, a bad data file, checkpoints that are all damaged) says why in one line and leaves
every file of the workdir as it was."""

import hashlib
import json
import logging
import pathlib

import numpy as np
import pytest

from experiments import train_vae
from experiments.framework.configuration import ConfigError
from genjax.training import checkpoint
from tests.experiment_helpers import run_experiment, write_synthetic_mnist

# train_vae's smoke settings (2 epochs of 8 steps, a checkpoint after each) without its
# final evaluators, which this test does not look at.
SMOKE = ["--config.epochs=2", "--config.batch_size=32", "--config.hidden=16",
         "--config.latent_dim=2", "--config.eval_every=1", "--config.checkpoint_every=1",
         "--config.num_samples=4", "--config.eval_batch_size=40", "--config.evaluators="]


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
  return write_synthetic_mnist(tmp_path_factory.mktemp("data"), 256, 64)


def _digests(workdir: pathlib.Path) -> dict[str, str]:
  """sha256 of every file under ``workdir``, by relative path."""
  return {str(p.relative_to(workdir)): hashlib.sha256(p.read_bytes()).hexdigest()
          for p in sorted(workdir.rglob("*")) if p.is_file()}


def _garble(step_dir: pathlib.Path) -> None:
  """Overwrites the array files of a checkpoint (Orbax's OCDBT data under .../d/)."""
  arrays = [p for p in step_dir.rglob("*") if p.is_file() and p.parent.name == "d"]
  assert arrays, step_dir
  for path in arrays:
    path.write_bytes(b"garbage" * 9)


def _train_records(workdir: pathlib.Path) -> list[dict]:
  return [r for r in map(json.loads, open(workdir / "metrics.jsonl")) if "loss" in r]


def test_damaged_checkpoints_and_refused_runs(data_dir, tmp_path, caplog):
  workdir = tmp_path / "run"
  argv = [f"--workdir={workdir}", f"--config.data_dir={data_dir}", *SMOKE]
  run_experiment(train_vae, argv)
  ckpts = workdir / "checkpoints"
  assert sorted(p.name for p in ckpts.iterdir()) == ["16", "8"]

  # Refused runs, each one line, change no file of the workdir.
  bad_data = tmp_path / "bad_data"
  bad_data.mkdir()
  (bad_data / "mnist.npz").write_text("not a zip archive")
  before = _digests(workdir)
  refusals = [
      (ConfigError, "config.beta=nan: expected a finite number >= 0", ["--config.beta=nan"]),
      (ConfigError, "config.seed=-3: expected an integer in", ["--config.seed=-3"]),
      (ValueError, "config.batch_size=1000 exceeds the 256 training examples",
       ["--config.batch_size=1000", "--config.epochs=3"]),
      (ValueError, f"{bad_data / 'mnist.npz'} is not a valid .npz (zip) archive",
       [f"--config.data_dir={bad_data}", "--config.epochs=3"]),
      (ValueError, "latent_dim=2 there, 3 now", ["--config.latent_dim=3", "--config.epochs=3"]),
  ]
  for error, expected, extra in refusals:
    with pytest.raises(error) as e:
      run_experiment(train_vae, [*argv, *extra])
    assert expected in str(e.value) and "\n" not in str(e.value), (expected, str(e.value))
    assert _digests(workdir) == before, expected

  # The latest checkpoint damaged: the rerun resumes from the one before, and says so.
  _garble(ckpts / "16")
  with caplog.at_level(logging.WARNING):
    results = run_experiment(train_vae, [*argv, "--config.epochs=3"])
  assert f"checkpoint {ckpts / '16'} cannot be restored" in caplog.text
  assert f"resuming from checkpoint {ckpts / '8'}, the newest that restores" in caplog.text
  records = _train_records(workdir)
  assert [r["step"] for r in records] == [8, 16, 16, 24] and results["steps"] == 24
  # Epoch 2 again from step 8's checkpoint: the same keys and data order, the same loss.
  np.testing.assert_allclose(records[2]["loss"], records[1]["loss"], rtol=1e-6)
  assert sorted(p.name for p in ckpts.iterdir()) == ["16", "24", "8"]   # nothing deleted

  # Every checkpoint damaged: refused before anything is written, naming what to remove.
  for step in ("8", "24"):
    _garble(ckpts / step)
  before = _digests(workdir)
  with pytest.raises(checkpoint.DamagedCheckpointsError) as e:
    run_experiment(train_vae, [*argv, "--config.epochs=4"])
  message = str(e.value)
  assert "\n" not in message and message.startswith(f"no checkpoint in {ckpts} restores")
  assert f"remove the damaged step directories ({ckpts / '24'} {ckpts / '16'} {ckpts / '8'})" \
      in message
  assert _digests(workdir) == before
