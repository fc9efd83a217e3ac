"""Borrowed mode: CLONE_VM|CLONE_VFORK.  The child shares every object, runs
on a thread state of its own on the suspended parent thread, and every way
out of it leaves the parent fully working."""
import ctypes
import gc
import os
import signal
import sys
import threading
import time

import pytest

import pyclone
from conftest import (BORROWED, _anon_rw_mappings, kill_at_safe_point, overflow_the_stack,
                      no_idle_hosts, parent_is_healthy, reap, thread_states)

P = pyclone
FLAGS = BORROWED


def test_child_shares_memory():
    box = {"v": 1}

    def child():
        box["v"] = 2
        box["new"] = [1, 2, 3]
    assert reap(P.clone(child, BORROWED)) == 0
    assert box == {"v": 2, "new": [1, 2, 3]}
    assert parent_is_healthy()


def test_slides_clone_vm_buffer_example():
    """lwp-slides "Another Example: CLONE_VM", with CLONE_VFORK added."""
    buf = bytearray(b"hello from parent")
    seen = []

    def child_func(b):
        seen.append(bytes(b))
        b[:] = b"hello from child"
        return 0
    pid = P.clone(child_func, BORROWED, 65536, args=(buf,))
    assert reap(pid) == 0
    assert seen == [b"hello from parent"]
    assert buf == b"hello from child"
    # Without CLONE_VM the child writes into its own copy.
    buf2 = bytearray(b"hello from parent")
    assert reap(P.clone(child_func, signal.SIGCHLD, 65536, args=(buf2,))) == 0
    assert buf2 == b"hello from parent"


def test_child_is_its_own_process():
    got = {}

    def child():
        got["pid"] = os.getpid()
        got["ppid"] = os.getppid()
        got["native"] = threading.get_native_id()
    pid = P.clone(child, BORROWED)
    assert reap(pid) == 0
    assert got == {"pid": pid, "ppid": os.getpid(), "native": pid}


def test_parent_is_suspended_until_the_child_exits():
    t0 = time.monotonic()
    pid = P.clone(time.sleep, BORROWED, args=(0.2,))
    assert time.monotonic() - t0 >= 0.2
    assert reap(pid) == 0


def test_other_threads_run_while_the_parent_is_suspended():
    ticks = [0]
    stop = threading.Event()

    def spin():
        while not stop.is_set():
            ticks[0] += 1
    t = threading.Thread(target=spin)
    t.start()
    try:
        seen = []

        def child():
            start = ticks[0]
            time.sleep(0.2)
            seen.append(ticks[0] - start)
        pid = P.clone(child, BORROWED)
    finally:
        stop.set()
        t.join()
    assert reap(pid) == 0
    assert seen[0] > 1000, "the spinning thread did not run during the child"


def test_child_computes_while_threads_compete_for_the_gil():
    stop = threading.Event()
    t = threading.Thread(target=lambda: [None for _ in iter(stop.is_set, True)])
    t.start()
    try:
        pid = P.clone(lambda: sum(range(2_000_000)) % 200, BORROWED)
    finally:
        stop.set()
        t.join()
    assert reap(pid) == sum(range(2_000_000)) % 200


@pytest.mark.parametrize("ret,code", [(0, 0), (7, 7), (None, 0), (300, 0), (2 ** 70, 0), ("x", 0)])
def test_exit_status_from_return_value(ret, code):
    assert reap(P.clone(lambda: ret, BORROWED)) == code
    assert parent_is_healthy()


@pytest.mark.parametrize("arg,code", [(None, 0), (3, 3), ("bye", 1)])
def test_system_exit_does_not_finalize_the_parent(arg, code, capfd):
    assert reap(P.clone(sys.exit, BORROWED, args=(arg,))) == code
    assert parent_is_healthy()
    if arg == "bye":
        assert capfd.readouterr().err == "bye\n"


def test_exception_in_child(capfd):
    def child():
        def inner():
            raise ValueError("deep")
        inner()
    assert reap(P.clone(child, BORROWED)) == 1
    assert "ValueError: deep" in capfd.readouterr().err
    assert parent_is_healthy()


def _nested(depth, leaf):
    return leaf() if depth == 0 else _nested(depth - 1, leaf)


@pytest.mark.parametrize("depth", [0, 50, 400])
def test_os_exit_from_nested_frames(depth):
    pid = P.clone(_nested, BORROWED, args=(depth, lambda: os._exit(12)))
    assert reap(pid) == 12
    assert parent_is_healthy()


