"""The layer contract has no holes: import-linter (in .ci/run) checks the order of the layers
in .importlinter; these tests check what it cannot see.

- Every module of an app is in some layer, so a new module cannot slip past the contract.
- No function imports another app's module: an import hidden in a function is how a cycle
  is dodged, and it would also hide a dependency from the graph a newcomer reads.
"""

from __future__ import annotations

import ast
import configparser
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CONFIG = configparser.ConfigParser()
CONFIG.read(ROOT / ".importlinter")
APPS = CONFIG["importlinter"]["root_packages"].split()


def layered_modules() -> set[str]:
    layers = CONFIG["importlinter:contract:layers"]["layers"]
    return {name.strip() for name in re.split(r"[:|\n]", layers) if name.strip()}


def app_modules() -> dict[str, Path]:
    modules = {}
    for app in APPS:
        for path in sorted((ROOT / app).rglob("*.py")):
            parts = path.relative_to(ROOT).with_suffix("").parts
            if "migrations" in parts or parts[-1] in ("apps", "__init__") and len(parts) <= 3:
                continue
            modules[".".join(parts if parts[-1] != "__init__" else parts[:-1])] = path
    return modules


def covered(module: str, layered: set[str]) -> bool:
    parts = module.split(".")
    return any(".".join(parts[:i]) in layered for i in range(1, len(parts) + 1))


def test_every_module_of_an_app_is_in_a_layer():
    layered = layered_modules()
    missing = [module for module in app_modules() if not covered(module, layered)]
    assert missing == [], f"add these to a layer in .importlinter: {missing}"


def test_the_contract_names_only_modules_that_exist():
    modules = set(app_modules()) | {f"{app}" for app in APPS}
    stale = [name for name in layered_modules() if not any(m == name or m.startswith(name + ".") for m in modules)]
    assert stale == []


def imports_inside_functions(path: Path) -> list[tuple[int, str]]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found = []
    for func in ast.walk(tree):
        if not isinstance(func, ast.FunctionDef | ast.AsyncFunctionDef):
            continue
        for node in ast.walk(func):
            if isinstance(node, ast.Import):
                found += [(node.lineno, alias.name) for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                found.append((node.lineno, node.module))
    return found


def test_no_function_imports_another_app():
    hidden = []
    for module, path in app_modules().items():
        own_app = module.split(".")[0]
        for line, imported in imports_inside_functions(path):
            target = imported.split(".")[0]
            if target in APPS and target != own_app:
                hidden.append(f"{path.relative_to(ROOT)}:{line} imports {imported}")
    assert hidden == [], "move these imports to the top of the module (or the code to its layer)"


def test_the_checker_sees_a_hidden_import(tmp_path):
    sample = tmp_path / "sample.py"
    sample.write_text("def f():\n    from payments.services import refund_request\n    return refund_request\n")
    assert imports_inside_functions(sample) == [(2, "payments.services")]


def test_import_linter_keeps_the_contract():
    lint_imports = Path(sys.executable).parent / "lint-imports"
    result = subprocess.run([str(lint_imports), "--no-cache"], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout[-3000:]
    assert "1 kept, 0 broken" in result.stdout
