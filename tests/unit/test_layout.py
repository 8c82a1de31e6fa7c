"""The layout the tests rely on, checked from the source with `ast`: test modules share code only
through `tests.support` (or a conftest, or a helper beside them), and the fakes and the bench stay
apart from the product and the tests."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
TESTS = REPO / "tests"
PRODUCT = ("dispatcher", "providers", "strategies")


def imported_modules(path: Path) -> Iterator[str]:
    """Every absolute module name `path` imports (`import a.b`, `from a.b import c`)."""
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            yield node.module


def allowed_in_tests(importer: Path, module: str) -> bool:
    """tests.support.*, a conftest, or a helper module (not test_*) in the importer's folder."""
    parts = module.split(".")
    if parts[:2] == ["tests", "support"] or parts[-1] == "conftest":
        return True
    folder = importer.parent.relative_to(REPO).parts
    return tuple(parts[:-1]) == folder and not parts[-1].startswith("test_")


def test_no_test_module_imports_another() -> None:
    wrong = [
        f"{path.relative_to(REPO)}: {module}"
        for path in sorted(TESTS.rglob("*.py"))
        for module in imported_modules(path)
        if module.split(".")[0] == "tests" and not allowed_in_tests(path, module)
    ]
    assert wrong == []


def test_the_fakes_and_the_bench_stay_apart() -> None:
    product = [
        path
        for package in PRODUCT
        for path in sorted((REPO / package).rglob("*.py"))
        if (REPO / "dispatcher" / "dev") not in path.parents
    ]
    wrong = [
        f"{path.relative_to(REPO)}: {module}"
        for path in product
        for module in imported_modules(path)
        if module.startswith("dispatcher.dev.fakes")
    ]
    wrong += [
        f"{path.relative_to(REPO)}: {module}"
        for path in sorted((REPO / "bench").rglob("*.py"))
        for module in imported_modules(path)
        if module.split(".")[0] == "tests"
    ]
    assert wrong == []
