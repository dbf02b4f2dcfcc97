"""The tree holds together: every document it cites exists, imports point one way, and tests
import their helpers one way."""

from __future__ import annotations

import ast
import re
import subprocess
from collections.abc import Iterable
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
TEXT_SUFFIXES = {".py", ".md", ".toml", ".txt", ".cfg", ".ini", ".html", ".js", ".sh", ".service"}
TEXT_NAMES = {"Makefile"}
# A path-like word ending in .md: README.md, docs/PRIVACY.md, ../BENCHMARKS.md
DOC_REFERENCE = re.compile(r"(?<![\w/.-])((?:\.{1,2}/)?[\w-]+(?:/[\w.-]+)*\.md)\b")

# Lowest first; a package may import only from its own layer's foundation and lower layers.
LAYERS = [
    {"appliance", "config", "errors", "audit", "doctor", "numbers"},
    {"secure", "service"},
    {"media", "models"},
    {"vision"},
    {"effects"},
    {"jobs"},
    {"web"},
    {"cli", "provision"},
    {"__main__"},
]
MD = ".md"  # the examples below spell document names with it, so this file cites none


def project_files(root: Path) -> list[Path]:
    """Files git tracks, and new ones it does not ignore (the tree as it will be committed)."""
    listed = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard"],
                            cwd=root, capture_output=True, text=True, check=True).stdout
    return [root / line for line in sorted(set(listed.splitlines())) if (root / line).is_file()]


def dangling_references(root: Path, files: Iterable[Path]) -> list[str]:
    """``file:line: name`` for each cited .md document that is not in the tree."""
    missing = []
    for path in files:
        if path.suffix not in TEXT_SUFFIXES and path.name not in TEXT_NAMES:
            continue
        for number, line in enumerate(path.read_text(errors="replace").splitlines(), 1):
            for name in DOC_REFERENCE.findall(line):
                if "://" in line and f"/{name}" in line.split("://", 1)[1]:
                    continue  # part of a web address, not a file of ours
                candidates = (path.parent / name, root / name, root / "docs" / name)
                if not any(candidate.is_file() for candidate in candidates):
                    missing.append(f"{path.relative_to(root)}:{number}: {name}")
    return missing


def test_every_document_the_tree_cites_is_in_the_tree() -> None:
    assert dangling_references(ROOT, project_files(ROOT)) == []


def test_a_dangling_reference_is_found(tmp_path: Path) -> None:
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / f"REAL{MD}").write_text(f"See [the other](OTHER{MD}) and REAL{MD}.\n")
    (tmp_path / "code.py").write_text(f'"""Why: see docs/REAL{MD} and GONE{MD} (P1)."""\n')
    (tmp_path / f"links{MD}").write_text(f"https://example.org/x/README{MD} is not ours\n")
    found = dangling_references(tmp_path, sorted(tmp_path.rglob("*.*")))
    assert found == [f"code.py:1: GONE{MD}", f"docs/REAL{MD}:1: OTHER{MD}"]


def _package(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else parts[0]


def _imports(path: Path) -> Iterable[str]:
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            yield node.module
        elif isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)


def upward_imports(root: Path) -> list[str]:
    rank = {name: index for index, layer in enumerate(LAYERS) for name in layer}
    bad = []
    for path in sorted((root / "appliance").rglob("*.py")):
        relative = path.relative_to(root / "appliance")
        own = relative.parts[0] if len(relative.parts) > 1 else relative.stem
        for module in _imports(path):
            if module.split(".")[0] != "appliance":
                continue
            target = _package(module)
            if target == own or (own in rank and rank[own] == 0 and target in LAYERS[0]):
                continue
            if own not in rank or target not in rank or rank[target] >= rank[own]:
                bad.append(f"appliance/{relative}: imports {module}")
    return bad


def test_layers_point_one_way() -> None:
    assert upward_imports(ROOT) == []


def test_an_upward_import_is_found(tmp_path: Path) -> None:
    secure = tmp_path / "appliance" / "secure"
    secure.mkdir(parents=True)
    (secure / "store.py").write_text("from appliance.config import Config\n"
                                     "def f():\n    from appliance.web.api import api\n")
    (tmp_path / "appliance" / "cli.py").write_text("import appliance.web.app\n")
    assert upward_imports(tmp_path) == ["appliance/secure/store.py: imports appliance.web.api"]


def test_no_two_modules_import_each_other() -> None:
    modules = {".".join(p.relative_to(ROOT).with_suffix("").parts): p
               for p in (ROOT / "appliance").rglob("*.py")}
    graph = {name: {m for m in _imports(path) if m in modules} for name, path in modules.items()}
    pairs = sorted({tuple(sorted((a, b))) for a, targets in graph.items() for b in targets
                    if a != b and a in graph.get(b, set())})
    assert pairs == []


def test_tests_import_their_helpers_one_way() -> None:
    """``from tests.helpers.images import ...``, never ``from helpers.images`` or
    ``import media_fixtures``: one spelling, which works under plain pytest too."""
    tests = ROOT / "tests"
    helper_names = {p.stem for p in tests.rglob("*.py") if not p.stem.startswith(("test_", "_"))
                    and p.stem != "conftest"}
    helper_names |= {p.name for p in tests.rglob("*")
                     if p.is_dir() and (p / "__init__.py").exists()}
    other_style = [f"{p.relative_to(ROOT)}: {m}" for p in sorted(tests.rglob("*.py"))
                   for m in _imports(p) if m.split(".")[0] in helper_names]
    assert other_style == []


@pytest.mark.parametrize("module", ["appliance.models.loader", "appliance.models.backend_checks"])
def test_the_service_does_not_import_the_engine_builder(module: str) -> None:
    """Service-time code reads the engine rules from models/engines.py, not the 500-line
    build-time module."""
    import sys

    script = f"import sys, {module}; print('appliance.models.tensorrt_build' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                         cwd=ROOT, check=True).stdout.strip()
    assert out == "False"
