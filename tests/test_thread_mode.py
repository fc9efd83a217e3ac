"""Thread mode: CLONE_VM without CLONE_VFORK.  The child runs concurrently
with its parent, sharing every Python object, on a thread state and a libc
thread environment (a host pthread's) of its own."""
import ctypes
import gc
import os
import signal
import socket
import subprocess
import sys
import textwrap
import threading
import time

import pytest

import pyclone
from conftest import (kill_at_safe_point, overflow_the_stack, parent_is_healthy, reap,
                      no_idle_hosts, thread_states, wait_for, wait_single_threaded)

P = pyclone
THREAD = P.CLONE_VM | signal.SIGCHLD
#: For tests that need the process to be single-threaded: pytest-timeout's
#: thread method (the default here) is a thread of its own.
SINGLE_THREADED = pytest.mark.timeout(60, method="signal")
SEEDS = P.CLONE_VM | P.CLONE_FS | P.CLONE_FILES | P.CLONE_SIGHAND | signal.SIGCHLD
GROUP = P.CLONE_VM | P.CLONE_SIGHAND | P.CLONE_THREAD


def test_clone_returns_while_the_child_runs():
    started, release = threading.Event(), threading.Event()

    def child():
        started.set()
        release.wait(10)
        return 4
    pid = P.clone(child, THREAD)
    assert started.wait(10), "the child did not run concurrently"
    assert P.waitpid(pid, P.WALL | os.WNOHANG) == (0, 0)
    release.set()
    assert reap(pid) == 4


def test_every_object_is_shared():
    box = {"list": [1]}

    def child():
        box["list"].append(2)
        box["new"] = "child"
    assert reap(P.clone(child, THREAD)) == 0
    assert box == {"list": [1, 2], "new": "child"}


def test_identity_of_the_child():
    got = {}
    local = threading.local()
    local.x = "parent"

    def child():
        got["pid"] = os.getpid()
        got["native"] = threading.get_native_id()
        got["local"] = getattr(local, "x", None)
        got["ident"] = threading.get_ident()
    pid = P.clone(child, THREAD)
    assert reap(pid) == 0
    assert got["pid"] == pid and got["native"] == pid
    assert got["local"] is None                    # a fresh thread state
    assert got["ident"] != threading.get_ident()   # the host's pthread
    assert local.x == "parent"


def test_gilstate_api_works_in_the_child():
    CB = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_int)

    def child():
        st = ctypes.pythonapi.PyGILState_Ensure()
        ctypes.pythonapi.PyGILState_Release(st)
        return CB(lambda x: x * 2)(21)
    assert reap(P.clone(child, THREAD)) == 42


# ---- the seeds ---------------------------------------------------------

def test_linus_example_concurrently(capfd):
    """The mother sleeps while the child runs, then sees vm = 5 and a closed fd."""
    shared = {"show_same_vm": 0}

    def cloned_process_starts_here(data):
        print(f"child:\t got argument {data} as fd", flush=True)
        shared["show_same_vm"] = 5
        print(f"child:\t vm = {shared['show_same_vm']}", flush=True)
        os.close(data)

    fd = os.open("/dev/null", os.O_RDWR)
    print(f"mother:\t fd = {fd}")
    shared["show_same_vm"] = 10
    print(f"mother:\t vm = {shared['show_same_vm']}", flush=True)
    pid = P.clone(cloned_process_starts_here, SEEDS, 16384, args=(fd,))
    wait_for(lambda: shared["show_same_vm"] == 5)       # the seed's sleep(1)
    assert reap(pid) == 0
    print(f"mother:\t vm = {shared['show_same_vm']}")
    try:
        os.write(fd, b"c")
    except OSError:
        print("mother:\t child closed our file descriptor")
    assert capfd.readouterr().out.endswith(
        f"child:\t got argument {fd} as fd\nchild:\t vm = 5\nmother:\t vm = 5\n"
        "mother:\t child closed our file descriptor\n")


@pytest.mark.parametrize("share_files", [True, False])
def test_slides_thread_function(share_files):
    fd = os.open("/dev/null", os.O_RDWR)
    flags = signal.SIGCHLD | P.CLONE_FS | P.CLONE_SIGHAND | P.CLONE_VM
    if share_files:
        flags |= P.CLONE_FILES
    pid = P.clone(os.close, flags, 64 * 1024, args=(fd,))
    assert reap(pid, 0) == 0                # the seed's plain waitpid
    if share_files:
        with pytest.raises(OSError):
            os.write(fd, b"c")              # "child closed our file descriptor"
    else:
        assert os.write(fd, b"c") == 1
        os.close(fd)


