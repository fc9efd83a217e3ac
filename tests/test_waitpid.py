"""pyclone.waitpid: os.waitpid's semantics and status encoding, defaulting
to WALL, and accepting WCLONE."""
import os
import signal
import time

import pytest

import pyclone
from conftest import BORROWED

P = pyclone


@pytest.mark.filterwarnings("ignore:This process:DeprecationWarning")  # idle hosts
def test_status_encoding_matches_os_waitpid():
    a = P.clone(lambda: 3)
    b = os.fork()
    if b == 0:
        os._exit(3)
    _, sa = P.waitpid(a)
    _, sb = os.waitpid(b, 0)
    assert sa == sb
    assert os.WIFEXITED(sa) and os.WEXITSTATUS(sa) == 3
    assert os.waitstatus_to_exitcode(sa) == 3


def test_signal_status():
    pid = P.clone(lambda: os.kill(os.getpid(), signal.SIGTERM))
    _, status = P.waitpid(pid)
    assert os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGTERM


def test_default_finds_children_with_any_exit_signal():
    pid = P.clone(lambda: 8, 0)             # no exit signal at all
    got, status = P.waitpid()
    assert got == pid and os.waitstatus_to_exitcode(status) == 8


def test_wnohang_returns_zero_while_running():
    pid = P.clone(time.sleep, args=(0.3,))
    assert P.waitpid(pid, P.WALL | os.WNOHANG) == (0, 0)
    assert P.waitpid(pid)[0] == pid


def test_wclone_overflows_os_waitpid_but_not_ours():
    with pytest.raises(OverflowError):
        os.waitpid(-1, P.WCLONE)
    pid = P.clone(lambda: 2, signal.SIGUSR2 and 0)
    assert P.waitpid(pid, P.WCLONE)[0] == pid


def test_no_children_is_child_process_error():
    with pytest.raises(ChildProcessError):
        P.waitpid()


def test_eintr_is_retried_and_signal_handlers_run():
    got = []
    old = signal.signal(signal.SIGALRM, lambda *a: got.append("alarm"))
    try:
        pid = P.clone(time.sleep, BORROWED | 0, args=(0,)) if False else P.clone(time.sleep, args=(0.3,))
        signal.setitimer(signal.ITIMER_REAL, 0.05)
        assert P.waitpid(pid)[0] == pid
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)
    assert got == ["alarm"]


def test_exception_from_a_signal_handler_interrupts_the_wait():
    def handler(*a):
        raise KeyboardInterrupt
    old = signal.signal(signal.SIGALRM, handler)
    pid = P.clone(time.sleep, args=(0.3,))
    try:
        signal.setitimer(signal.ITIMER_REAL, 0.05)
        with pytest.raises(KeyboardInterrupt):
            P.waitpid(pid)
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)
    assert P.waitpid(pid)[0] == pid


# After a borrowed clone returns, its child has let go of our memory but is
# usually still exiting: waitpid() then waits at once instead of first
# looking (which would find nothing and cost a system call).  The hint must
# not change what waitpid returns.

def test_wnohang_still_looks_right_after_a_borrowed_clone():
    pid = P.clone(lambda: 5, BORROWED)
    # Until the child is a zombie, without reaping it.
    os.waitid(os.P_PID, pid, os.WEXITED | os.WNOWAIT)
    got, status = P.waitpid(pid, P.WALL | os.WNOHANG)
    assert got == pid and os.waitstatus_to_exitcode(status) == 5


def test_a_borrowed_child_reaped_elsewhere_leaves_no_stale_hint():
    pid = P.clone(lambda: 6, BORROWED)
    assert os.waitpid(pid, 0)[0] == pid        # the hint is never used
    with pytest.raises(ChildProcessError):
        P.waitpid(pid)
    other = P.clone(lambda: 7)                  # fork mode: looks again
    got, status = P.waitpid(other)
    assert got == other and os.waitstatus_to_exitcode(status) == 7


def test_a_borrowed_child_that_execs_is_waited_for():
    r, w = os.pipe()

    def run_sh():
        os.dup2(r, 0)           # our own fd table: CLONE_FILES is not set
        os.execv("/bin/sh", ["sh", "-c", "read line; exit 9"])

    try:
        pid = P.clone(run_sh, BORROWED)
        assert P.waitpid(pid, P.WALL | os.WNOHANG) == (0, 0)   # it waits on the pipe
        os.write(w, b"go\n")
        got, status = P.waitpid(pid)
    finally:
        os.close(r)
        os.close(w)
    assert got == pid and os.waitstatus_to_exitcode(status) == 9
