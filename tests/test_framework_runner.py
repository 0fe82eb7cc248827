"""What a run prints and how it stops (launch.py, experiments/framework/runner.py): per-epoch lines
without a terminal, quiet third-party logs, the closing summary; SIGTERM / SIGINT stop
training at a chunk boundary with a checkpoint, and the printed command resumes it to the
same parameters as a run that never stopped; a diverged run ends with one line and keeps
what it wrote; reports show n/a, never nan, for a missing throughput."""

import json
import os
import pathlib
import re
import shlex
import signal
import subprocess
import sys
import time
import types

import pytest

from experiments import train_gan, train_vae
from experiments.framework import runner
from genjax.training import checkpoint
from tests.experiment_helpers import write_synthetic_mnist

ROOT = pathlib.Path(__file__).resolve().parents[1]
LAUNCH = [sys.executable, str(ROOT / "launch.py"), "train_vae"]
EPOCHS = 60
# The smoke VAE, 8 steps per epoch, one step per chunk (480 chunks: a few seconds), its
# test-set evaluation and epoch checkpoints only at the end, a checkpoint every 100 steps;
# no sample scoring, and a 3-D latent space (no 2-D manifold figures): a shorter tail.
SETTINGS = ["--config=experiments/configs/train_vae.py:smoke", "--config.steps_per_chunk=1",
            f"--config.epochs={EPOCHS}", f"--config.eval_every={EPOCHS}",
            f"--config.checkpoint_every={EPOCHS}", "--config.checkpoint_every_steps=100",
            "--config.quality_samples=0", "--config.latent_dim=3"]
TIMEOUT_S = 240


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
  return write_synthetic_mnist(tmp_path_factory.mktemp("data"), num_train=256, num_test=40)


def _args(workdir, data_dir, *extra):
  return [f"--workdir={workdir}", f"--config.data_dir={data_dir}", *SETTINGS, *extra]


@pytest.fixture(scope="module")
def uninterrupted(data_dir, tmp_path_factory):
  """One run to the end, stderr a pipe (not a terminal): (its process, its workdir)."""
  workdir = tmp_path_factory.mktemp("uninterrupted")
  done = subprocess.run([*LAUNCH, *_args(workdir, data_dir)], capture_output=True, text=True,
                        cwd=ROOT, timeout=TIMEOUT_S)
  return done, workdir


def _results(workdir):
  with open(os.path.join(workdir, "results.json")) as f:
    return json.load(f)


def test_without_a_terminal_a_run_prints_epoch_lines_and_a_summary_not_info_logs(
    uninterrupted):
  done, workdir = uninterrupted
  assert done.returncode == 0, done.stderr
  epochs = re.findall(r"^train_vae epoch (\d+)/60 step (\d+)/480 loss -?[\d.]+ \d+ ex/s ",
                      done.stderr, re.M)
  assert [(int(e), int(s)) for e, s in epochs] == [(e, 8 * e) for e in range(1, EPOCHS + 1)]
  assert not re.search(r"^I\d{4} ", done.stderr, re.M), done.stderr   # no absl INFO records
  assert "checkpoint_manager" not in done.stderr and "orbax" not in done.stderr.lower()
  assert "params_digest=" not in done.stdout                          # one process: no digest
  # The summary: results.json's headline numbers, then what the run wrote.
  results = _results(workdir)
  assert f"{workdir}/results.json:" in done.stdout
  assert re.search(rf"^  test_elbo +{results['test_elbo']:.6g}$", done.stdout, re.M)
  written = re.search(rf"^written in {workdir}: (.*)$", done.stdout, re.M).group(1)
  assert {"results.json", "results.md", "metrics.jsonl", "checkpoints/"} <= set(
      written.split(", "))
  # A checkpoint every 100 steps, and at the last epoch (the last three kept).
  assert sorted(os.listdir(workdir / "checkpoints"), key=int) == ["300", "400", "480"]


def _wait_for_metrics(workdir, process):
  path = workdir / "metrics.jsonl"
  deadline = time.monotonic() + TIMEOUT_S
  while not (path.exists() and path.read_text().count("\n") >= 1):
    assert process.poll() is None, process.communicate()
    assert time.monotonic() < deadline, "no metrics.jsonl line in time"
    time.sleep(0.05)


def test_sigterm_checkpoints_and_the_printed_command_resumes_to_the_same_numbers(
    uninterrupted, data_dir, tmp_path):
  workdir = tmp_path / "stopped"
  command = [*LAUNCH, *_args(workdir, data_dir, "--noprogress")]
  process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             text=True, cwd=ROOT)
  try:
    _wait_for_metrics(workdir, process)
    process.send_signal(signal.SIGTERM)
    out, err = process.communicate(timeout=TIMEOUT_S)
  finally:
    process.kill()
  assert process.returncode == 0, err
  stop = re.fullmatch(rf"train_vae: stopped by SIGTERM at step (\d+) \(epoch [\d.]+\) of "
                      rf"{workdir}, checkpoint saved; resume with: (.*)", out.strip())
  assert stop, out
  step, resume = int(stop.group(1)), stop.group(2)
  assert 0 < step < 8 * EPOCHS and shlex.split(resume) == command
  assert str(step) in os.listdir(workdir / "checkpoints")
  assert not (workdir / "results.json").exists()        # no evaluation after the stop

  again = subprocess.run(shlex.split(resume), capture_output=True, text=True, cwd=ROOT,
                         timeout=TIMEOUT_S)
  assert again.returncode == 0, again.stderr
  assert f"train_vae: resumed from the checkpoint at step {step}" in again.stderr
  expected, got = _results(uninterrupted[1]), _results(workdir)
  assert got["steps"] == expected["steps"] == 8 * EPOCHS
  for key in ("params_digest", "test_elbo", "test_nll"):
    assert got[key] == expected[key], key