def test_bernard_clone_vm_files():
    state = {"variable": 9}
    fd = os.open("/dev/null", os.O_RDWR)

    def child():
        state["variable"] = 42
        os.close(fd)
    assert reap(P.clone(child, P.CLONE_VM | P.CLONE_FILES | signal.SIGCHLD)) == 0
    assert state["variable"] == 42
    with pytest.raises(OSError):
        os.write(fd, b"c")


def test_slides_clone_vm_buffer():
    buf = bytearray(b"hello from parent")

    def child_func(b):
        b[:] = b"hello from child"
    assert reap(P.clone(child_func, THREAD, 65536, args=(buf,))) == 0
    assert buf == b"hello from child"


# ---- many children, nesting, other threads ------------------------------

def test_nested_children():
    trail = []

    def level(n):
        trail.append(n)
        if n < 4:
            return reap(P.clone(level, THREAD, args=(n + 1,))) + 1
        return 0
    assert reap(P.clone(level, THREAD, args=(1,))) == 3
    assert trail == [1, 2, 3, 4]


@pytest.mark.timeout(120)
def test_200_live_children_at_once():
    release = threading.Event()
    counter = [0]
    lock = threading.Lock()

    def child(i):
        with lock:
            counter[0] += 1
        release.wait(60)
        return i % 256
    pids = [P.clone(child, THREAD, args=(i,)) for i in range(200)]
    wait_for(lambda: counter[0] == 200, 60)
    release.set()
    codes = sorted(reap(pid) for pid in pids)
    assert codes == sorted(i % 256 for i in range(200))