def test_os_exit_after_tracebacks_were_made_then_gc():
    """Frame objects made in the child (a caught exception's traceback,
    sys._getframe) outlive the child's abrupt exit: the parent's GC must
    still be able to traverse them."""
    keep = []

    def leaf():
        try:
            raise RuntimeError("made a traceback")
        except RuntimeError as exc:
            keep.append(exc)
            keep.append(sys._getframe())
            os._exit(5)
    for _ in range(20):
        assert reap(P.clone(_nested, BORROWED, args=(30, leaf))) == 5
        gc.collect()
    assert len(keep) == 40
    assert all(isinstance(k, RuntimeError) for k in keep[::2])
    del keep[:]
    gc.collect()
    assert parent_is_healthy()


def test_execv_from_nested_frames(tmp_path):
    out = tmp_path / "out"

    def leaf():
        fd = os.open(out, os.O_WRONLY | os.O_CREAT)
        os.dup2(fd, 1)
        os.execv("/bin/echo", ["echo", "exec'd"])
    pid = P.clone(_nested, BORROWED, args=(40, leaf))
    assert reap(pid) == 0
    assert out.read_text() == "exec'd\n"
    assert parent_is_healthy()


def test_child_killed_while_holding_the_gil():
    pid = P.clone(lambda: os.kill(os.getpid(), signal.SIGKILL), BORROWED)
    assert reap(pid) == -signal.SIGKILL
    assert parent_is_healthy()


@pytest.mark.parametrize("spinner", [False, True], ids=["idle", "gil-busy"])
def test_child_killed_in_a_gil_free_call(spinner):
    """The child blocks in time.sleep (GIL released); a thread kills it.
    With a spinning thread, the GIL is (almost always) held by that thread
    when the child dies: before 3.12 its thread state is then "current"."""
    pids = []
    stop = threading.Event()

    def killer():
        while not pids:
            time.sleep(0.01)
        assert kill_at_safe_point(pids[0], signal.SIGKILL)

    def spin():
        while not stop.is_set():
            sum(range(100))
    threads = [threading.Thread(target=killer)]
    if spinner:
        threads.append(threading.Thread(target=spin))
    for t in threads:
        t.start()

    def child():
        pids.append(os.getpid())
        time.sleep(30)
    try:
        pid = P.clone(child, BORROWED)
    finally:
        stop.set()
        for t in threads:
            t.join()
    assert reap(pid) == -signal.SIGKILL
    assert parent_is_healthy()


def test_stack_overflow_is_a_sigsegv_of_the_child(stack_hog):
    pid = P.clone(overflow_the_stack, FLAGS, args=(stack_hog,))
    assert reap(pid) == -signal.SIGSEGV
    assert parent_is_healthy()


def test_deep_recursion_is_a_recursion_error():
    def child():
        def f(n):
            return f(n + 1)
        try:
            f(0)
        except RecursionError:
            return 44
    assert reap(P.clone(child, BORROWED)) == 44


def test_gilstate_api_works_in_the_child():
    """C extensions call PyGILState_Ensure (ctypes callbacks do): it must find
    the child's own thread state, not wait for the GIL the child holds."""
    CB = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_int)
    qsort_called = []

    def child():
        st = ctypes.pythonapi.PyGILState_Ensure()
        ctypes.pythonapi.PyGILState_Release(st)
        cb = CB(lambda x: qsort_called.append(x) or x + 1)
        return cb(4)
    assert reap(P.clone(child, BORROWED)) == 5
    assert qsort_called == [4]
    st = ctypes.pythonapi.PyGILState_Ensure()       # and in the parent afterwards
    ctypes.pythonapi.PyGILState_Release(st)


def test_threading_local_is_fresh_in_the_child():
    local = threading.local()
    local.x = "parent"
    seen = []
    pid = P.clone(lambda: seen.append(getattr(local, "x", None)), BORROWED)
    assert reap(pid) == 0
    assert seen == [None]
    assert local.x == "parent"


def test_nested_borrowed_children():
    trail = []

    def level(n):
        trail.append(n)
        if n < 5:
            pid = P.clone(level, BORROWED, args=(n + 1,))
            return reap(pid) + 1
        return 0
    assert reap(P.clone(level, BORROWED, args=(1,))) == 4
    assert trail == [1, 2, 3, 4, 5]


def test_fork_mode_child_of_a_borrowed_child():
    box = [0]

    def child():
        pid = P.clone(lambda: box.__setitem__(0, 2) or 3)
        box[0] = 1
        return reap(pid)
    assert reap(P.clone(child, BORROWED)) == 3
    assert box == [1]


