"""Architecture rules a reader relies on: public surfaces resolve, the simulator never pulls in locust/gevent."""

from __future__ import annotations

import importlib
import subprocess
import sys

import pytest


def test_exported_members_exist() -> None:
    """Every name in the top package's __all__ is importable from it."""
    mod = importlib.import_module("sim")
    assert mod.__all__ and all(hasattr(mod, name) for name in mod.__all__)


@pytest.mark.parametrize("package", ["sim.platform", "sim.load", "sim.run", "sim.results"])
def test_wing_packages_import_none_of_their_modules(package: str) -> None:
    """Importing ``sim.run.process`` imports ``sim.run`` first: were that package to import its siblings (as
    re-exports did), every small import would cost the whole wing — ~0.4 s before a run's Locust could start."""
    code = f"import sys, {package}; print(' '.join(m for m in sys.modules if m.startswith('{package}.')))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == ""


@pytest.mark.parametrize(("modules", "forbidden"), [
    ("sim.platform.app, sim.platform.server, sim.platform.__main__", ("locust", "gevent")),
    ("sim.cli, sim.commands, sim.load.client, sim.run.runner, sim.run.prepare, sim.run.capacity, sim.results.report",
     ("locust",)),
    ("sim.run.coordination, sim.run.plan, sim.results.summary, sim.results.text", ("locust", "gevent")),
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


def test_modules_and_functions_stay_small() -> None:
    """No module of sim/ grows past 300 lines and no function past 60: split it instead (checked by reading every
    module's syntax tree)."""
    import ast
    from pathlib import Path

    root = Path(__file__).resolve().parent.parent / "sim"
    too_long = []
    for path in sorted(root.rglob("*.py")):
        text = path.read_text()
        if len(text.splitlines()) > 300:
            too_long.append(f"{path.relative_to(root)}: {len(text.splitlines())} lines")
        too_long += [f"{path.relative_to(root)}:{n.lineno} {n.name}: {n.end_lineno - n.lineno + 1} lines"
                     for n in ast.walk(ast.parse(text)) if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))
                     and (n.end_lineno or n.lineno) - n.lineno + 1 > 60]
    assert too_long == []


VIEWS = ("run/engine.py", "results/text.py", "results/report.py", "results/compare.py", "run/capacity.py",
         "run/metrics.py", "run/webui.py", "run/terminal.py", "run/fleet.py", "run/tally.py", "run/prepare.py",
         "run/preflight.py", "commands.py")

ASKS_KIND = r"""(?:sc|scenario)\.kind\s*[!=]=|\.load\s*[!=]=|(?<![^=!<>]= )["'](?:workflow|conversation)["']|\.conversations\b"""
"""A comparison with the scenario's kind, or a kind's name (but as a parameter's default)."""


@pytest.mark.parametrize("module", VIEWS)
def test_no_view_asks_which_kind_of_traffic_runs(module: str) -> None:
    """The engine and the views work on what drivers contribute: none names a kind of traffic (but as a default) or
    compares the scenario's kind (a third driver must need no change here). Checked against a planted question."""
    import re
    from pathlib import Path

    text = (Path(__file__).resolve().parent.parent / "sim" / module).read_text()
    asks = re.findall(ASKS_KIND, text)
    assert asks == [], asks


def test_the_kind_check_finds_a_planted_question() -> None:
    import re

    planted = 'if sc.kind == "conversation":\n    cv = s.conversations\nif s.load != "workflow": pass'
    assert len(re.findall(ASKS_KIND, planted)) == 5


def test_every_scenario_kind_has_a_driver() -> None:
    """One registration: the kinds a scenario accepts are the registered drivers."""
    from sim.drivers import DRIVERS
    from sim.load.scenario import KINDS

    assert set(KINDS) == set(DRIVERS)


@pytest.mark.parametrize(("wing", "never"), [
    ("platform", ("sim.load", "sim.run", "sim.results", "sim.commands", "sim.checks", "sim.cli")),
    ("load", ("sim.drivers", "sim.run", "sim.results", "sim.commands", "sim.checks", "sim.cli")),
    ("drivers", ("sim.run", "sim.results", "sim.commands", "sim.checks", "sim.cli", "locust", "gevent")),
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


def _module_names() -> dict[str, tuple[list[str] | None, set[str], set[str]]]:
    """module → (its __all__, the public names it defines at top level, the names it imports)."""
    import ast
    from pathlib import Path

    root = Path(__file__).resolve().parent.parent
    out = {}
    for path in sorted((root / "sim").rglob("*.py")):
        name = ".".join(path.relative_to(root).with_suffix("").parts).removesuffix(".__init__")
        names: list[str] | None = None
        defined: set[str] = set()
        imported: set[str] = set()
        for node in ast.parse(path.read_text()).body:
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                defined.add(node.name)
            elif isinstance(node, (ast.Assign, ast.AnnAssign)):
                for target in node.targets if isinstance(node, ast.Assign) else [node.target]:
                    for t in target.elts if isinstance(target, ast.Tuple) else [target]:
                        if isinstance(t, ast.Name) and t.id == "__all__":
                            names = [e.value for e in node.value.elts]  # type: ignore[union-attr,attr-defined]
                        elif isinstance(t, ast.Name):
                            defined.add(t.id)
            elif isinstance(node, (ast.Import, ast.ImportFrom)):
                imported |= {a.asname or a.name for a in node.names}
        public = {d for d in defined if not d.startswith("_") or (d.startswith("__") and d.endswith("__"))}
        out[name] = (names, public, imported)
    return out


def test_every_module_exports_exactly_its_public_names() -> None:
    """A module's __all__ is what it defines without a leading underscore (plus what it re-exports on purpose):
    nothing public is left out, nothing listed is missing."""
    problems = []
    for name, (names, defined, imported) in _module_names().items():
        if names is None:
            if defined:
                problems.append(f"{name}: no __all__ for {sorted(defined)}")
            continue
        if defined - set(names) or set(names) - defined - imported:
            problems.append(f"{name}: not exported {sorted(defined - set(names))}, "
                            f"exported but not there {sorted(set(names) - defined - imported)}")
    assert problems == []


def test_no_module_imports_a_name_another_does_not_export() -> None:
    """`from sim.x import y` only for y in sim.x.__all__ (or a submodule y), in sim/, tests/ and bench/."""
    import ast
    from pathlib import Path

    mods = _module_names()
    root = Path(__file__).resolve().parent.parent
    problems = []
    for base in ("sim", "tests", "bench"):
        for path in sorted((root / base).rglob("*.py")):
            for node in ast.walk(ast.parse(path.read_text())):
                if isinstance(node, ast.ImportFrom) and node.module in mods:
                    exported = mods[node.module][0] or []
                    problems += [f"{path.relative_to(root)}: {node.module}.{a.name}" for a in node.names
                                 if a.name not in exported and f"{node.module}.{a.name}" not in mods]
    assert problems == []


def test_flowsim_imports_structlog_and_httpx_without_their_extras_and_rich_still_works() -> None:
    """``import sim`` brings structlog and httpx without rich, click or pygments (their optional extras, ~0.15 s
    per process on the way to a run's first launch); both still work, and rich imports normally afterwards."""
    import subprocess
    import sys

    code = ("import sys, sim, structlog, httpx; extras = [m for m in ('rich', 'click', 'pygments') if m in sys.modules]; "
            "structlog.get_logger().bind(a=1); httpx.Client().close(); import rich.console; "
            "print(extras, type(sys.modules['rich']).__name__)")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0 and r.stdout.strip() == "[] module", r.stdout + r.stderr