def test_eight_python_threads_cloning_concurrently():
    results = []
    lock = threading.Lock()

    def worker(w):
        for i in range(25):
            box = []
            pid = P.clone(box.append, THREAD, args=(w * 100 + i,))
            code = reap(pid)
            with lock:
                results.append((code, box[0]))
    threads = [threading.Thread(target=worker, args=(w,)) for w in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(results) == 200
    assert sorted(v for _, v in results) == sorted(w * 100 + i for w in range(8) for i in range(25))
    assert all(code == 0 for code, _ in results)


def test_tcp_and_getaddrinfo_in_a_child():
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(1)
    port = srv.getsockname()[1]
    got = []

    def child():
        got.append(socket.getaddrinfo("localhost", port, proto=socket.IPPROTO_TCP)[0][4][1])
        with socket.create_connection(("127.0.0.1", port)) as c:
            c.sendall(b"hello from a light-weight process")
    pid = P.clone(child, THREAD)
    conn, _ = srv.accept()
    data = conn.recv(100)
    conn.close()
    srv.close()
    assert reap(pid) == 0
    assert data == b"hello from a light-weight process" and got == [port]


# ---- exit paths: the parent keeps working --------------------------------

@pytest.mark.parametrize("fn,code", [
    (lambda: 7, 7),
    (lambda: None, 0),
    (lambda: sys.exit(3), 3),
    (lambda: sys.exit("bye"), 1),
    (lambda: {}["missing"], 1),
    (lambda: os._exit(12), 12),
], ids=["return", "none", "sysexit-int", "sysexit-str", "exception", "os_exit"])
def test_exit_paths(fn, code, capfd):
    assert reap(P.clone(fn, THREAD)) == code
    assert parent_is_healthy()
    capfd.readouterr()


def test_os_exit_from_nested_frames_releases_their_locals():
    import weakref
    refs = []

    class Token:
        pass

    def leaf(n):
        if n:
            return leaf(n - 1)
        token = Token()
        refs.append(weakref.ref(token))
        os._exit(0)
    assert reap(P.clone(leaf, THREAD, args=(20,))) == 0
    gc.collect()
    assert refs[0]() is None
    assert parent_is_healthy()


@pytest.mark.parametrize("spinner", [False, True], ids=["idle", "gil-busy"])
def test_sigkill_while_blocked_in_a_gil_free_call(spinner):
    stop = threading.Event()
    spin = threading.Thread(target=lambda: [None for _ in iter(stop.is_set, True)])
    if spinner:
        spin.start()
    inside = threading.Event()

    def child():
        inside.set()
        time.sleep(30)
    try:
        pid = P.clone(child, THREAD)
        assert inside.wait(10)
        assert kill_at_safe_point(pid, signal.SIGKILL)
        assert reap(pid) == -signal.SIGKILL
    finally:
        stop.set()
        if spinner:
            spin.join()
    assert parent_is_healthy()


def test_sigkill_while_holding_the_gil():
    pid = P.clone(lambda: os.kill(os.getpid(), signal.SIGKILL), THREAD)
    assert reap(pid) == -signal.SIGKILL
    assert parent_is_healthy()


def test_terminate_while_blocked_on_a_lock_waits_for_python():
    """Blocked in a lock acquire (a futex wait, not a safe point): terminate
    leaves it there; once it gets the lock it runs Python again, where the
    exception ends it as killed by SIGTERM."""
    lock = threading.Lock()
    lock.acquire()
    inside = threading.Event()

    def child():
        inside.set()
        lock.acquire()
        while True:
            pass
    pid = P.clone(child, THREAD)
    assert inside.wait(10)
    P.terminate(pid, timeout=0.2)
    assert P.waitpid(pid, P.WALL | os.WNOHANG) == (0, 0)
    lock.release()
    assert reap(pid) == -signal.SIGTERM
    assert parent_is_healthy()


# ---- CLONE_THREAD ---------------------------------------------------------

def test_clone_thread_shares_the_pid_and_is_joined_by_tid():
    got = {}

    def child():
        got["pid"] = os.getpid()
        got["tid"] = threading.get_native_id()
        return 5
    tid = P.clone(child, GROUP)
    got_tid, status = P.waitpid(tid)
    assert got_tid == tid and os.waitstatus_to_exitcode(status) == 5
    assert got == {"pid": os.getpid(), "tid": tid}
    with pytest.raises(ChildProcessError):
        P.waitpid(tid)              # joined once, like a reaped child
    assert parent_is_healthy()


def test_clone_thread_exits_with_exit_not_exit_group():
    """Returning, raising and sys.exit() end only the child."""
    for fn, code in [(lambda: 0, 0), (lambda: 1 / 0, 1), (lambda: sys.exit(4), 4)]:
        tid = P.clone(fn, GROUP)
        assert os.waitstatus_to_exitcode(P.waitpid(tid)[1]) == code
    assert os.getpid() > 0 and parent_is_healthy()


def test_clone_thread_wnohang():
    release = threading.Event()
    tid = P.clone(lambda: release.wait(10) and 0, GROUP)
    assert P.waitpid(tid, P.WALL | os.WNOHANG) == (0, 0)
    release.set()
    assert P.waitpid(tid)[0] == tid


def test_clone_thread_os_exit_ends_the_whole_process():
    """As for any thread: os._exit is exit_group (documented)."""
    out = subprocess.run([sys.executable, "-c", textwrap.dedent("""
        import os, time, pyclone
        pyclone.clone(lambda: os._exit(17), pyclone.CLONE_VM | pyclone.CLONE_SIGHAND
                      | pyclone.CLONE_THREAD)
        time.sleep(10)
        print("still here")
    """)], capture_output=True, text=True, timeout=30)
    assert out.returncode == 17 and "still here" not in out.stdout


# ---- exit signals, stacks, signal masks -----------------------------------

@pytest.mark.parametrize("sig", [signal.SIGCHLD, signal.SIGUSR1, 0])
def test_exit_signals(sig):
    got = []
    old = signal.signal(signal.SIGUSR1, lambda *a: got.append("usr1"))
    try:
        pid = P.clone(lambda: 6, P.CLONE_VM | sig)
        assert reap(pid) == 6
    finally:
        signal.signal(signal.SIGUSR1, old)
    assert got == (["usr1"] if sig == signal.SIGUSR1 else [])


def test_child_starts_with_the_callers_signal_mask():
    seen = []
    old = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGUSR2})
    try:
        pid = P.clone(lambda: seen.append(signal.pthread_sigmask(signal.SIG_BLOCK, set())),
                      THREAD)
        assert reap(pid) == 0
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, old)
    assert signal.SIGUSR2 in seen[0] and signal.SIGUSR1 not in seen[0]


