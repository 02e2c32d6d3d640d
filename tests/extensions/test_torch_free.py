"""`ghuda.report` and `ghuda.pipeline` import no module of `ghuda.extensions` that imports
torch (issue 25): the fidelity table and the config check read the extensions' torch-free
metadata (`ghuda.extensions.meta`, each task package's ``defaults``), never the loop."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import ghuda

# imports every module of both packages, then runs the two readers of extension metadata
SCRIPT = r'''
import importlib, json, pkgutil, sys
import ghuda.pipeline, ghuda.report
for pkg in (ghuda.pipeline, ghuda.report):
    for info in pkgutil.iter_modules(pkg.__path__, pkg.__name__ + "."):
        importlib.import_module(info.name)
from ghuda.pipeline.check import check_extension_runs
from ghuda.report.fidelity import extension_fidelity_table
extension_fidelity_table()
config = {"variants": {"gh": {"harmonizer": "gh", "label": "+GH"}},
          "extensions": [{"extension": t, "data": d, "variants": ["gh"], "seeds": [0]}
                         for t, d in (("retrieval", "css_mini"), ("detection", "det_mini"))]}
assert check_extension_runs(config) == 2
print(json.dumps(sorted(m for m in sys.modules if m.startswith("ghuda.extensions"))))
'''
TORCH = {"torch", "torchvision", "torchmetrics"}


def imports_torch(module: str) -> bool:
    """Whether the source of `module` (a ghuda module) has an import of torch or its kin."""
    path = Path(ghuda.__file__).parent.joinpath(*module.split(".")[1:])
    source = path / "__init__.py" if path.is_dir() else path.with_suffix(".py")
    for node in ast.walk(ast.parse(source.read_text())):
        names = ([a.name for a in node.names] if isinstance(node, ast.Import)
                 else [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
        if any(n.split(".")[0] in TORCH for n in names):
            return True
    return False


def test_report_and_pipeline_load_no_extension_module_that_imports_torch():
    out = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True,
                         check=True)
    loaded = json.loads(out.stdout.splitlines()[-1])
    assert "ghuda.extensions.meta" in loaded  # the readers did go through the metadata
    assert [m for m in loaded if imports_torch(m)] == []


def test_the_check_finds_the_heavy_modules():
    assert imports_torch("ghuda.extensions.loop")
    assert imports_torch("ghuda.extensions.retrieval.task")
    assert not imports_torch("ghuda.extensions.meta")
