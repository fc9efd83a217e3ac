"""pyclone.terminate() / Child.terminate(): a CLONE_VM child is ended where
it holds and awaits nothing it shares with the parent, whatever it is doing,
and ends as a process killed by SIGTERM; the parent goes on unharmed.  A
fork-mode child simply gets SIGTERM."""
import ctypes
import os
import signal
import sys
import threading
import time

import pytest

import pyclone
from conftest import BORROWED, parent_is_healthy, reap, wait_blocked_in

THREAD = pyclone.CLONE_VM | signal.SIGCHLD


def spin():
    while True:
        pass


def allocate():
    keep = []
    while True:
        keep.append([str(i) for i in range(100)])
        if len(keep) > 50:
            keep.clear()


def sleep():
    time.sleep(60)


def read_forever(fd):
    os.read(fd, 1)


def wait_for_gil_forever():
    """Returns to Python only through the GIL: queued for it most of the
    time while a busy parent thread holds it."""
    while True:
        time.sleep(0)


BODIES = [spin, allocate, sleep, wait_for_gil_forever]


@pytest.fixture
def busy_parent():
    """A parent thread running Python the whole time (the GIL is busy)."""
    stop = threading.Event()
    t = threading.Thread(target=lambda: [sum(range(100)) for _ in iter(stop.is_set, True)])
    t.start()
    yield
    stop.set()
    t.join()


@pytest.mark.parametrize("body", BODIES, ids=lambda f: f.__name__)
def test_thread_mode_child_ends_as_killed_by_sigterm(body, busy_parent):
    for delay in (0, 0.001, 0.02):
        pid = pyclone.clone(body, THREAD)
        time.sleep(delay)
        pyclone.terminate(pid)
        assert reap(pid) == -signal.SIGTERM
    assert parent_is_healthy()


def test_child_blocked_in_read_is_ended_at_once():
    r, w = os.pipe()
    try:
        pid = pyclone.clone(read_forever, THREAD, args=(r,))
        time.sleep(0.05)
        t0 = time.monotonic()
        pyclone.terminate(pid)
        assert reap(pid) == -signal.SIGTERM
        assert time.monotonic() - t0 < 5
    finally:
        os.close(r)
        os.close(w)


def _tracing_child_runs():
    """A borrowed child that traces a call returns: up to 3.11 one that
    traced with an asynchronous exception left pending (a flag of the whole
    interpreter) spun on it in the eval loop for ever."""
    events = []

    def trace_then_call():
        sys.settrace(lambda *a: events.append(a[1]))
        (lambda: 0)()                   # a Python call, traced
    assert reap(pyclone.clone(trace_then_call, BORROWED)) == 0
    assert "call" in events


def _terminate_a_reader(while_it_reads=None):
    """Terminates a thread-mode child asleep in read(), after
    ``while_it_reads(ident)`` (its threading ident); it must end as killed
    by SIGTERM and leave no exception pending."""
    idents = []

    def reader(fd):
        idents.append(threading.get_ident())
        os.read(fd, 1)
    r, w = os.pipe()
    try:
        pid = pyclone.clone(reader, THREAD, args=(r,))
        try:
            wait_blocked_in(pid, "read")
            if while_it_reads is not None:
                while_it_reads(idents[0])
        finally:
            pyclone.terminate(pid)
        assert reap(pid) == -signal.SIGTERM
    finally:
        os.close(r)
        os.close(w)
    _tracing_child_runs()


def test_a_child_killed_at_a_safe_point_leaves_no_exception_pending():
    """Killed in a read, the child had no exception set: up to 3.12 one
    left pending on its dead thread state kept the interpreter's "pending"
    flag set for good, and on 3.11 a tracing child then spun on it."""
    _terminate_a_reader()