def test_signal_signal_is_refused_outside_the_main_thread():
    """CPython's own rule, which thread-mode children meet (documented)."""
    errors = []

    def child():
        try:
            signal.signal(signal.SIGUSR1, signal.SIG_IGN)
        except ValueError as exc:
            errors.append(str(exc))
    assert reap(P.clone(child, THREAD)) == 0
    assert errors and "main thread" in errors[0]


def test_stack_overflow_is_a_sigsegv_of_the_child(stack_hog):
    pid = P.clone(overflow_the_stack, THREAD, args=(stack_hog,))
    assert reap(pid) == -signal.SIGSEGV
    assert parent_is_healthy()


def _kernel_has_guard_regions():
    """MADV_GUARD_INSTALL (Linux 6.13) on a page of our own."""
    import mmap
    page = mmap.PAGESIZE
    m = mmap.mmap(-1, 2 * page, flags=mmap.MAP_PRIVATE)
    buf = ctypes.c_char.from_buffer(m)
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.madvise.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
        return libc.madvise(ctypes.addressof(buf), page, 102) == 0
    finally:
        del buf
        m.close()


def _guard_page_mappings():
    page = os.sysconf("SC_PAGE_SIZE")
    n = 0
    with open("/proc/self/maps") as f:
        for line in f:
            span, perms = line.split()[:2]
            low, high = (int(x, 16) for x in span.split("-"))
            n += perms == "---p" and high - low == page
    return n


@pytest.mark.skipif(not _kernel_has_guard_regions(),
                    reason="no guard regions (MADV_GUARD_INSTALL, Linux 6.13): host stacks "
                           "keep glibc's PROT_NONE guard mapping")
def test_host_stacks_have_guards_that_split_no_mapping(stack_hog):
    # Each exiting child process has the kernel walk every mapping of the
    # memory it shares: a host's guard page is a guard region, not a mapping
    # of its own.  And it guards: a child that overflows its stack, with
    # other hosts' stacks right below, dies of SIGSEGV and harms none of them.
    sem = P.Semaphore(0)
    results = []

    def parked(i):
        sem.acquire()
        results.append(i)
    before = _guard_page_mappings()
    pids = [P.clone(parked, THREAD, args=(i,)) for i in range(24)]
    try:
        assert _guard_page_mappings() - before < 4
        for _ in range(3):
            assert reap(P.clone(overflow_the_stack, THREAD, args=(stack_hog,))) == -signal.SIGSEGV
    finally:
        sem.release(len(pids))
        codes = [reap(pid) for pid in pids]
    assert codes == [0] * len(pids)
    assert sorted(results) == list(range(len(pids)))
    assert parent_is_healthy()
    sem.close()


def test_seed_stack_sizes():
    for size in (16384, 65536, 1 << 20):
        box = []
        assert reap(P.clone(box.append, THREAD, size, args=(size,))) == 0
        assert box == [size]


# ---- leftovers -------------------------------------------------------------

@SINGLE_THREADED
def test_hosts_are_pooled_and_then_leave():
    for _ in range(5):
        assert reap(P.clone(lambda: 0, THREAD)) == 0
    assert pyclone._clone.parked_hosts() >= 1
    # Idle hosts exit after 0.5 s: the process is single-threaded again.
    wait_single_threaded()
    assert pyclone._clone.parked_hosts() == 0


@SINGLE_THREADED
def test_no_thread_states_left_behind():
    """Each pooled host keeps one idle thread state for its next child; it
    goes with the host (after 0.5 s idle).  Nothing else stays."""
    wait_single_threaded()
    before = thread_states()
    for fn in (lambda: 0, lambda: os._exit(1), lambda: 1 / 0, lambda: 0):
        reap(P.clone(fn, THREAD))
    assert thread_states() <= before + 1           # the host's idle one
    wait_single_threaded()
    assert thread_states() == before


def test_running_children_are_joined_at_interpreter_exit(tmp_path):
    out = tmp_path / "out"
    subprocess.run([sys.executable, "-c", textwrap.dedent(f"""
        import time, pyclone, signal
        def child():
            time.sleep(0.5)
            with open({str(out)!r}, "w") as f:
                f.write("finished")
        pyclone.clone(child, pyclone.CLONE_VM | signal.SIGCHLD)
    """)], check=True, timeout=30)
    assert out.read_text() == "finished"


