"""The layout of `headwater/` holds: no import cycles, each package imports only what its docstring allows.

Every import counts, wherever it is written (module level, inside a function, under TYPE_CHECKING):
a lazy import still ties two modules together, it only hides it from the interpreter.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1] / "headwater"
# Modules that stay at the top of headwater/: the package marker, the CLI and the public plugin hooks.
TOP_LEVEL = {"headwater", "headwater.cli", "headwater.hookspecs"}
ALWAYS_ALLOWED = {"headwater", "headwater.hookspecs"}  # __version__ and the hook markers
MAX_MODULES = 13  # per package, __init__ not counted


def modules(root: Path) -> dict[str, Path]:
    """Dotted module name -> file, for every module of the package at root."""
    found = {}
    for path in sorted(root.rglob("*.py")):
        parts = list(path.relative_to(root.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        found[".".join(parts)] = path
    return found


def import_graph(root: Path) -> dict[str, set[str]]:
    """Which modules of the package each module imports (relative imports resolved)."""
    known = modules(root)

    def owner(name: str) -> str | None:
        while name and name not in known:
            name = name.rpartition(".")[0]
        return name or None

    graph: dict[str, set[str]] = {name: set() for name in known}
    for name, path in known.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            targets: list[str] = []
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                    base = ".".join([*anchor, base] if base else anchor)
                # `from pkg import module` imports the module; `from module import name` the module itself.
                targets = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in known else base
                           for alias in node.names]
            for target in targets:
                module = owner(target)
                if module and module != name:
                    graph[name].add(module)
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Every strongly connected group of more than one module (Tarjan), each as one closed path."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    groups: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in sorted(graph[node]):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            group = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                group.append(member)
                if member == node:
                    break
            if len(group) > 1:
                groups.append(_closed_path(graph, set(group)))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return groups


def _closed_path(graph: dict[str, set[str]], group: set[str]) -> list[str]:
    """One cycle through the group, as a → b → ... → a, so the failure shows which imports to cut."""
    start = min(group)
    paths = {start: [start]}
    queue = [start]
    while queue:
        node = queue.pop(0)
        for target in sorted(graph[node] & group):
            if target == start:
                return [*paths[node], start]
            if target not in paths:
                paths[target] = [*paths[node], target]
                queue.append(target)
    return sorted(group)


def package_of(module: str) -> str:
    parts = module.split(".")
    return ".".join(parts[:2]) if len(parts) > 1 else module


def declared_imports(package_init: Path) -> set[str] | None:
    """The packages an `Imports:` line of the package's docstring allows; None for `any package`."""
    doc = ast.get_docstring(ast.parse(package_init.read_text())) or ""
    match = re.search(r"^Imports: (.+?)\.?$", doc, re.M)
    if match is None:
        pytest.fail(f"{package_init}: the docstring has no `Imports:` line naming the packages it may import")
    text = match.group(1).strip()
    if text == "any package":
        return None
    if text == "nothing from headwater":
        return set()
    return {f"headwater.{name.strip()}" for name in text.split(",")}


def packages(root: Path) -> list[Path]:
    return sorted(path.parent for path in root.glob("*/__init__.py"))


def test_no_module_imports_another_in_a_cycle():
    found = cycles(import_graph(ROOT))
    assert not found, "import cycles (cut one import of each):\n" + "\n".join(" → ".join(c) for c in found)


def test_each_package_imports_only_the_packages_its_docstring_names():
    graph = import_graph(ROOT)
    wrong = []
    for folder in packages(ROOT):
        package = f"headwater.{folder.name}"
        allowed = declared_imports(folder / "__init__.py")
        if allowed is None:
            continue
        for module, targets in sorted(graph.items()):
            if package_of(module) != package:
                continue
            for target in sorted(targets):
                other = package_of(target)
                if other != package and other not in allowed | ALWAYS_ALLOWED:
                    wrong.append(f"{module} imports {target}: add {other.split('.')[1]} to `Imports:` of {package} "
                                 f"(only if that keeps the packages acyclic) or move the code")
    assert not wrong, "\n".join(wrong)


def test_the_declared_package_dependencies_point_one_way():
    graph = {}
    for folder in packages(ROOT):
        allowed = declared_imports(folder / "__init__.py")
        graph[f"headwater.{folder.name}"] = set() if allowed is None else allowed
    graph = {package: {target for target in targets if target in graph} for package, targets in graph.items()}
    found = cycles(graph)
    assert not found, "packages allow each other in a circle:\n" + "\n".join(" → ".join(c) for c in found)


def test_headwater_stays_grouped_in_packages_of_a_readable_size():
    top = {name for name in modules(ROOT) if name.count(".") <= 1 and name not in TOP_LEVEL
           and not (ROOT / name.partition(".")[2] / "__init__.py").exists()}
    assert not top, f"modules at the top of headwater/ (put each in the package of its stage): {sorted(top)}"
    sizes = {folder.name: len([p for p in folder.glob("*.py") if p.name != "__init__.py"])
             for folder in packages(ROOT)}
    too_big = {name: size for name, size in sizes.items() if size > MAX_MODULES}
    assert not too_big, f"packages over {MAX_MODULES} modules (split them by job): {too_big}"


def test_the_cycle_check_finds_a_cycle_through_a_lazy_import(tmp_path):
    package = tmp_path / "demo"
    (package / "inner").mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "inner" / "__init__.py").write_text("")
    (package / "a.py").write_text("from demo.inner import b\n")
    (package / "inner" / "b.py").write_text("def f():\n    from ..c import g\n")
    (package / "c.py").write_text("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    import demo.a\n")
    (package / "d.py").write_text("import demo.a\n")

    assert cycles(import_graph(package)) == [["demo.a", "demo.inner.b", "demo.c", "demo.a"]]
