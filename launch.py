"""The one entry point: ``python launch.py EXPERIMENT --workdir=DIR [--config=FILE[:variant]]
[--config.FIELD=VALUE ...]``.

Runs ``experiments/EXPERIMENT.py`` on the config ``experiments/configs/EXPERIMENT.py`` (or
``--config``), with ``--config.FIELD=VALUE`` overrides, validated before anything is
written (``experiments/framework/configuration.py``). ``python launch.py --list`` lists the
experiments; ``python launch.py EXPERIMENT --help`` prints its fields, defaults and docs.
Before JAX is imported it applies ``--host_devices=N`` (XLA reads the CPU device count only
at start-up). Multi-process runs: ``--coordinator_address``, ``--num_processes`` and
``--process_id`` initialise ``jax.distributed`` (as does a cluster environment JAX detects
by itself, e.g. SLURM or Open MPI); ``--local_processes=N`` starts N such processes on
127.0.0.1 and stops them all if one fails. Output: progress bars while stderr is a terminal
(``--noprogress``, or stderr not a terminal: one line per epoch instead); absl and
third-party (Orbax, etils, TensorStore) INFO logs stay quiet unless absl's own
``--verbosity=N`` / ``-v N`` asks for them.
"""

from __future__ import annotations

import ast
import importlib
import os
import pathlib
import socket
import subprocess
import sys
import time

EXPERIMENTS_DIR = pathlib.Path(__file__).resolve().parent / "experiments"
USAGE = ("usage: python launch.py EXPERIMENT --workdir=DIR [--config=FILE[:variant]] "
         "[--config.FIELD=VALUE ...]   |   python launch.py EXPERIMENT --help   |   "
         "python launch.py --list")
HELP_FLAGS = ("-h", "--help", "--helpshort", "--helpfull")
CLUSTER_ENV = ("SLURM_NTASKS", "OMPI_COMM_WORLD_SIZE", "JAX_COORDINATOR_ADDRESS")
QUIET_LOGGERS = ("orbax", "etils", "tensorstore")   # Python loggers held at WARNING


def experiments() -> dict[str, str]:
  """Experiment name -> first line of its module docstring."""
  found = {}
  for path in sorted(EXPERIMENTS_DIR.glob("*.py")):
    if path.stem.startswith("_"):
      continue
    doc = ast.get_docstring(ast.parse(path.read_text())) or ""
    found[path.stem] = doc.strip().splitlines()[0] if doc.strip() else ""
  return found


def _flag(args: list[str], name: str) -> str | None:
  """The value of --name=VALUE or --name VALUE in args (the last one wins), else None."""
  value = None
  for i, arg in enumerate(args):
    if arg.startswith(f"--{name}="):
      value = arg.split("=", 1)[1]
    elif arg == f"--{name}" and i + 1 < len(args):
      value = args[i + 1]
  return value


def _positive_int(args: list[str], name: str, minimum: int = 1) -> int | None:
  value = _flag(args, name)
  if value is None:
    return None
  if not value.isdigit() or int(value) < minimum:
    sys.exit(f"launch.py: --{name}={value}: expected an integer >= {minimum}")
  return int(value)


# Simulated CPU devices are threads sharing the host's cores: on a loaded host one of
# them can reach an all-reduce more than XLA's default 40 s after the others, and XLA
# then aborts the process ("Termination timeout for all reduce"). Allow 10 minutes.
COLLECTIVE_TIMEOUT_FLAG = "--xla_cpu_collective_call_terminate_timeout_seconds"
COLLECTIVE_TIMEOUT_S = 600


def host_devices_xla_flags(count: int, existing: str = "") -> str:
  """XLA_FLAGS for ``count`` simulated CPU devices: ``existing`` with the device count
  replaced and the collective termination timeout raised (unless ``existing`` sets it)."""
  kept = [f for f in existing.split() if not f.startswith("--xla_force_host_platform_device_count")]
  if not any(f.startswith(COLLECTIVE_TIMEOUT_FLAG) for f in kept):
    kept.append(f"{COLLECTIVE_TIMEOUT_FLAG}={COLLECTIVE_TIMEOUT_S}")
  return " ".join([*kept, f"--xla_force_host_platform_device_count={count}"])


def _set_host_devices(args: list[str]) -> None:
  """Applies --host_devices=N to XLA_FLAGS (the flag stays in argv for the experiment)."""
  count = _positive_int(args, "host_devices")
  if count is None:
    return
  os.environ["XLA_FLAGS"] = host_devices_xla_flags(count, os.environ.get("XLA_FLAGS", ""))


def _verbosity(args: list[str]) -> int | None:
  """absl's ``--verbosity=N`` / ``--verbosity N`` / ``-v N`` / ``-v=N`` (the last wins), else
  None."""
  value = None
  for i, arg in enumerate(args):
    name, eq, given = arg.lstrip("-").partition("=")
    if arg.startswith("-") and name in ("verbosity", "v"):
      value = given if eq else (args[i + 1] if i + 1 < len(args) else "")
  if value is not None and not value.removeprefix("-").isdigit():
    sys.exit(f"launch.py: --verbosity={value}: expected an integer (-1 warnings, 0 info, "
             "1 debug)")
  return None if value is None else int(value)


