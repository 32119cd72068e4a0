"""The layout shows the architecture: packages by concern, lower ones never import upper ones, no cycles,
one atomic writer."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "prunekit"
LAYERS = ["__main__", "cli", "study", "hf", "plan", "bench", "schedules", "deploy", "quantize", "checkpoint", "compact", "training", "prune", "structure", "kernels",
          "data", "models", "storage", "losses", "batches", "references", "plugins", "registry", "timing", "tables", "errors", "_version"]
"""Top to bottom: a module may import from its own package and from packages below it, never above."""


def modules() -> dict[str, Path]:
    found = {}
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        found[name] = path
    return found


def imports(name: str, path: Path, known: dict[str, Path]) -> set[str]:
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    deps = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            candidates = [target] + [f"{target}.{alias.name}" for alias in node.names]
        elif isinstance(node, ast.Import):
            candidates = [alias.name for alias in node.names]
        else:
            continue
        deps |= {c for c in candidates if c in known and c != name}
    return deps


def graph() -> dict[str, set[str]]:
    known = modules()
    return {name: imports(name, path, known) for name, path in known.items()}


def layer(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "prunekit"


def test_every_package_has_a_place_in_the_layers():
    assert {layer(m) for m in modules()} - {"prunekit"} <= set(LAYERS)


def test_lower_packages_never_import_upper_ones():
    violations = [(a, b) for a, deps in graph().items() for b in deps
                  if layer(a) in LAYERS and layer(b) in LAYERS and LAYERS.index(layer(b)) < LAYERS.index(layer(a))]
    assert violations == []


def test_no_import_cycles():
    edges, state, cycles = graph(), {}, []

    def visit(node, stack):
        state[node] = "open"
        stack.append(node)
        for dep in edges[node]:
            if state.get(dep) == "open":
                cycles.append(stack[stack.index(dep):] + [dep])
            elif dep not in state:
                visit(dep, stack)
        stack.pop()
        state[node] = "done"

    for node in edges:
        if node not in state:
            visit(node, [])
    assert cycles == []


def test_one_atomic_writer():
    writers = [str(p.relative_to(PACKAGE)) for p in PACKAGE.rglob("*.py")
               if any(call in p.read_text() for call in ("os.replace(", "os.rename(", "mkstemp("))]
    assert writers == ["storage/atomic.py"]


def test_modules_stay_small():
    sizes = {str(p.relative_to(PACKAGE)): len(p.read_text().splitlines()) for p in PACKAGE.rglob("*.py")}
    assert {name: n for name, n in sizes.items() if n > 300} == {}
