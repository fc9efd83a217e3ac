"""Fork mode: no CLONE_VM; the child runs in a copy of the interpreter."""
import ctypes
import io
import os
import signal
import socket
import subprocess
import sys
import time

import pytest

import pyclone
from conftest import needs_root, overflow_the_stack, parent_is_healthy, reap

P = pyclone
FLAGS = signal.SIGCHLD


def test_child_gets_a_copy_of_memory():
    box = [1]

    def child():
        box[0] = 2
        return box[0] * 10
    pid = P.clone(child)
    assert reap(pid) == 20
    assert box == [1]


def test_child_is_a_new_process_whose_parent_is_us():
    r, w = os.pipe()

    def child():
        os.write(w, f"{os.getpid()} {os.getppid()} {os.gettid() if hasattr(os, 'gettid') else 0}".encode())
    pid = P.clone(child)
    os.close(w)
    got = os.read(r, 100).decode().split()
    os.close(r)
    assert reap(pid) == 0
    assert int(got[0]) == pid and int(got[1]) == os.getpid()


class _Code(int):
    pass


@pytest.mark.parametrize("ret,code", [(0, 0), (7, 7), (255, 255), (None, 0), (256, 0),
                                      (-1, 0), (2 ** 70, 0), (-2 ** 70, 0), ("text", 0),
                                      (3.0, 0), (True, 1), (_Code(9), 9), (_Code(300), 0)])
def test_exit_status_from_return_value(ret, code):
    # None and exact ints are decoded by the C core, the rest by _exit.
    assert reap(P.clone(lambda: ret)) == code


@pytest.mark.parametrize("arg,code,stderr", [(None, 0, ""), (0, 0, ""), (5, 5, ""),
                                             (256 + 3, 3, ""), ("bye", 1, "bye\n")])
def test_exit_status_from_system_exit(arg, code, stderr, capfd):
    assert reap(P.clone(sys.exit, args=(arg,))) == code
    assert capfd.readouterr().err == stderr


def test_exception_prints_traceback_and_gives_1(capfd):
    def child():
        raise KeyError("lost")
    assert reap(P.clone(child)) == 1
    err = capfd.readouterr().err
    assert "Traceback" in err and "KeyError: 'lost'" in err


def test_os_exit_gives_its_code():
    assert reap(P.clone(os._exit, args=(42,))) == 42


def test_killed_child_reports_the_signal():
    assert reap(P.clone(lambda: os.kill(os.getpid(), signal.SIGKILL))) == -signal.SIGKILL


@pytest.mark.parametrize("size", [1, 4096, pyclone.MIN_STACK_SIZE - 1])
def test_stack_size_is_accepted_and_unused(size):
    # The child runs on its copy of the caller's stack: a size that would be
    # too small for a CLONE_VM child is no reason to refuse a fork.
    def child():
        return sum(range(10))
    assert reap(P.clone(child, signal.SIGCHLD, size)) == 45
    assert reap(P.clone3(child, stack_size=size).pid) == 45
    with P.Child(child, stack_size=size).start() as c:
        pass
    assert (c.exitcode, c.result) == (0, 45)


def test_args_and_kwargs():
    def child(a, b, *, c):
        return a + b + c
    assert reap(P.clone(child, args=(1, 2), kwargs={"c": 3})) == 6


def test_buffered_stdout_is_not_duplicated(tmp_path):
    out = tmp_path / "out"
    code = f"""
import sys, pyclone
sys.stdout = open({str(out)!r}, "w")
print("before", end=" ")
pid = pyclone.clone(lambda: print("child", end=" "))
pyclone.waitpid(pid)
print("after")
"""
    subprocess.run([sys.executable, "-c", code], check=True, timeout=30)
    assert out.read_text() == "before child after\n"


class _FlushRaises:
    """A stream whose flush() raises ``exc``."""

    def __init__(self, exc):
        self.exc = exc

    def write(self, s):
        return len(s)

    def flush(self):
        raise self.exc


@pytest.mark.parametrize("result,status", [(None, 0), (5, 5), ("text", 0)],
                         ids=["None", "int", "str"])
def test_a_failing_flush_at_the_end(result, status):
    """The child's closing flush ignores an Exception (its status stands)
    and reports anything else as unraisable (sys.unraisablehook; status 1),
    whether fn returned None or an int (handled in C) or another value (in
    Python)."""
    def child(exc):
        sys.stdout = _FlushRaises(exc)
        return result
    assert reap(P.clone(child, args=(ValueError("closed"),))) == status
    assert reap(P.clone(child, args=(KeyboardInterrupt(),))) == 1


