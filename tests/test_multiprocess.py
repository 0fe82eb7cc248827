"""Multi-device and multi-process runs through launch.py (each bounded by a timeout)."""

import json
import os
import pathlib
import re
import signal
import subprocess
import sys

import numpy as np
import pytest

from tests.experiment_helpers import assert_strict_json

ROOT = pathlib.Path(__file__).resolve().parents[1]
TINY = ["--config=experiments/configs/train_vae.py:smoke"]   # 2 epochs, batch 32, 16-2-16


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
  path = tmp_path_factory.mktemp("mpdata")
  rng = np.random.default_rng(0)
  x = (rng.random((320, 28, 28)) > 0.7).astype(np.uint8) * 255
  y = rng.integers(0, 10, 320).astype(np.uint8)
  np.savez(path / "mnist.npz", x_train=x[:256], y_train=y[:256], x_test=x[256:], y_test=y[256:])
  return str(path)


def _launch(*args, timeout=240):
  """Runs launch.py in a session of its own; past ``timeout`` seconds the whole session (the
  processes --local_processes started too, which would otherwise outlive the test and load
  the cores) is killed and the test fails with the output so far."""
  env = {k: v for k, v in os.environ.items() if k != "XLA_FLAGS"}
  proc = subprocess.Popen([sys.executable, str(ROOT / "launch.py"), *args],
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT,
                          env=env, start_new_session=True)
  try:
    stdout, stderr = proc.communicate(timeout=timeout)
  except subprocess.TimeoutExpired:
    os.killpg(proc.pid, signal.SIGKILL)
    stdout, stderr = proc.communicate()
    pytest.fail(f"launch.py {' '.join(args)} ran past {timeout} s; its stderr ends:\n"
                f"{stderr[-3000:]}\nstdout ends:\n{stdout[-1000:]}")
  return subprocess.CompletedProcess(proc.args, proc.returncode, stdout, stderr)


def _digests(output):
  return {int(p): float(d) for p, d in re.findall(r"process (\d+): params_digest=(\S+)", output)}


def test_two_processes_on_loopback_agree_with_each_other_and_with_one_process(data_dir, tmp_path):
  common = ["train_vae", f"--config.data_dir={data_dir}", "--config.parallel=sharded", *TINY]
  multi = _launch(*common, f"--workdir={tmp_path / 'multi'}", "--local_processes=2",
                  "--host_devices=2")
  assert multi.returncode == 0, multi.stderr[-3000:]
  digests = _digests(multi.stdout)
  assert sorted(digests) == [0, 1]
  np.testing.assert_allclose(digests[0], digests[1], rtol=1e-6)
  single = _launch(*common, f"--workdir={tmp_path / 'single'}", "--host_devices=4")
  assert single.returncode == 0, single.stderr[-3000:]
  assert not _digests(single.stdout)   # one process prints no digest; results.json has it
  single_digest = json.load(open(tmp_path / "single" / "results.json"))["params_digest"]
  np.testing.assert_allclose(single_digest, digests[0], rtol=1e-4)
  # Only process 0 wrote: one line per chunk and per evaluation, not two.
  lines = open(tmp_path / "multi" / "metrics.jsonl").read().splitlines()
  assert len(lines) == 4
  stored = json.load(open(tmp_path / "multi" / "results.json"))
  assert stored["num_processes"] == 2 and stored["num_devices"] == 4
  assert sorted(os.listdir(tmp_path / "multi" / "checkpoints")) == ["16", "8"]


def test_indivisible_batch_is_one_line_and_writes_nothing(data_dir, tmp_path):
  result = _launch("train_vae", f"--config.data_dir={data_dir}", f"--workdir={tmp_path / 'w'}",
                   "--host_devices=4", "--config.parallel=pmap", *TINY, "--config.batch_size=30")
  assert result.returncode != 0
  assert result.stderr.strip().splitlines()[-1] == (
      "train_vae: error: batch_size=30 must divide by the 4 devices of parallel=pmap")
  assert not (tmp_path / "w").exists()


def test_failing_processes_stop_the_launch_without_hanging(data_dir, tmp_path):
  result = _launch("train_vae", f"--config.data_dir={data_dir}", f"--workdir={tmp_path / 'w'}",
                   "--config.dataset=fashion_mnist", "--local_processes=2", *TINY, timeout=180)
  assert result.returncode != 0
  assert "train_vae: error: data set 'fashion_mnist' not found" in result.stderr
  assert re.search(r"launch.py: process \d of 2 exited with code 1; stopping the others",
                   result.stderr)


def test_scaling_experiment_on_simulated_devices_and_its_resume(tmp_path):
  args = ["scaling", f"--workdir={tmp_path / 's'}", "--host_devices=2", "--config.model_sizes=16",
          "--config.per_device_batch=4", "--config.modes=weak", "--config.steps=2",
          "--config.repeats=1", "--config.latent_dim=2"]
  first = _launch(*args)
  assert first.returncode == 0, first.stderr[-3000:]
  assert "Simulated CPU devices (--host_devices) share the same cores" in first.stdout
  stored = json.load(open(tmp_path / "s" / "results.json"))
  assert stored["simulated_devices"] and stored["num_devices"] == 2
  rows = {(r["placement"], r["devices"]): r for r in stored["rows"]}
  assert sorted(rows) == [("none", 1), ("pmap", 1), ("pmap", 2), ("sharded", 1), ("sharded", 2)]
  for (kind, devices), row in rows.items():
    assert row["global_batch"] == 4 * devices and row["examples_per_s"] > 0
    np.testing.assert_allclose(row["steps_per_s"] * row["global_batch"], row["examples_per_s"])
    base = rows[(kind, 1)]["examples_per_s"]
    np.testing.assert_allclose(row["efficiency"], row["examples_per_s"] / (devices * base))
  assert (tmp_path / "s" / "scaling.png").stat().st_size > 0
  assert "| sharded | weak | 16 | 4 | 2 | 8 |" in open(tmp_path / "s" / "results.md").read()
  assert {p.name for p in assert_strict_json(tmp_path / "s")} == {
      "config.json", "metrics.jsonl", "results.json"}
  # A rerun measures nothing new and reports the same numbers.
  again = _launch(*args)
  assert again.returncode == 0, again.stderr[-3000:]
  assert len(open(tmp_path / "s" / "metrics.jsonl").read().splitlines()) == 5
  assert json.load(open(tmp_path / "s" / "results.json"))["rows"] == stored["rows"]


def test_scaling_refuses_more_devices_than_there_are_before_measuring(tmp_path):
  result = _launch("scaling", f"--workdir={tmp_path / 's'}", "--host_devices=2",
                   "--config.device_counts=1,4")
  assert result.returncode != 0
  assert result.stderr.strip().splitlines()[-1] == (
      "scaling: error: config.device_counts=4 exceeds the 2 devices here (use --host_devices=N on "
      "a CPU)")
  assert not (tmp_path / "s").exists()
