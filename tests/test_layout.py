"""The layout's rules, read from the code: who may import whom (one room per concern, no imports running back).

Layers, bottom up: the core (``agentfleet``: settings, protocol, chain, LLM, bidding), the processes
(``chain_listener``, ``workers``, ``trainer``: each imports the core, never another process), the app shell
(``shell``: the CLI, demo, up, walkthrough, local services; imports anything, imported by nothing), the test
support (``testkit``, shared by ``tests`` and ``bench``), and the benchmarks, which never import ``tests``.
Every import counts, lazy ones inside functions included.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("agentfleet", "chain_listener", "workers", "trainer", "dashboard", "shell", "testkit", "bench", "tests")
PROCESSES = ("chain_listener", "workers", "trainer")

FORBIDDEN: dict[str, set[str]] = {  # package -> top-level packages it must not import
    "agentfleet": {"chain_listener", "workers", "trainer", "shell", "testkit", "bench", "tests"},
    "chain_listener": {"workers", "trainer", "shell", "testkit", "bench", "tests"},
    "workers": {"chain_listener", "trainer", "shell", "testkit", "bench", "tests"},
    "trainer": {"chain_listener", "workers", "shell", "testkit", "bench", "tests"},
    "dashboard": {"chain_listener", "workers", "trainer", "shell", "testkit", "bench", "tests"},
    "shell": {"testkit", "bench", "tests"},
    "testkit": {"bench", "tests"},
    "bench": {"tests"},
}


def imports_of(path: Path, root: Path = ROOT) -> Iterator[tuple[int, str]]:
    """(line, imported module) for every import statement in the file, at any depth."""
    package = ".".join(path.relative_to(root).with_suffix("").parts[:-1])
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative: resolve against the file's package
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                yield node.lineno, ".".join([*base, *([node.module] if node.module else [])])
            elif node.module:
                yield node.lineno, node.module


def violations(package: str, root: Path = ROOT) -> list[str]:
    found = []
    for path in sorted((root / package).rglob("*.py")):
        for line, module in imports_of(path, root):
            if module.split(".")[0] in FORBIDDEN.get(package, set()):
                found.append(f"{path.relative_to(root)}:{line} imports {module}")
    return found


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_no_import_runs_against_the_layers(package: str) -> None:
    assert violations(package) == []


def test_the_rules_catch_a_back_import(tmp_path: Path) -> None:
    """The checker itself, on a tree of its own: a lazy import inside a function is found, a relative import
    is resolved against its package, an allowed import passes."""
    (tmp_path / "trainer" / "sub").mkdir(parents=True)
    (tmp_path / "trainer" / "probe.py").write_text("def f() -> None:\n    from workers import tasks  # noqa\n")
    (tmp_path / "trainer" / "sub" / "rel.py").write_text("from .. import integration\nimport agentfleet.policy\n")
    assert violations("trainer", tmp_path) == ["trainer/probe.py:2 imports workers"]
    (tmp_path / "agentfleet").mkdir()
    (tmp_path / "agentfleet" / "up.py").write_text("from shell import cli\n")
    assert violations("agentfleet", tmp_path) == ["agentfleet/up.py:1 imports shell"]


def test_every_top_level_package_has_a_docstring_that_says_its_job() -> None:
    for package in PACKAGES:
        init = ROOT / package / "__init__.py"
        doc = ast.get_docstring(ast.parse(init.read_text())) if init.exists() else None
        assert doc and len(doc) > 30, f"{package}/__init__.py needs a docstring saying its one job"