def test_an_exception_pending_for_a_sleeping_child_is_taken_back_by_the_kill():
    # An exception set while the child was on its way into a blocking call
    # (its GIL already released) is one it does not see there: terminate()
    # kills it at that safe point, and takes the exception back first.
    # (Before, the child slept on when terminate() had set the exception
    # itself, and one set by anyone else stayed pending after the kill.)
    def set_one(ident):
        set_async_exc = ctypes.pythonapi.PyThreadState_SetAsyncExc
        set_async_exc.argtypes = [ctypes.c_ulong, ctypes.py_object]
        assert set_async_exc(ident, pyclone.Terminated) == 1
    _terminate_a_reader(set_one)


@pytest.mark.parametrize("body", [spin, sleep, allocate], ids=lambda f: f.__name__)
def test_borrowed_child_terminated_from_another_thread(body):
    """The caller is suspended by CLONE_VFORK: another thread terminates."""
    out = {}

    def caller():
        out["pid"] = pyclone.clone(lambda: (out.setdefault("tid", threading.get_native_id()),
                                            body()), BORROWED)
    t = threading.Thread(target=caller)
    t.start()
    while "tid" not in out:
        time.sleep(0.001)
    pyclone.terminate(out["tid"])
    t.join(30)
    assert not t.is_alive()
    assert reap(out["pid"]) == -signal.SIGTERM
    assert parent_is_healthy()


@pytest.mark.parametrize("flags", [THREAD, signal.SIGCHLD], ids=["thread", "fork"])
@pytest.mark.parametrize("body", [spin, sleep], ids=lambda f: f.__name__)
def test_child_terminate(flags, body):
    c = pyclone.Child(body, flags=flags).start()
    time.sleep(0.02)
    c.terminate()
    c.join(30)
    assert c.exitcode == -signal.SIGTERM
    c.close()


def test_finally_blocks_run_and_the_exception_can_be_caught():
    ran = []

    def child():
        try:
            spin()
        finally:
            ran.append("finally")

    def stubborn():
        try:
            spin()
        except pyclone.Terminated:
            ran.append("caught")
        return 7
    pid = pyclone.clone(child, THREAD)
    pyclone.terminate(pid)
    assert reap(pid) == -signal.SIGTERM
    pid = pyclone.clone(stubborn, THREAD)
    pyclone.terminate(pid)
    assert reap(pid) == 7
    assert ran == ["finally", "caught"]


def test_clone_thread_child_gets_the_exception_only():
    pid = pyclone.clone(spin, pyclone.CLONE_VM | pyclone.CLONE_SIGHAND | pyclone.CLONE_THREAD)
    pyclone.terminate(pid)
    got, status = pyclone.waitpid(pid)
    assert got == pid and os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGTERM


def test_sigterm_handler_in_the_childs_table_means_sigkill_at_a_safe_point():
    """Where SIGTERM is handled, a signal would run the handler in the child
    (and the Python one in our main thread): SIGKILL instead, still at a safe
    point."""
    old = signal.signal(signal.SIGTERM, lambda *a: None)
    try:
        pid = pyclone.clone(sleep, THREAD)
        time.sleep(0.05)
        pyclone.terminate(pid)
        assert reap(pid) == -signal.SIGKILL
    finally:
        signal.signal(signal.SIGTERM, old)
    assert parent_is_healthy()


def test_terminate_of_a_pid_that_is_not_ours_is_a_plain_sigterm():
    c = pyclone.Child(sleep).start()
    pyclone.terminate(c.pid)
    c.join(30)
    assert c.exitcode == -signal.SIGTERM
    c.close()
    with pytest.raises(ValueError):
        pyclone.terminate(0)


def test_fork_child_forgets_the_parents_vm_children():
    """In an os.fork() child the parent's CLONE_VM children are not its own:
    terminate() there must not reach their (deleted) thread states."""
    from conftest import in_forked_child
    r, w = os.pipe()
    try:
        pid = pyclone.clone(read_forever, THREAD, args=(r,))
        out = in_forked_child(lambda: (pyclone._clone.terminate_vm(pid, pyclone.Terminated, 0.0)))
        assert out == "0"       # shares no memory with the fork child: not its child
        pyclone.terminate(pid)
        assert reap(pid) == -signal.SIGTERM
    finally:
        os.close(r)
        os.close(w)
