"""The package's architecture: no import cycles, data flowing downward, and one command line."""
from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "micronbert"

# Lower layers never import higher ones; a module may import its own layer and those below.
LAYERS = [
    ("io", "config"),
    ("metrics", "viz"),
    ("model",),
    ("data",),
    ("baselines",),
    ("train",),
    ("evaluation",),
    ("spotting",),
    ("diagnostics", "predict", "export"),
    ("demo",),
    ("datasets", "cli", "__main__", "__init__"),
]


def _layer(module: str) -> int:
    top = module.split(".")[1] if "." in module else "__init__"
    for level, names in enumerate(LAYERS):
        if top in names:
            return level
    raise AssertionError(f"module {module} belongs to no layer of tests/test_architecture.py")


def _modules() -> dict[str, Path]:
    modules = {}
    for path in PACKAGE.rglob("*.py"):
        parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
        modules[".".join(parts[:-1] if parts[-1] == "__init__" and len(parts) > 1 else parts)] = path
    return modules


def _imports(name: str, path: Path, modules: dict[str, Path]) -> set[str]:
    """Package modules imported by ``name`` (module level and inside functions; relative imports resolved)."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = package.split(".")[:len(package.split(".")) - node.level + 1]
                base = ".".join(parent + ([node.module] if node.module else []))
            targets = [base] + [f"{base}.{alias.name}" for alias in node.names]
        else:
            continue
        found.update(target for target in targets if target in modules and target != name)
    return found


def _graph() -> dict[str, set[str]]:
    modules = _modules()
    return {name: _imports(name, path, modules) for name, path in modules.items()}


def test_no_module_imports_from_a_layer_above_it():
    upward = sorted(f"{name} -> {target}" for name, targets in _graph().items() for target in targets
                    if _layer(target) > _layer(name))
    assert upward == []


def test_no_import_cycle_between_modules():
    graph = {name: {t for t in targets if not _modules()[t].name == "__init__.py"}
             for name, targets in _graph().items() if _modules()[name].name != "__init__.py"}
    state: dict[str, int] = {}
    cycles = []

    def visit(node: str, trail: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                cycles.append(" -> ".join(trail[trail.index(nxt):] + [nxt]))
            elif nxt not in state:
                visit(nxt, trail + [nxt])
        state[node] = 2

    for start in sorted(graph):
        if start not in state:
            visit(start, [start])
    assert cycles == []


def test_only_the_command_line_builds_parsers():
    builders = sorted(str(path.relative_to(PACKAGE)) for path in PACKAGE.rglob("*.py")
                      if "ArgumentParser" in path.read_text() and path.name != "cli.py")
    assert builders == []