def test_register_at_fork_hooks_run_in_order():
    r, w = os.pipe()
    calls = []
    os.register_at_fork(before=lambda: calls.append("before"),
                        after_in_parent=lambda: calls.append("parent"),
                        after_in_child=lambda: calls.append("child"))
    try:
        pid = P.clone(lambda: os.write(w, ",".join(calls).encode()) and 0)
        os.close(w)
        seen_by_child = os.read(r, 100).decode()
        assert reap(pid) == 0
    finally:
        os.close(r)
    assert seen_by_child.endswith("before,child")
    assert calls[-2:] == ["before", "parent"]


def test_threading_works_in_the_child():
    import threading

    def child():
        out = []
        t = threading.Thread(target=out.append, args=(5,))
        t.start()
        t.join()
        return out[0] + threading.active_count()
    assert reap(P.clone(child)) == 6


def test_clone_files_shares_the_fd_table():
    fd = os.open("/dev/null", os.O_RDWR)
    pid = P.clone(os.close, P.CLONE_FILES | signal.SIGCHLD, args=(fd,))
    assert reap(pid) == 0
    with pytest.raises(OSError):
        os.write(fd, b"x")


def test_without_clone_files_the_fd_stays_open():
    fd = os.open("/dev/null", os.O_RDWR)
    try:
        assert reap(P.clone(os.close, args=(fd,))) == 0
        assert os.write(fd, b"x") == 1
    finally:
        os.close(fd)


def test_clone_fs_shares_cwd_and_umask(tmp_path):
    here = os.getcwd()
    old = os.umask(0o022)
    try:
        def child():
            os.chdir(tmp_path)
            os.umask(0o077)
        assert reap(P.clone(child, P.CLONE_FS | signal.SIGCHLD)) == 0
        assert os.getcwd() == str(tmp_path)
        assert os.umask(0o022) == 0o077
    finally:
        os.chdir(here)
        os.umask(old)


def test_without_clone_fs_cwd_is_private(tmp_path):
    here = os.getcwd()
    assert reap(P.clone(os.chdir, args=(str(tmp_path),))) == 0
    assert os.getcwd() == here


@pytest.fixture
def exit_signal_log():
    """Records the exit signals the parent receives (SIGUSR1's default
    action would terminate the test process)."""
    got = []
    sigs = (signal.SIGUSR1, signal.SIGUSR2, signal.SIGRTMIN + 2)
    old = {s: signal.signal(s, lambda n, f: got.append(n)) for s in sigs}
    yield got
    for s, h in old.items():
        signal.signal(s, h)


@pytest.mark.parametrize("sig", [0, signal.SIGUSR1, signal.SIGRTMIN + 2])
def test_other_exit_signals_need_wall(sig, exit_signal_log):
    pid = P.clone(lambda: 9, sig)
    with pytest.raises(ChildProcessError):
        os.waitpid(pid, 0)          # the kernel's rule: needs __WALL/__WCLONE
    assert reap(pid) == 9
    assert exit_signal_log == ([sig] if sig else [])


def test_wclone_finds_only_clone_children(exit_signal_log):
    pid = P.clone(lambda: 4, signal.SIGUSR2)
    assert reap(pid, P.WCLONE) == 4
    plain = P.clone(lambda: 5)
    time.sleep(0.05)
    with pytest.raises(ChildProcessError):
        P.waitpid(-1, P.WCLONE | os.WNOHANG)
    assert reap(plain, 0) == 5


def test_clone_vfork_without_vm_suspends_the_parent():
    t0 = time.monotonic()
    box = []

    def child():
        time.sleep(0.3)
        return 3
    pid = P.clone(child, P.CLONE_VFORK | signal.SIGCHLD)
    box.append(time.monotonic() - t0)
    assert box[0] >= 0.3
    assert reap(pid) == 3


def test_clone_parent_makes_a_sibling():
    """The child of CLONE_PARENT belongs to our parent, so we run the test in
    an os.fork() child and let the test process (its parent) reap it."""
    r, w = os.pipe()
    middle = os.fork()
    if middle == 0:
        try:
            pid = P.clone(lambda: 0, P.CLONE_PARENT | signal.SIGCHLD)
            os.write(w, str(pid).encode())
        finally:
            os._exit(0)
    os.close(w)
    sibling = int(os.read(r, 32))
    os.close(r)
    assert reap(middle) == 0
    assert reap(sibling) == 0          # it was ours all along


def test_raw_clone_fixes_the_tid_in_glibc_thread_descriptor():
    """A raw clone (CLONE_FILES forces it) must leave the child's own TID in
    its glibc thread descriptor, as glibc's fork() does."""
    if not pyclone._clone.tid_fix_available():
        pytest.skip("this glibc does not publish _thread_db_pthread_tid")
    libc = ctypes.CDLL(None)
    desc = (ctypes.c_uint32 * 3).in_dll(libc, "_thread_db_pthread_tid")
    libc.pthread_self.restype = ctypes.c_void_p
    r, w = os.pipe()

    def child():
        slot = ctypes.c_int.from_address(libc.pthread_self() + desc[2]).value
        os.write(w, f"{slot} {os.getpid()}".encode())
    pid = P.clone(child, P.CLONE_FILES | signal.SIGCHLD)
    assert reap(pid) == 0
    os.close(w)
    slot, mypid = os.read(r, 64).split()
    os.close(r)
    assert slot == mypid


