"""io/workdir.py: every JSON file a run writes is strict JSON (a missing figure is null,
with a reason), and a workdir that cannot be a directory is refused before any write."""

import json
import math
import pathlib
import re

import numpy as np
import pytest

import launch
from experiments.framework import runner
from genjax.io import workdir
from tests.experiment_helpers import assert_strict_json, strict_loads

NAN, INF = float("nan"), float("inf")


def test_writers_turn_non_finite_numbers_into_null_with_a_note(tmp_path):
  results = {"test_elbo": -90.5, "steps": 16, "test_nll": NAN, "best": INF, "worst": -INF,
             "examples_per_s": NAN, "examples_per_s_note": "no steady-state chunk",
             "fd": np.float32("nan"), "curve": [(1, -95.0), (2, NAN)],
             "rows": [{"efficiency": NAN, "devices": 2}], "ok": True, "name": "elbo"}
  with pytest.raises(ValueError):                     # what the writer must never emit
    json.dumps(results, allow_nan=False)
  workdir.write_results(str(tmp_path), results, title="t")
  stored = strict_loads((tmp_path / "results.json").read_text())
  assert stored["test_elbo"] == -90.5 and stored["steps"] == 16 and stored["ok"] is True
  assert [stored[k] for k in ("test_nll", "best", "worst", "fd")] == [None] * 4
  assert stored["test_nll_note"] == "test_nll was not a finite number (nan); written as null"
  assert stored["best_note"] == "best was not a finite number (inf); written as null"
  assert stored["worst_note"] == "worst was not a finite number (-inf); written as null"
  # The writer's own reason is kept, and no second note is made up.
  assert stored["examples_per_s"] is None
  assert stored["examples_per_s_note"] == "no steady-state chunk"
  assert stored["curve"] == [[1, -95.0], [2, None]]
  assert stored["curve_note"] == "a value of curve was not a finite number (nan); written as null"
  assert stored["rows"] == [{"efficiency": None, "devices": 2, "efficiency_note":
                             "efficiency was not a finite number (nan); written as null"}]
  assert list(stored)[:6] == ["test_elbo", "steps", "test_nll", "test_nll_note", "best",
                              "best_note"]                 # each note beside its figure
  table = (tmp_path / "results.md").read_text()
  assert "| test_nll | n/a |" in table and "| test_elbo | -90.5 |" in table
  assert "nan" not in table.lower().replace("not a finite number (nan)", "")

  writer = workdir.MetricsWriter(str(tmp_path), tensorboard=False)
  writer.write({"step": 8, "epoch": 1.0, "loss": NAN, "kl": np.float32(2.5)})
  writer.close()
  workdir.write_json(str(tmp_path / "other.json"), {"per_seed": np.array([1.0, -np.inf])})
  assert [p.name for p in assert_strict_json(tmp_path)] == [
      "metrics.jsonl", "other.json", "results.json"]
  [record] = workdir.read_metrics(str(tmp_path))
  assert record == {"step": 8, "epoch": 1.0, "loss": None, "kl": 2.5,
                    "loss_note": "loss was not a finite number (nan); written as null"}
  assert strict_loads((tmp_path / "other.json").read_text())["per_seed"] == [1.0, None]


def test_strict_json_keeps_finite_data_as_it_was():
  data = {"a": 1, "b": -2.5, "c": [1, 2.0, "x", None, False], "d": {"e": (3, 4)},
          "f": np.int64(7), "g": np.array([[1, 2]], np.int32), 3: "int key"}
  out = workdir.strict_json(data)
  assert out == {"a": 1, "b": -2.5, "c": [1, 2.0, "x", None, False], "d": {"e": [3, 4]},
                 "f": 7, "g": [[1, 2]], "3": "int key"}
  assert type(out["f"]) is int and json.loads(workdir.to_json(data)) == out


def test_a_strict_parser_refuses_what_plain_json_dumps_writes(tmp_path):
  """The check the experiment tests run on every workdir fails on NaN, visibly."""
  (tmp_path / "results.json").write_text(json.dumps({"examples_per_s": NAN}))
  with pytest.raises(AssertionError, match=r"results.json \(document 0\) is not strict JSON: "
                                           r"NaN is not JSON"):
    assert_strict_json(tmp_path)
  (tmp_path / "results.json").write_text("{}")
  (tmp_path / "metrics.jsonl").write_text('{"loss": 1.0}\n{"loss": -Infinity}\n')
  with pytest.raises(AssertionError, match=r"metrics.jsonl \(document 1\)"):
    assert_strict_json(tmp_path)


