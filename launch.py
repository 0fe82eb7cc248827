"""The one entry point: ``python launch.py EXPERIMENT [--flag=value ...]``.

Runs ``experiments/EXPERIMENT.py``'s ``main`` under absl. ``python launch.py --list``
lists the experiments. ``--host_devices=N`` makes JAX see N CPU devices; it is applied
here, before JAX is imported, because XLA reads it only at start-up.
"""

from __future__ import annotations

import ast
import importlib
import os
import pathlib
import sys

EXPERIMENTS_DIR = pathlib.Path(__file__).resolve().parent / "experiments"
USAGE = "usage: python launch.py EXPERIMENT [--flag=value ...]   |   python launch.py --list"


def experiments() -> dict[str, str]:
  """Experiment name -> first line of its module docstring."""
  found = {}
  for path in sorted(EXPERIMENTS_DIR.glob("*.py")):
    if path.stem.startswith("_") or path.stem == "common":
      continue
    doc = ast.get_docstring(ast.parse(path.read_text())) or ""
    found[path.stem] = doc.strip().splitlines()[0] if doc.strip() else ""
  return found


def _set_host_devices(args: list[str]) -> None:
  """Applies --host_devices=N to XLA_FLAGS (the flag stays in argv for the experiment)."""
  for i, arg in enumerate(args):
    value = None
    if arg.startswith("--host_devices="):
      value = arg.split("=", 1)[1]
    elif arg == "--host_devices" and i + 1 < len(args):
      value = args[i + 1]
    if value is None:
      continue
    if not value.isdigit() or int(value) < 1:
      sys.exit(f"launch.py: --host_devices={value}: expected a positive integer")
    flag = f"--xla_force_host_platform_device_count={value}"
    kept = [f for f in os.environ.get("XLA_FLAGS", "").split()
            if not f.startswith("--xla_force_host_platform_device_count")]
    os.environ["XLA_FLAGS"] = " ".join([*kept, flag])


def main(argv: list[str]) -> None:
  args = argv[1:]
  known = experiments()
  if not args or args[0] in ("-h", "--help"):
    sys.exit(USAGE)
  if args[0] == "--list":
    width = max(map(len, known))
    print("\n".join(f"{name:<{width}}  {doc}" for name, doc in known.items()))
    return
  name, rest = args[0], args[1:]
  if name not in known:
    sys.exit(f"launch.py: unknown experiment {name!r}; known: {', '.join(known)}\n{USAGE}")
  _set_host_devices(rest)
  sys.path.insert(0, str(EXPERIMENTS_DIR.parent))
  from absl import app  # pylint: disable=import-outside-toplevel
  module = importlib.import_module(f"experiments.{name}")
  app.run(module.main, argv=[f"launch.py {name}", *rest])


if __name__ == "__main__":
  main(sys.argv)
