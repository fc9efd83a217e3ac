"""pyclone reads CPython's private _PyInterpreterFrame (3.11+) through the
interpreter's internal headers at build time (src/pyclone/frames.c).  Check
that the build saw the same layout as a program compiled against the
headers of the interpreter running the tests (a stale build, or headers of
another patch release with a different layout, would show here)."""
import json
import os
import subprocess
import sys
import sysconfig

import pytest

import pyclone


@pytest.mark.skipif(sys.version_info < (3, 11), reason="frames are heap objects before 3.11")
@pytest.mark.skipif(not pyclone._clone.FRAMES_KNOWN,
                    reason="built for an untested CPython: frames are not read")
def test_frame_layout_matches_the_interpreters_own_header(tmp_path):
    include = sysconfig.get_paths()["include"]
    header = "pycore_interpframe_structs.h" if sys.version_info >= (3, 14) else "pycore_frame.h"
    assert os.path.exists(os.path.join(include, "internal", header)), (
        f"{include}/internal/{header} is missing: pyclone itself was built against it")
    src = os.path.join(os.path.dirname(__file__), "helpers", "frame_layout.c")
    exe = tmp_path / "frame_layout"
    cc = (sysconfig.get_config_var("CC") or "cc").split()[0]
    subprocess.run([cc, f"-I{include}", "-o", str(exe), src], check=True)
    theirs = json.loads(subprocess.run([str(exe)], capture_output=True, text=True,
                                       check=True).stdout)
    assert pyclone._clone.frame_layout() == theirs
