"""Architecture rules a reader relies on: public surfaces resolve, the simulator never pulls in locust/gevent."""

from __future__ import annotations

import importlib
import subprocess
import sys

import pytest


@pytest.mark.parametrize("package", ["sim", "sim.platform", "sim.load", "sim.run", "sim.results"])
def test_exported_members_exist(package: str) -> None:
    """Every name in a package's __all__ is importable from it."""
    mod = importlib.import_module(package)
    assert mod.__all__ and all(hasattr(mod, name) for name in mod.__all__)


@pytest.mark.parametrize(("modules", "forbidden"), [
    ("sim.platform, sim.platform.server", ("locust", "gevent")),
    ("sim.cli, sim.load, sim.run, sim.results, sim.run.coordination", ("locust",)),
    ("sim.run.coordination, sim.run.plan, sim.results", ("locust", "gevent")),
])
def test_import_boundaries(modules: str, forbidden: tuple[str, ...]) -> None:
    """The simulator never imports locust or gevent (locust monkey-patches the process); the CLI never imports locust."""
    code = f"import sys, {modules}; print(' '.join(m for m in {forbidden!r} if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == ""


def test_only_one_module_imports_locust() -> None:
    """sim/run/locust_user.py is the only module of the package with `import locust` / `from locust`."""
    from pathlib import Path

    root = Path(__file__).resolve().parent.parent / "sim"
    importers = sorted(str(p.relative_to(root)) for p in root.rglob("*.py")
                       if any(line.startswith(("import locust", "from locust")) for line in p.read_text().splitlines()))
    assert importers == ["run/locust_user.py"]


def test_load_side_modules_stay_small() -> None:
    """No module of sim/load/ (what one launch needs) grows past ~300 lines: split it instead."""
    from pathlib import Path

    root = Path(__file__).resolve().parent.parent / "sim" / "load"
    sizes = {p.name: len(p.read_text().splitlines()) for p in root.glob("*.py")}
    assert max(sizes.values()) <= 300, sizes


@pytest.mark.parametrize(("wing", "never"), [
    ("platform", ("sim.load", "sim.run", "sim.results", "sim.commands", "sim.checks", "sim.cli")),
    ("load", ("sim.run", "sim.results", "sim.commands", "sim.checks", "sim.cli")),
])
def test_wings_import_only_downwards(wing: str, never: tuple[str, ...]) -> None:
    """The wing rules, read from every import statement (lazy ones inside functions too): the simulated platform
    never imports the load side or what runs it; the load side never imports sim/run or sim/results."""
    import ast
    from pathlib import Path

    root = Path(__file__).resolve().parent.parent / "sim" / wing
    crossings = []
    for path in sorted(root.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            names = ([a.name for a in node.names] if isinstance(node, ast.Import)
                     else [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
            crossings += [f"{path.name}: {n}" for n in names if n.startswith(never)]
    assert crossings == []
