"""The house rules that keep the package easy to change, checked on the source itself.

The layering (who may import whom) is import-linter's job (``lint-imports`` in ``make test``,
contracts in pyproject.toml); these tests hold what it cannot see.
"""

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "flops_fit"
MODULES = sorted(p for p in PACKAGE.rglob("*.py") if "examples" not in p.parts)
HEAVY = {"torch", "plotly", "scipy", "ipywidgets", "mlflow", "wandb"}
# the one place each heavy dependency is imported
HEAVY_HOMES = {PACKAGE / "_deps.py", PACKAGE / "widgets" / "_deps.py"}


def _name(path: Path) -> str:
    return str(path.relative_to(PACKAGE.parent))


def _imports_below_top(tree: ast.Module) -> list[ast.stmt]:
    """Import statements inside functions and classes (not those at module level or under TYPE_CHECKING)."""
    found: dict[int, ast.stmt] = {}
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            found.update({id(n): n for n in ast.walk(node) if isinstance(n, (ast.Import, ast.ImportFrom))})
    return sorted(found.values(), key=lambda n: n.lineno)


def _is_package_import(node: ast.stmt) -> bool:
    if isinstance(node, ast.ImportFrom):
        return node.level > 0 or (node.module or "").split(".")[0] == "flops_fit"
    return any(alias.name.split(".")[0] == "flops_fit" for alias in node.names)


def _roots(node: ast.stmt) -> set[str]:
    if isinstance(node, ast.ImportFrom):
        return {(node.module or "").split(".")[0]} if node.level == 0 else set()
    return {alias.name.split(".")[0] for alias in node.names}


@pytest.mark.parametrize("path", MODULES, ids=_name)
def test_package_imports_sit_at_the_top(path):
    tree = ast.parse(path.read_text())
    hidden = [f"line {n.lineno}" for n in _imports_below_top(tree) if _is_package_import(n)]
    assert not hidden, f"{_name(path)} imports flops_fit modules inside functions ({', '.join(hidden)}): " \
                       "import them at the top, or move the code to the layer that may import them"


@pytest.mark.parametrize("path", MODULES, ids=_name)
def test_heavy_dependencies_come_through_one_place(path):
    if path in HEAVY_HOMES:
        return
    tree = ast.parse(path.read_text())
    nested = {id(n) for n in ast.walk(tree) if isinstance(n, ast.If) and "TYPE_CHECKING" in ast.unparse(n.test)
              for n in ast.walk(n)}
    direct = [f"line {n.lineno}" for n in ast.walk(tree) if isinstance(n, (ast.Import, ast.ImportFrom))
              and _roots(n) & HEAVY and id(n) not in nested]
    assert not direct, f"{_name(path)} imports torch/plotly/scipy/ipywidgets itself ({', '.join(direct)}); " \
                       "use flops_fit._deps (or flops_fit.widgets._deps)"


@pytest.mark.parametrize("path", sorted(PACKAGE.rglob("*.py")), ids=_name)
def test_no_module_is_over_400_lines(path):
    lines = len(path.read_text().splitlines())
    assert lines <= 400, f"{_name(path)} has {lines} lines: split it by job"
