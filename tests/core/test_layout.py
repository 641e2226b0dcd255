"""tests/ mirrors app/: the tests of app/<package> live in tests/<package>, every package of app/
has its folder, and every folder of tests/ is a package's, or one of the few that are not
(CROSS_CUTTING). tests/README.md says which is which."""

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

# Folders of tests/ with no package of app/ behind them.
CROSS_CUTTING = {
    "ops": "Parley as deployed: real processes and workers, signals, the CLI (app/cli.py)",
    "support": "what the tests are built from; no tests",
}


def packages() -> set[str]:
    """The folders of app/ with Python in them (app/guardrails is a namespace package)."""
    return {path.parent.name for path in (ROOT / "app").glob("*/*.py")}


def folders_of_tests() -> set[str]:
    return {path.parent.name for path in (ROOT / "tests").glob("*/__init__.py")}


def test_every_package_has_its_tests_folder() -> None:
    missing = sorted(packages() - folders_of_tests())
    assert not missing, f"tests/<package> missing for: {missing}"


def test_every_tests_folder_has_its_package() -> None:
    orphans = sorted(folders_of_tests() - packages() - set(CROSS_CUTTING))
    assert not orphans, f"tests folders with no app package (move their tests): {orphans}"


def test_every_folder_has_tests_but_support() -> None:
    empty = sorted(
        folder
        for folder in folders_of_tests() - {"support"}
        if not list((ROOT / "tests" / folder).glob("test_*.py"))
    )
    assert not empty, f"folders without tests: {empty}"


def test_the_suites_conftest_holds_only_fixtures() -> None:
    """Helpers go to tests/support, where any test imports them from."""
    tree = ast.parse((ROOT / "tests" / "conftest.py").read_text())
    helpers = [
        node.name
        for node in tree.body
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef)
        and not any("fixture" in ast.unparse(decorator) for decorator in node.decorator_list)
        and not node.name.startswith("pytest_")
    ]
    assert not helpers, f"move these from tests/conftest.py to tests/support: {helpers}"