def test_deep_recursion_is_a_recursion_error_in_the_child():
    def child():
        def f(n):
            return f(n + 1)
        try:
            f(0)
        except RecursionError:
            return 33
    assert reap(P.clone(child)) == 33


def test_stack_overflow_is_a_sigsegv_of_the_child(stack_hog):
    pid = P.clone(overflow_the_stack, FLAGS, args=(stack_hog,))
    assert reap(pid) == -signal.SIGSEGV
    assert parent_is_healthy()


def test_tcp_and_getaddrinfo_in_the_child():
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(1)
    port = srv.getsockname()[1]

    def child():
        socket.getaddrinfo("localhost", port)
        with socket.create_connection(("127.0.0.1", port)) as c:
            c.sendall(b"hello")
    pid = P.clone(child)
    conn, _ = srv.accept()
    assert conn.recv(10) == b"hello"
    conn.close()
    srv.close()
    assert reap(pid) == 0


# ---- namespaces (root on our machines; skipped with a reason elsewhere) ----

def _pipe_result(fn, flags):
    r, w = os.pipe()

    def child():
        os.write(w, str(fn()).encode())
    pid = P.clone(child, flags | signal.SIGCHLD)
    os.close(w)
    with os.fdopen(r) as f:
        out = f.read()
    assert reap(pid) == 0
    return out


@needs_root
def test_newuts_hostname_is_private():
    mine = socket.gethostname()

    def child():
        socket.sethostname("pyclone-child")
        return socket.gethostname()
    assert _pipe_result(child, P.CLONE_NEWUTS) == "pyclone-child"
    assert socket.gethostname() == mine


@needs_root
def test_newpid_child_is_pid_1():
    assert _pipe_result(os.getpid, P.CLONE_NEWPID) == "1"


@needs_root
def test_newnet_has_only_loopback():
    assert _pipe_result(lambda: sorted(n for _, n in socket.if_nameindex()), P.CLONE_NEWNET) == "['lo']"


@needs_root
@pytest.mark.parametrize("name,flag", [("uts", "CLONE_NEWUTS"), ("ipc", "CLONE_NEWIPC"),
                                       ("mnt", "CLONE_NEWNS"), ("net", "CLONE_NEWNET"),
                                       ("cgroup", "CLONE_NEWCGROUP"), ("pid", "CLONE_NEWPID"),
                                       ("user", "CLONE_NEWUSER")])
def test_each_namespace_flag_gives_a_new_namespace(name, flag):
    mine = os.readlink(f"/proc/self/ns/{name}")
    # A new PID namespace applies to the child itself (it is its pid 1).
    theirs = _pipe_result(lambda: os.readlink(f"/proc/self/ns/{name}"), getattr(P, flag))
    assert theirs != mine and theirs.startswith(f"{name}:[")


def test_newuser_without_maps_sees_the_overflow_uid():
    with open("/proc/sys/kernel/overflowuid") as f:
        overflow = f.read().strip()
    assert _pipe_result(os.getuid, P.CLONE_NEWUSER) == overflow


# The closing flush calls an io.TextIOWrapper's flush method directly (it
# writes fewer pages); it must still be what stream.flush() would call.

def _written_by_child(make_child):
    """What a fork-mode child wrote to a pipe, read once it is reaped;
    make_child(write_fd) gives its callable."""
    r, w = os.pipe()
    try:
        assert reap(P.clone(make_child(w))) == 0
    finally:
        os.close(w)
    with os.fdopen(r, "rb") as f:
        return f.read()


def test_closing_flush_of_a_text_stream_writes_its_pending_text(monkeypatch):
    def make_child(w):
        stream = io.TextIOWrapper(io.FileIO(w, "w", closefd=False), write_through=False)
        assert type(stream) is io.TextIOWrapper
        monkeypatch.setattr(sys, "stdout", stream)
        return lambda: print("from the child", end="") or 0
    assert _written_by_child(make_child) == b"from the child"


def test_closing_flush_finds_a_flush_set_on_the_stream_itself(monkeypatch):
    def make_child(w):
        stream = io.TextIOWrapper(io.BytesIO())
        monkeypatch.setattr(sys, "stdout", stream)

        def child():
            stream.flush = lambda: os.write(w, b"own flush")   # in the instance's __dict__
            return 0
        return child
    assert _written_by_child(make_child) == b"own flush"
