"""On a CPython newer than any pyclone was tested on, pyclone builds,
imports and works; it reads none of that interpreter's private frame
structures, so what the frames of an abandoned CLONE_VM child hold stays
allocated (a bounded leak), and it says so once with a RuntimeWarning.

The path is tested by building the C core with PYCLONE_PRETEND_UNTESTED,
which makes this interpreter look newer than the newest one tested."""
import glob
import os
import signal
import shutil
import subprocess
import sys
import sysconfig
import textwrap

import pytest

SRC = os.path.join(os.path.dirname(os.path.abspath(__file__)), os.pardir, "src", "pyclone")

CHILDREN = textwrap.dedent("""
    import gc, os, signal, warnings, weakref
    import pyclone
    assert not pyclone._clone.FRAMES_KNOWN
    class Token: pass
    refs = []
    def leaf():
        token = Token()
        refs.append(weakref.ref(token))
        os._exit(3)
    def nested(n):
        return leaf() if n == 0 else nested(n - 1)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for flags in (pyclone.CLONE_VM | pyclone.CLONE_VFORK, pyclone.CLONE_VM):
            for _ in range(3):
                pid = pyclone.clone(nested, flags | signal.SIGCHLD, args=(10,))
                assert pyclone.waitpid(pid)[1] >> 8 == 3
                pid = pyclone.clone(lambda: 5, flags | signal.SIGCHLD)
                assert pyclone.waitpid(pid)[1] >> 8 == 5
    gc.collect()
    print(len(caught), caught[0].category.__name__, caught[0].message)
    print(sum(r() is not None for r in refs), "of", len(refs), "kept")
""")


@pytest.fixture(scope="module")
def untested_build(tmp_path_factory):
    if not os.path.exists(os.path.join(SRC, "_clonemodule.c")):
        pytest.skip("needs pyclone's source tree beside the tests")
    out = tmp_path_factory.mktemp("untested")
    pkg = out / "pyclone"
    shutil.copytree(SRC, pkg, ignore=shutil.ignore_patterns("*.so", "__pycache__"))
    cc = (sysconfig.get_config_var("CC") or "cc").split()
    ext = sysconfig.get_config_var("EXT_SUFFIX")
    version = {}
    exec(open(os.path.join(SRC, "_version.py")).read(), version)
    subprocess.run(cc + ["-shared", "-fPIC", "-std=gnu11", "-O1", "-DPYCLONE_PRETEND_UNTESTED=1",
                         f'-DPYCLONE_VERSION="{version["__version__"]}"',
                         f"-I{sysconfig.get_paths()['include']}",
                         str(pkg / "_clonemodule.c"), *sorted(glob.glob(str(pkg / "_c" / "*.c"))),
                         "-ldl", "-lm",
                         "-o", str(pkg / f"_clone{ext}")], check=True)
    return out


@pytest.mark.timeout(120)
def test_builds_imports_and_warns_once_with_a_bounded_leak(untested_build):
    env = dict(os.environ, PYTHONPATH=str(untested_build))
    out = subprocess.run([sys.executable, "-c", CHILDREN], env=env, capture_output=True,
                         text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    first, second = out.stdout.splitlines()
    version = f"{sys.version_info[0]}.{sys.version_info[1]}"
    assert first.startswith("1 RuntimeWarning pyclone was not tested on CPython " + version)
    assert "bounded leak" in first
    # Borrowed and thread mode, three abandoned children each: their frames
    # were left alone.
    assert second == "6 of 6 kept"


def test_a_tested_build_releases_the_same_frames():
    """The counterpart: the build under test reads the frames and frees them."""
    import gc
    import weakref
    import pyclone
    assert pyclone._clone.FRAMES_KNOWN
    refs = []

    class Token:
        pass

    def leaf():
        token = Token()
        refs.append(weakref.ref(token))
        os._exit(3)
    pid = pyclone.clone(leaf, pyclone.CLONE_VM | pyclone.CLONE_VFORK | signal.SIGCHLD)
    assert pyclone.waitpid(pid)[1] >> 8 == 3
    gc.collect()
    assert refs[0]() is None
