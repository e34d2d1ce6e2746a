"""No test module imports another test module (nor a benchmark one): what tests share is a fixture
in a conftest.py, which pytest injects, or lives in the package (wan_lora_dagster.testing,
wan_lora_dagster.project_builder). An import of a test module depends on which folder pytest put
first on sys.path: `from conftest import X` found another folder's conftest.py."""

import ast
from pathlib import Path

import pytest

pytestmark = pytest.mark.fast  # the unit tier: make test-fast

REPOSITORY = Path(__file__).resolve().parents[1]
TESTS = REPOSITORY / "tests"


def names_of_test_modules() -> set[str]:
    """Every name a module under tests/ can be imported by: `tests...` and, from the folders
    pytest puts on sys.path, each file's own name (`conftest`, `musubi_fixtures`)."""
    return {"tests", *(path.stem for path in TESTS.rglob("*.py"))}


def imported_modules(path: Path) -> list[tuple[int, str]]:
    """(line, module) of each import in the file; a relative import as its dots."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            found.append((node.lineno, "." * node.level + (node.module or "")))
    return found


def test_no_test_or_benchmark_module_imports_a_test_module():
    own = names_of_test_modules()
    files = sorted([*TESTS.rglob("*.py"), *(REPOSITORY / "benchmarks").rglob("*.py")])
    wrong = [
        f"{path.relative_to(REPOSITORY)}:{line}: imports {module}"
        for path in files
        for line, module in imported_modules(path)
        if module.startswith(".") or module.split(".")[0] in own
    ]
    assert wrong == [], "\n".join(wrong)


def test_the_check_finds_each_way_of_importing_a_test_module(tmp_path):
    path = tmp_path / "test_example.py"
    path.write_text(
        "from conftest import STUDIO\nimport tests.processes\nfrom . import helpers\n"
        "from tests.e2e.conftest import run_json\nfrom wan_lora_dagster.testing import team\n"
    )
    own = names_of_test_modules()
    found = [module for _, module in imported_modules(path) if module.split(".")[0] in own]
    found += [module for _, module in imported_modules(path) if module.startswith(".")]
    assert found == ["conftest", "tests.processes", "tests.e2e.conftest", "."]
