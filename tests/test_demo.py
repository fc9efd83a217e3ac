"""The main job: python -m pyclone demo."""
import subprocess
import sys

import pytest


@pytest.fixture(scope="module")
def demo_output():
    out = subprocess.run([sys.executable, "-m", "pyclone", "demo"], capture_output=True,
                         text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stderr == ""
    return out.stdout


def row(output, name):
    for line in output.splitlines():
        if line.startswith(name + " "):
            return line.split()
    raise AssertionError(f"no row {name!r}")


def test_fork_row_changes_nothing(demo_output):
    cells = row(demo_output, "SIGCHLD (like fork)")
    assert cells[3:9] == ["fork", "private", "open", "private", "private", "default/default"]


def test_clone_files_row_closes_the_parents_fd(demo_output):
    assert row(demo_output, "CLONE_FILES")[2:4] == ["private", "CLOSED"]


def test_clone_fs_row_changes_cwd_and_umask(demo_output):
    assert row(demo_output, "CLONE_FS")[4:6] == ["CHANGED", "CHANGED"]


def test_seed_row_shares_everything(demo_output):
    cells = row(demo_output, "CLONE_VM|FS|FILES|SIGHAND")
    assert cells[2:8] == ["thread", "CHANGED", "CLOSED", "CHANGED", "CHANGED", "default/ignored"]


def test_signal_handler_tables(demo_output):
    # Thread mode without CLONE_SIGHAND: the kernel table stays the parent's.
    assert row(demo_output, "CLONE_VM")[1:3] == ["thread", "CHANGED"]
    assert row(demo_output, "CLONE_VM")[-3] == "default/default"
    assert row(demo_output, "CLONE_VM|CLONE_SIGHAND")[-3] == "default/ignored"
    # Borrowed mode: Python's table (memory) changed, the kernel's did not.
    assert row(demo_output, "CLONE_VM|CLONE_VFORK")[-3] == "child's/default"


def test_namespace_rows(demo_output):
    if "needs CAP_SYS_ADMIN" in demo_output:
        pytest.skip("not privileged enough for namespaces")
    assert row(demo_output, "CLONE_NEWUTS")[-2:] == ["private", row(demo_output, "CLONE_NEWUTS")[-1]]
    assert row(demo_output, "CLONE_NEWPID")[-4] == "1"


def test_seed_outputs(demo_output):
    assert "mother:\t vm = 5\nmother:\t child closed our file descriptor" in demo_output
    assert "Parent:\t child closed our file descriptor" in demo_output
    assert "parent:\t variable = 9, file still open" in demo_output
    assert 'buf = "hello from child"   (CLONE_VM)' in demo_output
