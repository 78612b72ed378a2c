"""The package's layering, read from the source with `ast` (nothing is imported): no module outside `kurdish_tts.cli`
imports the command line, no two top-level parts of the package import each other, directly or around a circle, and
no two modules do.

Imports inside functions count too: a lazy import hides a dependency from start-up time, not from the design.
"""

import ast
from pathlib import Path

import kurdish_tts

PACKAGE = Path(kurdish_tts.__file__).parent
NAME = "kurdish_tts"


def module_name(path: Path) -> str:
    parts = (NAME, *path.relative_to(PACKAGE).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def modules() -> dict[str, Path]:
    return {module_name(path): path for path in sorted(PACKAGE.rglob("*.py"))}


def imported_modules(name: str, path: Path, known: set[str]) -> set[str]:
    """The package's modules that `name` imports, with `from X import Y` naming the module Y where Y is one."""
    is_package = path.name == "__init__.py"
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = name.split(".") if is_package else name.split(".")[:-1]
                base = base[: len(base) - (node.level - 1)]
                target = ".".join([*base, node.module] if node.module else base)
            else:
                target = node.module
            found.add(target)
            found.update(f"{target}.{alias.name}" for alias in node.names if f"{target}.{alias.name}" in known)
    return {module for module in found if module in known and module != name}


def import_graph() -> dict[str, set[str]]:
    found = modules()
    return {name: imported_modules(name, path, set(found)) for name, path in found.items()}


def top_level(module: str) -> str:
    """The part of the package a module belongs to: `kurdish_tts.trainers.budget` -> `trainers`."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One circle of the graph (its nodes, the first repeated at the end), or `None`."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for target in sorted(graph.get(node, ())):
            if state.get(target) == 1:
                return [*path[path.index(target) :], target]
            if target not in state and (cycle := visit(target)) is not None:
                return cycle
        path.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)) is not None:
            return cycle
    return None


def test_the_graph_sees_relative_and_absolute_imports():
    graph = import_graph()
    assert "kurdish_tts.runs.training_run" in graph["kurdish_tts.runs.vits_run"]
    assert "kurdish_tts.runs.arguments" in graph["kurdish_tts.cli.train_vits"]
    assert "kurdish_tts.errors" in graph["kurdish_tts.feedback.lineage"]


def test_nothing_below_the_command_line_imports_it():
    offenders = sorted(
        f"{module} imports {target}"
        for module, targets in import_graph().items()
        if top_level(module) != "cli"
        for target in targets
        if top_level(target) == "cli"
    )
    assert offenders == []


def test_no_circle_between_the_parts_of_the_package():
    parts: dict[str, set[str]] = {}
    for module, targets in import_graph().items():
        # The root `__init__` only registers the models with the Auto classes; every part may read its version.
        if top_level(module) == "__init__":
            continue
        parts.setdefault(top_level(module), set()).update(
            top_level(target) for target in targets if top_level(target) not in {top_level(module), "__init__"}
        )
    assert find_cycle(parts) is None


def test_no_circle_between_modules():
    # A module's own packages are imported before it, whatever it imports, so an edge to one of them is no circle.
    graph = {
        module: {target for target in targets if not module.startswith(f"{target}.")}
        for module, targets in import_graph().items()
    }
    assert find_cycle(graph) is None
