"""Guard the repository layout: no stdlib-shadowing packages, no Ray in the core library."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LIBRARY = ROOT / "platform" / "vjepa2"


def test_no_top_level_package_shadows_stdlib():
    shadowing = [
        p.name
        for p in ROOT.iterdir()
        if p.is_dir() and (p / "__init__.py").exists() and p.name in sys.stdlib_module_names
    ]
    assert not shadowing, f"top-level packages named like stdlib modules: {shadowing}"


def test_platform_source_root_is_not_a_package():
    assert not (ROOT / "platform" / "__init__.py").exists()
    assert (LIBRARY / "__init__.py").exists()


def _imported_roots(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    roots = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            roots.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            roots.add(node.module.split(".")[0])
    return roots


def test_core_library_never_imports_ray():
    offenders = [
        str(p.relative_to(ROOT)) for p in LIBRARY.rglob("*.py") if "ray" in _imported_roots(p)
    ]
    assert not offenders, f"platform/vjepa2 must not import ray: {offenders}"


def test_import_vjepa2_does_not_load_ray():
    import subprocess

    code = "import sys, vjepa2, vjepa2.config, vjepa2.train.local; print('ray' in sys.modules)"
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT
    )
    assert out.stdout.strip() == "False"
