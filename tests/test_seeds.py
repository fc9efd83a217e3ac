"""The seed programs the project grew from (Linus Torvalds' clone example,
Joey Bernard's fork and clone listings, the light-weight-process slides),
run through pyclone: the demo's own versions (python -m pyclone demo), with
their output checked, and the variants the demo does not show."""
import os
import signal

import pytest

import pyclone
from pyclone import demo
from conftest import reap

P = pyclone


def test_linus_start_thread_example(capfd):
    """The child gets the fd as its argument, sets the shared variable to 5
    and closes the fd; the mother sees both (thread mode, 16 KiB stack)."""
    demo.seed_linus()
    out = capfd.readouterr().out.splitlines()
    fd = out[1].split("= ")[1]
    assert out[1:] == [f"mother:\t fd = {fd}", "mother:\t vm = 10",
                       f"child:\t got argument {fd} as fd", "child:\t vm = 5",
                       "mother:\t vm = 5", "mother:\t child closed our file descriptor", ""]


def test_bernard_listing_1_fork(capfd):
    """The forked child changes a variable and closes a file: the parent
    sees neither change."""
    demo.seed_bernard()
    out = capfd.readouterr().out
    assert "child:\t variable = 42, file closed" in out
    assert "parent:\t variable = 9, file still open" in out


def test_bernard_listing_2_clone_vm_files():
    """The same child with CLONE_VM|CLONE_FILES: both changes are seen."""
    state = {"variable": 9}
    fd = os.open("/dev/null", os.O_RDWR)

    def child():
        state["variable"] = 42
        os.close(fd)
    pid = P.clone(child, P.CLONE_VM | P.CLONE_FILES | P.CLONE_VFORK | signal.SIGCHLD, 16384)
    assert reap(pid) == 0
    assert state["variable"] == 42
    with pytest.raises(OSError):
        os.write(fd, b"c")


def test_slides_lwp_thread_function(capfd):
    """"Create your own LWP" (a 64 kB stack) and "A Slight Change to the
    Code": with CLONE_FILES the child closes the parent's fd, without it
    the parent's fd survives."""
    demo.seed_slides()
    out = capfd.readouterr().out
    with_files, without_files = out.split("Creating child thread (without CLONE_FILES)")
    for part in (with_files, without_files):
        assert "child thread entering\nchild thread exiting\n" in part
    assert "Parent:\t child closed our file descriptor" in with_files
    assert "Parent:\t our file descriptor is still open" in without_files


def test_slides_clone_vm_buffer(capfd):
    """"Another Example: CLONE_VM": the child copies a string into the
    parent's buffer; the parent sees it only with CLONE_VM."""
    demo.seed_slides()
    out = capfd.readouterr().out
    assert out.count('Child sees buf = "hello from parent"') == 2
    assert 'Child exited with status 0. buf = "hello from parent"\n' in out
    assert 'Child exited with status 0. buf = "hello from child"   (CLONE_VM)' in out
