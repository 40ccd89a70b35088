"""The layering rules of the package, checked on its source: ``core`` depends on nothing of the package, and the
models reach the data only through ``core``'s keys and conventions."""

from __future__ import annotations

import ast
from pathlib import Path
from typing import Iterator, Tuple

import nero_nerfstudio

PACKAGE = Path(nero_nerfstudio.__file__).resolve().parent


def package_imports(path: Path) -> Iterator[Tuple[int, str]]:
    """``(line, module)`` of every import of a ``nero_nerfstudio`` module in ``path`` (also inside functions)."""
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module]
        elif isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        else:
            continue
        for name in names:
            if name.split(".")[0] == "nero_nerfstudio":
                yield node.lineno, name


def offending(folder: str, allowed_prefix: Tuple[str, ...]) -> list:
    return [
        f"{path.relative_to(PACKAGE)}:{line} imports {name}"
        for path in sorted((PACKAGE / folder).rglob("*.py"))
        for line, name in package_imports(path)
        if not name.startswith(allowed_prefix)
    ]


def test_core_imports_nothing_else_of_the_package():
    assert offending("core", ("nero_nerfstudio.core",)) == []


def test_models_import_nothing_from_data():
    bad = [entry for entry in offending("models", ("nero_nerfstudio.core",)) if "nero_nerfstudio.data" in entry]
    assert bad == []


def test_the_import_checker_sees_imports_inside_functions(tmp_path):
    source = tmp_path / "module.py"
    source.write_text("def f():\n    from nero_nerfstudio.data.errors import X\n")
    assert list(package_imports(source)) == [(2, "nero_nerfstudio.data.errors")]