def test_stop_requests_turn_sigint_into_a_flag_and_restore_the_handler():
  before = signal.getsignal(signal.SIGINT)
  with runner.stop_requests() as stop:
    os.kill(os.getpid(), signal.SIGINT)
    time.sleep(0.01)                        # the handler runs between bytecodes
    assert stop == [signal.SIGINT]
    with pytest.raises(KeyboardInterrupt):  # a second Ctrl-C does not wait for the chunk
      os.kill(os.getpid(), signal.SIGINT)
      time.sleep(0.01)
  assert signal.getsignal(signal.SIGINT) is before


def test_checkpoint_cadence_by_epochs_steps_and_minutes():
  log = lambda step, end: {"step": step, "epoch": step / 8, "epoch_end": float(end)}  # noqa: E731
  by_epochs = runner.Cadence(epochs=2)
  assert [s for s in range(4, 41, 4) if by_epochs.due(log(s, s % 8 == 0), s - 4, 5, 0.0)] == [
      16, 32, 40]                           # epochs 2 and 4, and the last (5)
  by_steps = runner.Cadence(epochs=100, steps=6)  # chunks of 4: the boundary at/after 6k
  assert [s for s in range(4, 41, 4) if by_steps.due(log(s, False), s - 4, 5, 0.0)] == [
      8, 12, 20, 24, 32, 36]
  by_time = runner.Cadence(epochs=100, minutes=0.5)
  assert not by_time.due(log(4, False), 0, 5, 0.4) and by_time.due(log(4, False), 0, 5, 0.5)


def test_a_diverged_run_ends_with_one_line_and_keeps_what_it_wrote(data_dir, tmp_path):
  workdir = tmp_path / "diverged"
  # Adam at 1e30: step 1 is finite and checkpointed, its update makes step 2's loss NaN.
  done = subprocess.run(
      [*LAUNCH, f"--workdir={workdir}", f"--config.data_dir={data_dir}",
       "--config=experiments/configs/train_vae.py:smoke", "--config.steps_per_chunk=1",
       "--config.checkpoint_every_steps=1", "--config.learning_rate=1e30",
       "--config.quality_samples=0", "--config.latent_dim=3"],
      capture_output=True, text=True, cwd=ROOT, timeout=TIMEOUT_S)
  assert done.returncode == 1, done.stderr
  assert "Traceback" not in done.stderr and done.stdout == ""
  line = done.stderr.strip().splitlines()[-1]
  assert re.fullmatch(
      rf"train_vae: error: training diverged at step 2: non-finite (\w+=nan, )*loss=nan"
      rf"(, \w+=nan)*; the checkpoints up to step 1 are kept in {re.escape(str(workdir))}/checkpoints; no "
      r"results were written; try a smaller learning rate or another seed, in a new "
      r"workdir \(now learning_rate=1e\+30\)", line), line
  assert done.stderr.count("train_vae: error:") == 1
  # What the run wrote before it diverged is intact; nothing of the diverged step was added.
  assert os.listdir(workdir / "checkpoints") == ["1"]
  checkpoint.check_restorable(str(workdir))                       # raises if damaged
  assert json.loads((workdir / "config.json").read_text())["learning_rate"] == 1e30
  metrics = [json.loads(r) for r in (workdir / "metrics.jsonl").read_text().splitlines()]
  assert [r["step"] for r in metrics] == [1]
  assert not (workdir / "results.json").exists() and not (workdir / "results.md").exists()


def test_reports_show_n_a_not_nan_without_a_steady_throughput():
  assert runner.format_rate(1234.4) == "1234" and runner.format_rate(0.1234, ".3g") == "0.123"
  assert [runner.format_rate(v) for v in (float("nan"), float("inf"), None)] == ["n/a"] * 3
  config = types.SimpleNamespace(workdir="/runs/x")
  nan = float("nan")
  vae = train_vae.report({"test_elbo": -90.0, "test_recon": -80.0, "test_kl": 10.0,
                          "examples_per_s": nan, "wall_s": 3.0}, config)
  gan = train_gan.report({"d_loss": 1.0, "g_loss": 2.0, "d_real": 0.5, "d_fake": 0.4,
                          "examples_per_s": nan, "wall_s": 3.0}, config)
  for text in (vae, gan):
    assert "nan" not in text.lower() and "; n/a examples/s; wall 3 s;" in text, text
