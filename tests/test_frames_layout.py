"""pyclone mirrors the head of CPython's private _PyInterpreterFrame (3.11+)
to release what a child's abandoned frames hold (src/pyclone/frames.c).
Check the mirror against CPython's own internal header."""
import json
import os
import subprocess
import sys
import sysconfig

import pytest

import pyclone


@pytest.mark.skipif(sys.version_info < (3, 11), reason="frames are heap objects before 3.11")
def test_mirrored_frame_layout_matches_cpython(tmp_path):
    include = sysconfig.get_paths()["include"]
    if not os.path.exists(os.path.join(include, "internal", "pycore_frame.h")):
        pytest.skip("this CPython installation ships no internal headers")
    src = os.path.join(os.path.dirname(__file__), "helpers", "frame_layout.c")
    exe = tmp_path / "frame_layout"
    cc = (sysconfig.get_config_var("CC") or "cc").split()[0]
    subprocess.run([cc, f"-I{include}", "-o", str(exe), src], check=True)
    theirs = json.loads(subprocess.run([str(exe)], capture_output=True, text=True,
                                       check=True).stdout)
    assert pyclone._clone.frame_layout() == theirs
