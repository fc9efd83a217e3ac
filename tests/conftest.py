"""Shared fixtures: every test that starts a child reaps it, and a test
that leaves a child, a zombie, an fd or a stack mapping behind fails."""
import ctypes
import gc
import json
import os
import signal
import threading
import time
import traceback

import pytest

import pyclone


def _children():
    """Pids of this process's live children (all threads)."""
    pids = set()
    for tid in os.listdir("/proc/self/task"):
        try:
            with open(f"/proc/self/task/{tid}/children") as f:
                pids.update(int(p) for p in f.read().split())
        except OSError:
            pass
    return pids


def _fds():
    return set(os.listdir("/proc/self/fd"))


def _anon_rw_mappings():
    """Count of private anonymous mappings: where a leaked child stack shows."""
    with open("/proc/self/maps") as f:
        return sum(1 for line in f if len(line.split()) == 5)


@pytest.fixture(autouse=True)
def no_leftovers(request):
    """Fails a test that leaves children, zombies or fds behind; cleans up."""
    before_fds = _fds()
    yield
    leftover = _children()
    zombies = []
    for pid in leftover:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        try:
            pyclone.waitpid(pid, 0)
        except ChildProcessError:
            pass
        zombies.append(pid)
    assert not zombies, f"test left children behind (killed and reaped now): {zombies}"
    leaked = _fds() - before_fds
    # The fd of the listing itself is closed by now; allow only real fds.
    leaked = {fd for fd in leaked if os.path.exists(f"/proc/self/fd/{fd}")}
    assert not leaked, f"test leaked fds: {sorted(leaked)}"


@pytest.fixture(scope="session")
def stack_hog(tmp_path_factory):
    """ctypes function that overflows the C stack (compiled from helpers/)."""
    import ctypes
    import subprocess
    import sysconfig
    src = os.path.join(os.path.dirname(__file__), "helpers", "stack_hog.c")
    lib = tmp_path_factory.mktemp("hog") / "stack_hog.so"
    cc = (sysconfig.get_config_var("CC") or "cc").split()[0]
    subprocess.run([cc, "-O0", "-shared", "-fPIC", "-o", str(lib), src], check=True)
    return ctypes.CDLL(str(lib)).stack_hog


def overflow_the_stack(stack_hog):
    """A child's body that overflows its C stack.  SIGSEGV gets its default
    action in this task's own handler table only: faulthandler.disable()
    would also change faulthandler's state, which a CLONE_VM child shares
    with its parent (see docs/modes.md)."""
    import ctypes
    ctypes.CDLL(None).signal(signal.SIGSEGV, 0)
    stack_hog(0)


def reap(pid, options=pyclone.WALL):
    """waitpid() that returns the exit code (negative for a signal)."""
    got, status = pyclone.waitpid(pid, options)
    assert got == pid
    return os.waitstatus_to_exitcode(status)


def is_root():
    return os.geteuid() == 0


needs_root = pytest.mark.skipif(not is_root(), reason="needs root (CAP_SYS_ADMIN) for namespaces")

FORK = signal.SIGCHLD
BORROWED = pyclone.CLONE_VM | pyclone.CLONE_VFORK | signal.SIGCHLD


def in_forked_child(fn):
    """Runs fn in an os.fork() child; returns what it printed to a pipe."""
    import warnings
    r, w = os.pipe()
    with warnings.catch_warnings():
        # 3.12+ os.fork() counts pyclone's idle host threads (from earlier
        # thread-mode tests) as threads; they hold no lock.
        warnings.simplefilter("ignore", DeprecationWarning)
        pid = os.fork()
    if pid == 0:
        os.close(r)
        try:
            out = fn()
        except BaseException as exc:
            out = f"{type(exc).__name__}: {exc}"
        os.write(w, str(out).encode())
        os._exit(0)
    os.close(w)
    with os.fdopen(r) as f:
        out = f.read()
    assert reap(pid) == 0
    return out


def _cgroup2_mount():
    with open("/proc/self/mounts") as f:
        for line in f:
            fields = line.split()
            if fields[2] == "cgroup2":
                return fields[1]
    return None