@SINGLE_THREADED
def test_a_host_lent_to_a_running_child_holds_no_lock():
    """The caller clones on a parked host's TLS; while the child runs, its
    host sleeps in a futex wait, so it does not count as a thread that could
    hold a lock at a fork."""
    wait_for(lambda: pyclone._core.other_threads() == 0, 10)
    sem = P.Semaphore(0)
    pid = P.clone(sem.acquire, THREAD)
    try:
        assert pyclone._clone.lent_hosts() == 1
        assert pyclone._core.other_threads() == 0
    finally:
        sem.release()
        assert reap(pid) == 1           # acquire() returned True
    assert pyclone._clone.lent_hosts() == 0     # the reaper cleaned up


@pytest.mark.parametrize("fn, code", [(lambda: 7, 7), (lambda: os._exit(5), 5)],
                         ids=["returns", "os._exit"])
def test_a_child_reaped_by_os_waitpid_is_cleaned_up_by_its_host(fn, code):
    """pyclone.waitpid cleans up after the child it reaps; after os.waitpid
    the host does, once it looks (a child that ended without returning woke
    it at its exit): it is back in the pool, serving the next child."""
    idents = []
    pid = P.clone(lambda: (idents.append(threading.get_ident()), fn())[1], THREAD)
    assert os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]) == code
    wait_for(lambda: pyclone._clone.lent_hosts() == 0, 10)
    assert reap(P.clone(lambda: idents.append(threading.get_ident()), THREAD)) == 0
    assert idents[0] == idents[1]       # the same host, and its TLS


@SINGLE_THREADED
def test_fork_mode_after_thread_mode_is_not_warned_about():
    import warnings
    # The timer threads of earlier tests' timeouts end shortly after them.
    wait_for(lambda: pyclone._core.other_threads() == 0, 10)
    assert reap(P.clone(lambda: 0, THREAD)) == 0
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        # A raw clone: the parked host holds no lock, so no warning.
        assert reap(P.clone(lambda: 0, P.CLONE_FILES | signal.SIGCHLD)) == 0


@pytest.mark.parametrize("outer", ["borrowed", "thread", "fork"])
def test_thread_mode_children_of_child_processes(outer):
    """A child process that starts thread-mode children owns their hosts
    (threads of its own): it joins them and retires its hosts before it
    exits, so its exit status is its own and no host of it is left in the
    pool for anyone else."""
    flags = {"borrowed": P.CLONE_VM | P.CLONE_VFORK | signal.SIGCHLD,
             "thread": THREAD, "fork": signal.SIGCHLD}[outer]
    got = []

    def grandchild(i):
        time.sleep(0.05)
        got.append(i)
        return i

    def child():
        pids = [P.clone(grandchild, THREAD, args=(i,)) for i in range(3)]
        codes = [reap(pid) for pid in pids]
        P.clone(grandchild, THREAD, args=(9,))     # not waited for: joined at exit
        return sum(codes) + 10
    # A borrowed clone leaves its caller one idle thread state: take the
    # baseline after one.  Idle hosts (each with a spare thread state) leave
    # after 0.5 s, at a moment of their own: count with none of them about.
    assert reap(P.clone(lambda: 0, flags)) == 0
    no_idle_hosts()
    before = thread_states()
    assert reap(P.clone(child, flags)) == 13
    if outer != "fork":
        assert sorted(got) == [0, 1, 2, 9]
    no_idle_hosts()
    assert thread_states() == before
    # Our own pool works as before.
    assert reap(P.clone(lambda: 5, THREAD)) == 5


@pytest.mark.parametrize("sighand", [False, True])
def test_signal_to_a_child_runs_the_python_handler_in_the_main_thread(sighand):
    """The C-level handler runs in the child (its kernel table is a copy of
    the parent's, or the parent's own under CLONE_SIGHAND); it trips a flag
    in shared memory, and the parent's main thread runs the Python handler."""
    ran_in = []
    old = signal.signal(signal.SIGUSR1, lambda n, f: ran_in.append(threading.current_thread()))
    inside = threading.Event()

    def child():
        inside.set()
        time.sleep(0.3)
    try:
        pid = P.clone(child, THREAD | (P.CLONE_SIGHAND if sighand else 0))
        assert inside.wait(10)
        os.kill(pid, signal.SIGUSR1)
        assert reap(pid) == 0
        wait_for(lambda: ran_in)
    finally:
        signal.signal(signal.SIGUSR1, old)
    assert ran_in == [threading.main_thread()]
