"""No import cycle in genjax/ or experiments/, counting imports inside functions too (a
deferred import that closes a cycle is still a cycle: the modules cannot be understood,
or tested, one without the other)."""

import ast
import pathlib

ROOT = pathlib.Path(__file__).resolve().parents[1]
PACKAGES = ("genjax", "experiments")


def _modules() -> dict[str, pathlib.Path]:
  found = {}
  for package in PACKAGES:
    for path in (ROOT / package).rglob("*.py"):
      parts = path.relative_to(ROOT).with_suffix("").parts
      name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
      found[name] = path
  return found


def _imports(name: str, path: pathlib.Path, modules: dict[str, pathlib.Path]) -> set[str]:
  """The project modules ``name`` imports: ``import a.b`` -> a.b; ``from a import b`` ->
  a.b when that is a module, else a."""
  package = name if path.name == "__init__.py" else name.rpartition(".")[0]
  out = set()
  for node in ast.walk(ast.parse(path.read_text())):
    if isinstance(node, ast.Import):
      out |= {a.name for a in node.names if a.name in modules}
    elif isinstance(node, ast.ImportFrom):
      base = node.module or ""
      if node.level:
        base = ".".join(package.split(".")[:len(package.split(".")) - node.level + 1]
                        + ([node.module] if node.module else []))
      for alias in node.names:
        target = f"{base}.{alias.name}"
        if target in modules:
          out.add(target)
        elif base in modules:
          out.add(base)
  out.discard(name)
  return out


def import_cycles() -> list[list[str]]:
  """The strongly connected components of more than one module (Tarjan)."""
  modules = _modules()
  graph = {m: _imports(m, p, modules) for m, p in modules.items()}
  index, low, stack, on_stack, cycles, counter = {}, {}, [], set(), [], [0]

  def visit(v):
    index[v] = low[v] = counter[0]
    counter[0] += 1
    stack.append(v)
    on_stack.add(v)
    for w in graph[v]:
      if w not in index:
        visit(w)
        low[v] = min(low[v], low[w])
      elif w in on_stack:
        low[v] = min(low[v], index[w])
    if low[v] == index[v]:
      component = []
      while True:
        w = stack.pop()
        on_stack.discard(w)
        component.append(w)
        if w == v:
          break
      if len(component) > 1:
        cycles.append(sorted(component))

  for v in sorted(graph):
    if v not in index:
      visit(v)
  return cycles


def test_the_graph_sees_deferred_imports():
  modules = _modules()
  deferred = _imports("experiments.framework.fields", modules["experiments.framework.fields"],
                      modules)
  assert "genjax.data.registry" in deferred   # imported inside functions only


def test_no_import_cycles():
  assert import_cycles() == []