@pytest.fixture
def cgroup_dir():
    """A fresh cgroup v2 directory, removed afterwards."""
    mount = _cgroup2_mount()
    if mount is None:
        pytest.skip("no cgroup2 mount on this machine")
    path = os.path.join(mount, f"pyclone-test-{os.getpid()}")
    try:
        os.mkdir(path)
    except OSError as exc:
        pytest.skip(f"cgroup2 at {mount} is not writable here: {exc}")
    try:
        yield path
    finally:
        os.rmdir(path)


def kill_at_safe_point(pid, sig=signal.SIGKILL, timeout=10.0):
    """Sends `sig` to CLONE_VM child `pid` only while it is stopped in a
    system call that holds no lock (pyclone's safe path: a signal that lands
    while the child waits for the GIL would hang or abort this process)."""
    import time
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        r = pyclone._clone.signal_at_safe_point(pid, sig)
        if r:
            return r == 1
        time.sleep(0.001)
    raise AssertionError(f"child {pid} never reached a safe point in {timeout} s")


_SYSCALLS = {"x86_64": {"read": 0, "clock_nanosleep": 230},
             "aarch64": {"read": 63, "clock_nanosleep": 115}}


def wait_blocked_in(pid, name, timeout=10.0):
    """Waits until task `pid` is blocked in system call `name` (from
    /proc/<pid>/syscall): a known safe point when nothing will wake it."""
    import time
    nr = _SYSCALLS[os.uname().machine][name]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with open(f"/proc/{pid}/syscall") as f:
            first = f.read().split()[0]
        if first == str(nr):
            return
        time.sleep(0.001)
    raise AssertionError(f"task {pid} did not block in {name} within {timeout} s")


def parent_is_healthy():
    """Deep Python work in the parent: recursion, exceptions with tracebacks,
    the GC, json of nested data, a thread, frame inspection."""
    def rec(n):
        return 0 if n == 0 else 1 + rec(n - 1)
    assert rec(800) == 800
    try:
        rec(10 ** 6)
    except RecursionError:
        pass
    else:
        raise AssertionError("no RecursionError")
    try:
        {}["missing"]
    except KeyError:
        assert "KeyError" in traceback.format_exc()
    gc.collect()
    nested = []
    for _ in range(200):
        nested = [nested, {"k": list(range(5))}]
    assert json.loads(json.dumps(nested)) == nested
    out = []
    t = threading.Thread(target=out.append, args=(1,))
    t.start()
    t.join()
    assert out == [1]
    assert "parent_is_healthy" in "".join(traceback.format_stack())
    return True


def thread_states():
    """How many thread states the interpreter holds (public C API)."""
    api = ctypes.pythonapi
    for name in ("PyInterpreterState_Main", "PyInterpreterState_ThreadHead", "PyThreadState_Next"):
        getattr(api, name).restype = ctypes.c_void_p
    api.PyInterpreterState_ThreadHead.argtypes = [ctypes.c_void_p]
    api.PyThreadState_Next.argtypes = [ctypes.c_void_p]
    n, t = 0, api.PyInterpreterState_ThreadHead(api.PyInterpreterState_Main())
    while t:
        n += 1
        t = api.PyThreadState_Next(t)
    return n


def wait_for(predicate, timeout=10.0):
    """Polls ``predicate`` until it holds; AssertionError after ``timeout``."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached")
        time.sleep(0.001)


def no_idle_hosts():
    """Waits until thread mode's idle hosts (each keeping a spare thread
    state) are gone - they leave 0.5 s after their last child, at a moment
    of their own, and delete their spare (with the GIL) after they left the
    pool - so that thread states can be counted: no host parked, and no OS
    thread left that is not a Python thread (hosts are not)."""
    wait_for(lambda: pyclone._clone.parked_hosts() == 0
             and len(os.listdir("/proc/self/task")) == threading.active_count(), 10)


def wait_single_threaded():
    """Waits until this process has no thread but the caller (Thread.join()
    returns before the OS thread is gone; idle hosts leave 0.5 s after their
    last child); names the threads still running if it times out."""
    try:
        wait_for(lambda: len(os.listdir("/proc/self/task")) == 1, 10)
    except AssertionError:
        names = [open(f"/proc/self/task/{t}/comm").read().strip()
                 for t in os.listdir("/proc/self/task")]
        pytest.fail(f"another thread is still running: {names}")
