"""`import pyclone` loads only what clone() needs: a tool that imports it for
one call pays a few milliseconds, not asyncio's or pickle's import.  (The
time itself is measured by benchmarks/import_cost.py, not asserted here.)"""
import subprocess
import sys

import pytest

#: Modules that cost milliseconds each and that clone() does not need.
HEAVY = ["asyncio", "ssl", "typing", "enum", "signal", "threading", "pickle", "traceback",
         "re", "select", "selectors", "subprocess", "inspect", "queue", "mmap", "weakref",
         "collections", "functools", "struct", "resource", "operator"]


def imported_by(code):
    """Names of the modules ``code`` imports beyond a bare interpreter's."""
    def modules(source):
        out = subprocess.run([sys.executable, "-X", "importtime", "-c", source],
                             capture_output=True, text=True, check=True, timeout=60)
        names = set()
        for line in out.stderr.splitlines():
            if line.startswith("import time:") and "|" in line:
                names.add(line.rsplit("|", 1)[1].strip())
        assert names, out.stderr
        return names
    return modules(code) - modules("pass")


def test_import_pyclone_loads_nothing_heavy():
    loaded = imported_by("import pyclone")
    assert "pyclone._core" in loaded
    assert sorted(set(HEAVY) & loaded) == []


def test_clone_itself_loads_nothing_heavy():
    loaded = imported_by("import os, pyclone; os.waitpid(pyclone.clone(lambda: 0), 0)")
    assert sorted(set(HEAVY) & loaded) == []


@pytest.mark.parametrize("name, needs", [
    ("Child", "pyclone.child"), ("Queue", "queue"), ("Semaphore", "mmap"),
    ("clone3", "pyclone._clone3"), ("CLONE_VM", "enum"), ("CloneFlags", "enum"),
])
def test_the_rest_is_loaded_at_first_use(name, needs):
    assert needs in imported_by(f"import pyclone; pyclone.{name}")


def test_lazy_names_are_the_real_objects():
    import enum

    import pyclone
    from pyclone import Child, CloneFlags
    from pyclone.child import Child as RealChild
    assert Child is RealChild
    assert issubclass(CloneFlags, enum.IntFlag)
    assert pyclone.CLONE_VM is CloneFlags.CLONE_VM
    assert set(pyclone.__all__) <= set(dir(pyclone))
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        pyclone.nope  # noqa: B018 - the lookup is the test


def test_a_child_round_trip_loads_no_asyncio_typing_or_enum():
    loaded = imported_by("import pyclone\n"
                         "with pyclone.Child(lambda: 0).start() as c: pass\n"
                         "assert c.exitcode == 0")
    assert "pickle" in loaded          # the result channel needs it (and, on 3.9, re)
    beyond_pickle = loaded - imported_by("import pickle")
    assert sorted({"asyncio", "ssl", "typing", "enum", "signal", "traceback"}
                  & beyond_pickle) == []