def _write_metrics(run_dir, chunks):
  writer = workdir.MetricsWriter(str(run_dir), tensorboard=False)
  for i, (seconds, rate) in enumerate(chunks):
    writer.write({"step": i + 1, "epoch": i + 1, "seconds": seconds, "examples_per_s": rate,
                  "includes_compile": int(i == 0)})
  writer.write({"step": len(chunks), "epoch": len(chunks), "test_elbo": -90.0})
  writer.close()


def test_a_run_of_one_chunk_reports_no_throughput_with_the_reason(tmp_path):
  """Every chunk of a one-chunk run includes compilation: examples_per_s is null in
  results.json, with runner.NO_STEADY_CHUNK beside it, never NaN."""
  _write_metrics(tmp_path, [(5.0, 100.0)])
  info = runner.throughput(str(tmp_path))
  assert math.isnan(info["examples_per_s"])
  assert info["examples_per_s_note"] == runner.NO_STEADY_CHUNK
  workdir.write_results(str(tmp_path), {"test_elbo": -90.0, **info}, title="t")
  stored = strict_loads((tmp_path / "results.json").read_text())
  assert stored == {"test_elbo": -90.0, "examples_per_s": None,
                    "examples_per_s_note": runner.NO_STEADY_CHUNK}


def test_throughput_weights_the_steady_chunks_by_their_time(tmp_path):
  _write_metrics(tmp_path, [(9.0, 10.0), (1.0, 300.0), (3.0, 100.0)])
  assert runner.throughput(str(tmp_path)) == {"examples_per_s": (300.0 + 300.0) / 4.0}


def test_a_workdir_that_is_a_file_is_refused_before_anything_is_written(tmp_path):
  file = tmp_path / "run"
  file.write_text("not a directory")
  for path, where in ((file, "is"), (file / "sub", f"lies under {file}, which is")):
    with pytest.raises(ValueError, match=re.escape(
        f"workdir={path} {where} an existing file, not a directory: expected a directory"
        )) as e:
      workdir.check_or_write_config(str(path), {"seed": 0})
    assert "\n" not in str(e.value)
  assert file.read_text() == "not a directory" and sorted(tmp_path.iterdir()) == [file]
  workdir.check_workdir(str(tmp_path / "new" / "deeper"))    # not there yet: fine
  assert not (tmp_path / "new").exists()


def test_a_damaged_config_json_is_a_one_line_error_and_is_kept(tmp_path):
  (tmp_path / "config.json").write_text('{"seed": 0,')
  with pytest.raises(ValueError, match=r"config.json is not readable JSON .*; expected the "
                                       r"config.json of an earlier run") as e:
    workdir.check_or_write_config(str(tmp_path), {"seed": 0})
  assert "\n" not in str(e.value)
  assert (tmp_path / "config.json").read_text() == '{"seed": 0,'


def test_every_experiment_has_an_end_to_end_test_that_checks_its_json_strictly():
  """tests/experiment_helpers.run_experiment parses every .json / .jsonl file of the workdir
  strictly after each run; an experiment run through launch.py instead must call
  assert_strict_json itself. So each experiment's results are checked where they are made,
  without extra training runs."""
  tests = {p.name: p.read_text() for p in pathlib.Path(__file__).parent.glob("test_*.py")}
  missing = []
  for name in launch.experiments():
    through_helper = any(re.search(rf"from experiments import [\w, ]*\b{name}\b", src)
                         and re.search(rf"(run_experiment|_run)\(\s*{name}\b|"
                                       rf"return run_experiment\({name}\b", src)
                         for src in tests.values())
    through_launch = any((f'_launch("{name}"' in src or f'["{name}",' in src)
                         and "assert_strict_json(" in src for src in tests.values())
    if not (through_helper or through_launch):
      missing.append(name)
  assert not missing, f"no end-to-end test checks the JSON of: {missing}"


def test_a_run_from_before_a_field_existed_resumes_only_at_the_fields_old_behaviour(tmp_path):
  """A stored config.json without a key named in ``added`` matches that key's value there
  (the run computed exactly that), and nothing else."""
  (tmp_path / "config.json").write_text('{"seed": 0}')
  added = {"posterior": "diagonal"}
  with pytest.raises(ValueError, match="posterior='diagonal' there, 'iaf' now"):
    workdir.check_or_write_config(str(tmp_path), {"seed": 0, "posterior": "iaf"}, (), added)
  assert (tmp_path / "config.json").read_text() == '{"seed": 0}'
  with pytest.raises(ValueError, match="posterior=None there, 'diagonal' now"):
    workdir.check_or_write_config(str(tmp_path), {"seed": 0, "posterior": "diagonal"})
  workdir.check_or_write_config(str(tmp_path), {"seed": 0, "posterior": "diagonal"}, (), added)
  assert json.loads((tmp_path / "config.json").read_text()) == {"seed": 0, "posterior": "diagonal"}