def configure_output(args: list[str]) -> None:
  """Quiet logs and progress as the flags ask (called once absl has installed its handler).

  absl logs at WARNING, and the Python loggers of ``QUIET_LOGGERS`` too (Orbax dumps its
  internals at INFO on every checkpoint), unless ``--verbosity``/``-v`` is given: then
  absl's verbosity is that and the others are left as they are. ``--noprogress`` turns the
  bars off (``genjax.io.progress``).
  """
  import logging as py_logging  # pylint: disable=import-outside-toplevel
  from absl import logging  # pylint: disable=import-outside-toplevel
  from genjax.io import progress  # pylint: disable=import-outside-toplevel
  verbosity = _verbosity(args)
  logging.set_verbosity(logging.WARNING if verbosity is None else verbosity)
  if verbosity is None:
    for name in QUIET_LOGGERS:
      py_logging.getLogger(name).setLevel(py_logging.WARNING)
  if "--noprogress" in args:
    progress.set_enabled(False)


def _run(name: str, module, args: list[str]) -> None:
  """What absl's app.run calls: output settings, then the experiment (runner.main)."""
  from experiments.framework import runner  # pylint: disable=import-outside-toplevel
  configure_output(args)
  runner.main(name, module, args)


def _init_distributed(args: list[str]) -> None:
  """jax.distributed.initialize from the flags, or from a cluster environment JAX knows."""
  address = _flag(args, "coordinator_address")
  if address is None and not any(os.environ.get(k) for k in CLUSTER_ENV):
    return
  import jax  # pylint: disable=import-outside-toplevel
  jax.config.update("jax_cpu_collectives_implementation", "gloo")  # CPU all-reduce across hosts
  if address is None:
    jax.distributed.initialize()
    return
  num, pid = _positive_int(args, "num_processes"), _positive_int(args, "process_id", 0)
  if num is None or pid is None or pid >= num:
    sys.exit(f"launch.py: --coordinator_address={address} needs --num_processes=N and "
             f"--process_id in 0..N-1 (got {num} and {pid})")
  jax.distributed.initialize(address, num, pid, initialization_timeout=120)


def _free_port() -> int:
  with socket.socket() as s:
    s.bind(("127.0.0.1", 0))
    return s.getsockname()[1]


def run_local_processes(name: str, args: list[str], count: int) -> int:
  """Starts ``count`` processes of this experiment on 127.0.0.1; stops all if one fails."""
  args = [a for a in args if not a.startswith("--local_processes")]
  address = f"127.0.0.1:{_free_port()}"
  procs = [subprocess.Popen([sys.executable, __file__, name, *args,
                             f"--coordinator_address={address}", f"--num_processes={count}",
                             f"--process_id={i}"]) for i in range(count)]
  try:
    while True:
      codes = [p.poll() for p in procs]
      failed = [(i, c) for i, c in enumerate(codes) if c not in (None, 0)]
      if failed:
        i, code = failed[0]
        print(f"launch.py: process {i} of {count} exited with code {code}; stopping the others",
              file=sys.stderr)
        return code
      if all(c == 0 for c in codes):
        return 0
      time.sleep(0.2)
  finally:
    for p in procs:
      if p.poll() is None:
        p.terminate()
    for p in procs:
      try:
        p.wait(timeout=10)
      except subprocess.TimeoutExpired:
        p.kill()


def main(argv: list[str]) -> None:
  args = argv[1:]
  known = experiments()
  if not args or args[0] in HELP_FLAGS:
    sys.exit(USAGE)
  if args[0] == "--list":
    width = max(map(len, known))
    print("\n".join(f"{name:<{width}}  {doc}" for name, doc in known.items()))
    return
  name, rest = args[0], args[1:]
  if name not in known:
    sys.exit(f"launch.py: unknown experiment {name!r}; known: {', '.join(known)}\n{USAGE}")
  sys.path.insert(0, str(EXPERIMENTS_DIR.parent))
  if any(a in HELP_FLAGS for a in rest):
    from experiments.framework import configuration  # pylint: disable=import-outside-toplevel
    try:
      print(configuration.help_text(name, known[name], _flag(rest, "config")))
    except configuration.ConfigError as e:
      sys.exit(f"{name}: error: {e}")
    return
  _set_host_devices(rest)
  local = _positive_int(rest, "local_processes")
  if local is not None:
    sys.exit(run_local_processes(name, rest, local))
  _init_distributed(rest)
  from absl import app  # pylint: disable=import-outside-toplevel
  module = importlib.import_module(f"experiments.{name}")
  app.run(lambda _: _run(name, module, rest), argv=[f"launch.py {name}"])


if __name__ == "__main__":
  main(sys.argv)
