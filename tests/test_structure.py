"""House rules that a reader can check by eye but a suite should keep: no module imports a
private name (leading underscore) from another package of ``ghuda``."""

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src"


def package_of(module: str, src: Path = SRC) -> str:
    """The package a dotted module name lives in (a package is its own package)."""
    path = src / module.replace(".", "/")
    return module if path.is_dir() else module.rpartition(".")[0]


def cross_package_private_imports(src: Path = SRC) -> list[str]:
    """'file: module.name' for every ``from ghuda.x import _name`` whose module lies in
    another package than the importing file."""
    found = []
    for path in sorted(src.rglob("*.py")):
        module = ".".join(path.relative_to(src).with_suffix("").parts)
        own = package_of(module.removesuffix(".__init__"), src)
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if not (isinstance(node, ast.ImportFrom) and node.module
                    and node.module.startswith("ghuda")):
                continue
            if package_of(node.module, src) == own:
                continue
            found += [f"{path.relative_to(src)}: {node.module}.{alias.name}"
                      for alias in node.names if alias.name.startswith("_")]
    return found


def test_no_private_name_is_imported_across_packages():
    assert cross_package_private_imports() == []


def test_the_check_sees_a_private_import_across_packages(tmp_path):
    pkg = tmp_path / "ghuda"
    for sub in ("a", "b"):
        (pkg / sub).mkdir(parents=True)
        (pkg / sub / "__init__.py").write_text("")
    (pkg / "a" / "m.py").write_text("def _hidden():\n    pass\n")
    (pkg / "a" / "same.py").write_text("from ghuda.a.m import _hidden\n")
    (pkg / "b" / "other.py").write_text("from ghuda.a.m import _hidden\n")
    assert cross_package_private_imports(tmp_path) == ["ghuda/b/other.py: ghuda.a.m._hidden"]
