"""The product code does not import the test stack: local_stack (real Kafka runner, emulator) is for
tests and `./deploy.sh --local` only, started as separate processes, never imported."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

from tests.fixtures.tools import REPO_ROOT

PRODUCT = ("messaging_lib", "feed", "actions", "consumer", "deploy")
TEST_STACK = "local_stack"


def _imported_modules(tree: ast.AST) -> Iterator[str]:
    """Every absolute module name an import statement in tree names (relative imports stay inside
    their package, so they cannot reach the test stack)."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            yield node.module


def _product_files() -> list[Path]:
    return sorted(path for package in PRODUCT if (REPO_ROOT / package).is_dir()
                  for path in (REPO_ROOT / package).rglob("*.py"))


def test_no_product_module_imports_local_stack() -> None:
    files = _product_files()
    assert {path.relative_to(REPO_ROOT).parts[0] for path in files} >= {"messaging_lib", "actions", "consumer",
                                                                         "deploy"}
    offenders = [f"{path.relative_to(REPO_ROOT)}: {module}" for path in files
                 for module in _imported_modules(ast.parse(path.read_text(), str(path)))
                 if module == TEST_STACK or module.startswith(f"{TEST_STACK}.")]
    assert offenders == []


def test_the_check_sees_an_import_of_the_test_stack() -> None:
    tree = ast.parse("import local_stack.kafka\nfrom local_stack import emulator\nfrom . import local_stack\n"
                     "def f():\n    from local_stack.kafka import free_port\n")
    assert list(_imported_modules(tree)) == ["local_stack.kafka", "local_stack", "local_stack.kafka"]