def test_from_another_thread():
    results = []

    def worker():
        box = []
        pid = P.clone(box.append, BORROWED, args=(threading.get_ident(),))
        results.append((reap(pid), box))
    threads = [threading.Thread(target=worker) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(results) == 4
    assert all(code == 0 and len(box) == 1 for code, box in results)


def test_clone_files_and_fs(tmp_path):
    fd = os.open("/dev/null", os.O_RDWR)
    here = os.getcwd()
    try:
        def child():
            os.close(fd)
            os.chdir(tmp_path)
        pid = P.clone(child, BORROWED | P.CLONE_FILES | P.CLONE_FS)
        assert reap(pid) == 0
        with pytest.raises(OSError):
            os.write(fd, b"x")
        assert os.getcwd() == str(tmp_path)
    finally:
        os.chdir(here)


def test_without_clone_files_the_child_has_its_own_fd_table():
    fd = os.open("/dev/null", os.O_RDWR)
    try:
        assert reap(P.clone(os.close, BORROWED, args=(fd,))) == 0
        assert os.write(fd, b"x") == 1
    finally:
        os.close(fd)


def test_child_starts_with_the_callers_signal_mask():
    old = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGUSR1})
    try:
        seen = []
        pid = P.clone(lambda: seen.append(signal.pthread_sigmask(signal.SIG_BLOCK, set())),
                      BORROWED)
        assert reap(pid) == 0
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, old)
    assert signal.SIGUSR1 in seen[0] and signal.SIGUSR2 not in seen[0]


def test_clear_sighand_resets_handlers_in_the_child_only():
    def sigcgt():
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("SigCgt:"):
                    return int(line.split()[1], 16)
    old = signal.signal(signal.SIGUSR1, lambda *a: None)
    try:
        seen = []
        pid = P.clone(lambda: seen.append(sigcgt()), BORROWED | P.CLONE_CLEAR_SIGHAND)
        assert reap(pid) == 0
        assert sigcgt() & (1 << (signal.SIGUSR1 - 1))
        assert not seen[0] & (1 << (signal.SIGUSR1 - 1))
    finally:
        signal.signal(signal.SIGUSR1, old)


def test_default_stack_is_carved_from_the_callers_stack():
    """No mapping is made for the default stack: the child runs on the free
    part of the caller's own thread stack, just below its stack pointer."""
    room = pyclone._clone.stack_room
    seen = []
    before = _anon_rw_mappings()
    mine = room()
    assert reap(P.clone(lambda: seen.append(room()), BORROWED)) == 0
    assert _anon_rw_mappings() == before
    assert 0 < seen[0] < mine, "the child's stack pointer is not below ours"
    assert mine - seen[0] < 256 * 1024


def test_large_stack_is_mapped_and_released():
    before = _anon_rw_mappings()
    seen = []

    def child():
        seen.append(pyclone._clone.stack_pointer())
        with open("/proc/self/maps") as f:
            seen.append(f.read())
    size = 64 * 1024 * 1024         # more than any thread stack has left
    assert reap(P.clone(child, BORROWED, size)) == 0
    addr, maps = seen
    mapped = [ln for ln in maps.splitlines()
              if int(ln.split("-")[0], 16) <= addr < int(ln.split()[0].split("-")[1], 16)]
    lo, hi = (int(v, 16) for v in mapped[0].split()[0].split("-"))
    assert hi - lo == size            # the stack, and below it...
    guard = [ln for ln in maps.splitlines() if ln.split()[0].endswith(f"-{lo:x}")]
    assert guard and guard[0].split()[1] == "---p", "no guard page below the stack"
    assert _anon_rw_mappings() == before, "the stack mapping was not released"


def test_seed_stack_sizes_work():
    for size in (16384, 65536):
        assert reap(P.clone(lambda: print("child thread", end="") or 0, BORROWED, size)) == 0


class Token:
    pass


@pytest.mark.parametrize("depth", [0, 10])
def test_locals_of_abandoned_frames_are_released(depth):
    """Objects held only by the locals of frames a child never returned from
    are freed once the child is gone (src/pyclone/frames.c)."""
    import weakref
    refs = []

    def leaf():
        token = Token()
        refs.append(weakref.ref(token))
        os._exit(0)
    assert reap(P.clone(_nested, BORROWED, args=(depth, leaf))) == 0
    gc.collect()
    assert refs[0]() is None


def test_threads_that_clone_and_end_leave_no_thread_state_behind():
    def worker():
        assert reap(P.clone(lambda: 0, BORROWED)) == 0
    no_idle_hosts()
    before = thread_states()
    for _ in range(20):
        t = threading.Thread(target=worker)
        t.start()
        t.join()
    # Each thread that cloned kept an idle thread state for its next child;
    # it must go when the thread ends.
    assert thread_states() == before
