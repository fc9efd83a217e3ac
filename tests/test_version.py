"""One version, written once: the C core and the Python package agree, and
a C core from another build is refused at import with what to do."""
import os
import shutil
import subprocess
import sys

import pyclone
from pyclone import _clone

SRC = os.path.join(os.path.dirname(os.path.abspath(__file__)), os.pardir, "src", "pyclone")

def test_c_core_and_package_have_one_version():
    assert _clone.VERSION == pyclone.__version__
    assert pyclone.__version__.count(".") == 2

def test_a_stale_c_core_is_refused_at_import(tmp_path):
    # A copy of the installed package whose Python half says another version.
    pkg = tmp_path / "pyclone"
    shutil.copytree(os.path.dirname(pyclone.__file__), pkg,
                    ignore=shutil.ignore_patterns("__pycache__"))
    (pkg / "_version.py").write_text('__version__ = "0.0.1"\n')
    run = subprocess.run([sys.executable, "-c", "import pyclone"], cwd=tmp_path,
                         capture_output=True, text=True, timeout=60)
    assert run.returncode != 0
    assert "ImportError" in run.stderr and "stale build" in run.stderr
    assert f"is version {_clone.VERSION}" in run.stderr and "0.0.1" in run.stderr
