"""The programs of ../shared/seeds, reproduced with pyclone.

Where a seed uses CLONE_VM without CLONE_VFORK (a concurrent light-weight
process), the variant here adds CLONE_VFORK (borrowed mode); the concurrent
originals belong to thread mode."""
import os
import signal
import time

import pytest

import pyclone
from conftest import reap

P = pyclone


def test_bernard_listing_1_fork():
    """Parent opens a file and sets a variable; the forked child changes the
    variable and closes the file; the parent sees neither change."""
    state = {"variable": 9}
    fd = os.open("/dev/null", os.O_RDWR)
    try:
        def child():
            state["variable"] = 42
            os.close(fd)
        pid = P.clone(child, signal.SIGCHLD)
        assert reap(pid) == 0
        assert state["variable"] == 9
        assert os.write(fd, b"c") == 1             # still open in the parent
    finally:
        os.close(fd)


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


def test_linus_start_thread_example(capfd):
    """Linus' example: the child gets the fd as its argument, sets the shared
    variable to 5 and closes the fd; the mother sees both."""
    show_same_vm = {"v": 0}

    def cloned_process_starts_here(data):
        print(f"child:\t got argument {data} as fd")
        show_same_vm["v"] = 5
        print(f"child:\t vm = {show_same_vm['v']}")
        os.close(data)

    fd = os.open("/dev/null", os.O_RDWR)
    print(f"mother:\t fd = {fd}")
    show_same_vm["v"] = 10
    print(f"mother:\t vm = {show_same_vm['v']}")
    flags = P.CLONE_VM | P.CLONE_FS | P.CLONE_FILES | P.CLONE_SIGHAND | P.CLONE_VFORK | signal.SIGCHLD
    pid = P.clone(cloned_process_starts_here, flags, 16384, args=(fd,))
    print(f"mother:\t vm = {show_same_vm['v']}")
    try:
        os.write(fd, b"c")
    except OSError:
        print("mother:\t child closed our file descriptor")
    assert reap(pid) == 0
    assert capfd.readouterr().out == (
        f"mother:\t fd = {fd}\nmother:\t vm = 10\nchild:\t got argument {fd} as fd\n"
        "child:\t vm = 5\nmother:\t vm = 5\nmother:\t child closed our file descriptor\n")


@pytest.mark.parametrize("share_files", [True, False])
def test_slides_lwp_thread_function(share_files, capfd):
    """lwp-slides "Create your own LWP" (64 kB stack) and "A Slight Change to
    the Code" (without CLONE_FILES the parent's fd survives)."""
    def thread_function(argument):
        print("child thread entering")
        os.close(argument)
        print("child thread exiting")
        return 0

    fd = os.open("/dev/null", os.O_RDWR)
    print("Creating child thread")
    flags = signal.SIGCHLD | P.CLONE_FS | P.CLONE_SIGHAND | P.CLONE_VM | P.CLONE_VFORK
    if share_files:
        flags |= P.CLONE_FILES
    pid = P.clone(thread_function, flags, 1024 * 64, args=(fd,))
    assert reap(pid, 0) == 0                       # plain waitpid, as the seed
    try:
        os.write(fd, b"c")
        closed = False
        os.close(fd)
    except OSError:
        print("Parent:\t child closed our file descriptor")
        closed = True
    assert closed == share_files
    out = capfd.readouterr().out
    assert out.startswith("Creating child thread\nchild thread entering\nchild thread exiting\n")
    assert ("Parent:\t child closed our file descriptor" in out) == share_files


@pytest.mark.parametrize("vm", [True, False])
def test_slides_clone_vm_buffer(vm, capfd):
    """lwp-slides "Another Example: CLONE_VM": the child copies a string into
    the parent's buffer; the parent sees it only with CLONE_VM."""
    buf = bytearray(b"hello from parent")

    def child_func(arg):
        print(f'Child sees buf = "{arg.decode()}"')
        arg[:] = b"hello from child"
        return 0
    flags = (P.CLONE_VM | P.CLONE_VFORK if vm else 0) | signal.SIGCHLD
    pid = P.clone(child_func, flags, 65536, args=(buf,))
    _, status = os.wait()
    assert _ == pid
    print(f'Child exited with status {status}. buf = "{buf.decode()}"')
    expect = "hello from child" if vm else "hello from parent"
    assert capfd.readouterr().out == (
        'Child sees buf = "hello from parent"\n'
        f'Child exited with status 0. buf = "{expect}"\n')
