"""The house rules of the package layout, checked: the import-linter contracts hold, no
module is over 500 lines, no class over 150, and every package folder says what it owns."""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "newsletter"
MODULE_LINES = 500
CLASS_LINES = 150
LINT_IMPORTS = Path(sys.executable).parent / "lint-imports"


def oversized(source: str, name: str, module_lines: int = MODULE_LINES) -> list[str]:
    """What in one module breaks the size rules, one line each (empty when nothing)."""
    found = []
    lines = source.count("\n") + (0 if source.endswith("\n") or not source else 1)
    if lines > module_lines:
        found.append(f"{name}: {lines} lines (at most {module_lines})")
    for node in ast.walk(ast.parse(source, name)):
        if isinstance(node, ast.ClassDef):
            length = node.end_lineno - node.lineno + 1
            if length > CLASS_LINES:
                limit = f"(at most {CLASS_LINES})"
                found.append(f"{name}: class {node.name} has {length} lines {limit}")
    return found


def lint_imports(cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(LINT_IMPORTS), "--no-cache"],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_the_import_contracts_hold():
    result = lint_imports(ROOT)
    assert result.returncode == 0, result.stdout + result.stderr
    assert " 0 broken" in result.stdout and "BROKEN" not in result.stdout


def test_a_broken_layer_contract_fails_the_linter(tmp_path):
    toy = tmp_path / "toy"
    toy.mkdir()
    (toy / "__init__.py").write_text('"""A toy package."""\n')
    (toy / "high.py").write_text("VALUE = 1\n")
    (toy / "low.py").write_text("from toy.high import VALUE\n")  # points up: forbidden
    (tmp_path / ".importlinter").write_text(
        "[importlinter]\nroot_package = toy\n\n"
        "[importlinter:contract:layers]\nname = toy layers\ntype = layers\n"
        "layers =\n    toy.high\n    toy.low\n"
    )
    env = {**os.environ, "PYTHONPATH": str(tmp_path)}
    result = lint_imports(tmp_path, env)
    assert result.returncode != 0
    assert "BROKEN" in result.stdout and "toy.low -> toy.high" in result.stdout


def test_no_module_or_class_is_oversized():
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        name = path.relative_to(ROOT).as_posix()
        found += oversized(path.read_text(encoding="utf-8"), name)
    assert found == []


def test_the_size_check_flags_what_is_too_big():
    small_class = "class Small:\n" + "    a = 1\n" * 10
    assert oversized(small_class, "ok.py") == []
    big_class = "class Big:\n" + "    a = 1\n" * CLASS_LINES
    assert oversized(big_class, "big.py") == [
        f"big.py: class Big has {CLASS_LINES + 1} lines (at most {CLASS_LINES})"
    ]
    nested = "def outer():\n    class Inner:\n" + "        b = 2\n" * CLASS_LINES
    assert "class Inner" in oversized(nested, "nested.py")[0]
    long_module = "x = 1\n" * (MODULE_LINES + 1)
    assert oversized(long_module, "long.py") == [
        f"long.py: {MODULE_LINES + 1} lines (at most {MODULE_LINES})"
    ]
    assert oversized("x = 1\n" * MODULE_LINES, "edge.py") == []


def test_every_package_folder_says_what_it_owns():
    folders = [PACKAGE, *(p.parent for p in PACKAGE.rglob("__init__.py"))]
    missing = []
    for folder in sorted(set(folders)):
        init = folder / "__init__.py"
        tree = ast.parse(init.read_text(encoding="utf-8")) if init.exists() else None
        if tree is None or not (ast.get_docstring(tree) or "").strip():
            missing.append(str(folder.relative_to(ROOT)))
    assert missing == []


def test_every_folder_with_python_is_a_package():
    # A folder of modules without __init__.py would escape the docstring rule above.
    loose = sorted(
        str(path.parent.relative_to(ROOT))
        for path in PACKAGE.rglob("*.py")
        if not (path.parent / "__init__.py").exists()
    )
    assert loose == []
