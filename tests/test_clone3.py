"""clone3(): pidfds, CLONE_CLEAR_SIGHAND, CLONE_INTO_CGROUP, set_tid,
CLONE_NEWTIME, argument checks and the fallback to clone, in every mode."""
import errno
import os
import platform
import signal
import subprocess
import sys
import textwrap

import pytest

import pyclone as P
from conftest import needs_root, reap, wait_blocked_in

#: (name, flags) of the three modes, as clone3 takes them (no signal byte).
MODES = [("fork", 0), ("borrowed", P.CLONE_VM | P.CLONE_VFORK), ("thread", P.CLONE_VM)]
MODE_IDS = [m[0] for m in MODES]


def block_on(fd):
    os.read(fd, 1)
    return 0


def sigcgt():
    """The caught-signals mask of this task, as the kernel reports it."""
    with open("/proc/thread-self/status") as f:
        for line in f:
            if line.startswith("SigCgt:"):
                return int(line.split()[1], 16)
    raise AssertionError("no SigCgt line")


def sigign():
    with open("/proc/thread-self/status") as f:
        for line in f:
            if line.startswith("SigIgn:"):
                return int(line.split()[1], 16)
    raise AssertionError("no SigIgn line")


def bit(sig):
    return 1 << (sig - 1)


@pytest.mark.parametrize("flags", [m[1] for m in MODES], ids=MODE_IDS)
def test_returns_a_clone_result_without_pidfd_by_default(flags):
    res = P.clone3(lambda: 7, flags)
    assert isinstance(res, P.CloneResult) and res.pidfd is None
    assert reap(res.pid) == 7


@pytest.mark.parametrize("flags", [m[1] for m in MODES], ids=MODE_IDS)
def test_pidfd_waitid_gives_pid_code_and_status(flags):
    res = P.clone3(lambda: 42, flags, pidfd=True)
    try:
        assert isinstance(res.pidfd, int) and res.pidfd >= 0
        assert os.get_inheritable(res.pidfd) is False
        info = os.waitid(os.P_PIDFD, res.pidfd, os.WEXITED)
        assert info.si_pid == res.pid
        assert info.si_code == os.CLD_EXITED and info.si_status == 42
    finally:
        os.close(res.pidfd)


def test_pidfd_also_from_the_flag():
    res = P.clone3(lambda: 3, P.CLONE_PIDFD)
    try:
        assert res.pidfd is not None
        assert os.waitid(os.P_PIDFD, res.pidfd, os.WEXITED).si_status == 3
    finally:
        os.close(res.pidfd)


@pytest.mark.parametrize("flags", [0, P.CLONE_VM], ids=["fork", "thread"])
def test_pidfd_send_signal_kills_the_child(flags):
    r, w = os.pipe()
    try:
        res = P.clone3(block_on, flags, pidfd=True, args=(r,))
        # A CLONE_VM child is killed only at a known safe point: blocked in
        # read() on a pipe nobody writes to.
        wait_blocked_in(res.pid, "read")
        signal.pidfd_send_signal(res.pidfd, signal.SIGKILL)
        info = os.waitid(os.P_PIDFD, res.pidfd, os.WEXITED)
        assert info.si_code == os.CLD_KILLED and info.si_status == signal.SIGKILL
        os.close(res.pidfd)
    finally:
        os.close(r)
        os.close(w)


@needs_root
def test_nspid_of_a_new_pid_namespace_child_in_fdinfo():
    r, w = os.pipe()
    try:
        res = P.clone3(block_on, P.CLONE_NEWPID, pidfd=True, args=(r,))
        with open(f"/proc/self/fdinfo/{res.pidfd}") as f:
            fields = dict(line.split(":", 1) for line in f.read().splitlines() if ":" in line)
        assert fields["NSpid"].split() == [str(res.pid), "1"]
        os.write(w, b"x")
        assert os.waitid(os.P_PIDFD, res.pidfd, os.WEXITED).si_status == 0
        os.close(res.pidfd)
    finally:
        os.close(r)
        os.close(w)


@pytest.mark.parametrize("api", ["clone3", "clone"])
@pytest.mark.parametrize("flags", [m[1] for m in MODES], ids=MODE_IDS)
def test_clear_sighand_seen_in_sigcgt(flags, api):
    """Handlers are reset, ignored signals stay ignored: read from the
    kernel (/proc), not signal.getsignal(), which answers from Python's
    own table."""
    old_usr1 = signal.signal(signal.SIGUSR1, lambda *a: None)
    old_usr2 = signal.signal(signal.SIGUSR2, signal.SIG_IGN)
    try:
        def masks():
            return ((1 if sigcgt() & bit(signal.SIGUSR1) else 0)
                    | (2 if sigign() & bit(signal.SIGUSR2) else 0))

        def seen(extra):
            if api == "clone3":
                return reap(P.clone3(masks, flags | extra).pid)
            return reap(P.clone(masks, flags | extra | signal.SIGCHLD))
        assert sigcgt() & bit(signal.SIGUSR1)
        assert seen(0) & 1, "without the flag the child keeps the handler"
        cleared = seen(P.CLONE_CLEAR_SIGHAND)
        assert not cleared & 1, "CLONE_CLEAR_SIGHAND left the handler in place"
        assert cleared & 2, "an ignored signal must stay ignored"
    finally:
        signal.signal(signal.SIGUSR1, old_usr1)
        signal.signal(signal.SIGUSR2, old_usr2)


def test_clear_sighand_keeps_ignored_signals_ignored():
    old = signal.signal(signal.SIGUSR2, signal.SIG_IGN)
    try:
        res = P.clone3(lambda: 1 if sigign() & bit(signal.SIGUSR2) else 0,
                       P.CLONE_CLEAR_SIGHAND)
        assert reap(res.pid) == 1
    finally:
        signal.signal(signal.SIGUSR2, old)


def in_cgroup(name):
    with open("/proc/self/cgroup") as f:
        return 1 if any(line.rstrip().endswith("/" + name) for line in f) else 0


@pytest.mark.parametrize("flags", [m[1] for m in MODES], ids=MODE_IDS)
def test_child_starts_in_the_cgroup_given_by_path(cgroup_dir, flags):
    name = os.path.basename(cgroup_dir)
    assert not in_cgroup(name)
    res = P.clone3(in_cgroup, flags, cgroup=cgroup_dir, args=(name,))
    assert reap(res.pid) == 1


def test_child_starts_in_the_cgroup_given_by_fd(cgroup_dir):
    fd = os.open(cgroup_dir, os.O_RDONLY | os.O_DIRECTORY)
    try:
        res = P.clone3(in_cgroup, cgroup=fd, args=(os.path.basename(cgroup_dir),))
        assert reap(res.pid) == 1
        os.fstat(fd)            # still open: the caller's fd is the caller's
    finally:
        os.close(fd)


def test_missing_cgroup_is_a_clear_file_not_found_error(tmp_path):
    missing = tmp_path / "no-such-cgroup"
    with pytest.raises(FileNotFoundError, match="does not exist.*cgroup v2"):
        P.clone3(lambda: 0, cgroup=str(missing))


def test_a_plain_directory_is_not_a_cgroup(tmp_path):
    with pytest.raises(ValueError, match="not a cgroup v2 directory"):
        P.clone3(lambda: 0, cgroup=tmp_path)


def _free_pid():
    """A pid that no task uses now (the kernel may still take it first)."""
    with open("/proc/sys/kernel/pid_max") as f:
        pid_max = int(f.read())
    with open("/proc/sys/kernel/ns_last_pid") as f:
        last = int(f.read())
    for pid in range(pid_max - 1, last, -1):
        if not os.path.exists(f"/proc/{pid}"):
            return pid
    pytest.skip("no free pid found")


@needs_root
@pytest.mark.parametrize("flags", [m[1] for m in MODES], ids=MODE_IDS)
def test_set_tid_chooses_the_pid(flags):
    want = _free_pid()
    res = P.clone3(lambda: 1 if os.getpid() == want else 0, flags, set_tid=[want])
    assert res.pid == want
    assert reap(want) == 1


@needs_root
def test_set_tid_of_a_pid_in_use_is_file_exists_error():
    with pytest.raises(FileExistsError, match="already in use"):
        P.clone3(lambda: 0, set_tid=[os.getpid()])


@needs_root
def test_set_tid_in_a_new_pid_namespace_is_innermost_first():
    outer = _free_pid()
    res = P.clone3(lambda: os.getpid(), P.CLONE_NEWPID, set_tid=[1, outer])
    assert res.pid == outer
    assert reap(outer) == 1


def _time_ns(which="time"):
    return os.readlink(f"/proc/self/ns/{which}")


@needs_root
def test_newtime_fork_mode_child_is_in_a_new_time_namespace():
    parent = _time_ns()
    res = P.clone3(lambda: 1 if _time_ns() != parent else 0, P.CLONE_NEWTIME)
    assert reap(res.pid) == 1


@needs_root
@pytest.mark.parametrize("flags", [m[1] for m in MODES[1:]], ids=MODE_IDS[1:])
def test_newtime_with_clone_vm_applies_to_the_childs_children(flags):
    """The clock offsets live in the address space's vDSO data, which a
    CLONE_VM child shares: the kernel keeps it in the parent's time
    namespace and puts only its future children in the new one."""
    parent = _time_ns()

    def where():
        return ((1 if _time_ns() == parent else 0)
                | (2 if _time_ns("time_for_children") != parent else 0))
    res = P.clone3(where, flags | P.CLONE_NEWTIME)
    assert reap(res.pid) == 3


@pytest.mark.parametrize("flags, match", [
    (0x11, "low byte.*exit_signal"),
    (P.CLONE_INTO_CGROUP, "pass cgroup="),
    (P.CLONE_SETTLS, "managed by pyclone"),
    (P.CLONE_VM | P.CLONE_SIGHAND | P.CLONE_THREAD | P.CLONE_PIDFD, "CLONE_PIDFD cannot"),
    (P.CLONE_SIGHAND, "requires CLONE_VM"),
    (-1, "negative"),
])
def test_bad_flags_are_value_errors_before_any_call(flags, match):
    with pytest.raises(ValueError, match=match):
        P.clone3(lambda: 0, flags)


def test_pidfd_with_clone_thread_is_refused_before_any_call():
    with pytest.raises(ValueError, match="CLONE_PIDFD cannot"):
        P.clone3(lambda: 0, P.CLONE_VM | P.CLONE_SIGHAND | P.CLONE_THREAD, pidfd=True)


def test_cgroup_with_clone_thread_is_refused(tmp_path):
    with pytest.raises(ValueError, match="CLONE_INTO_CGROUP.*CLONE_THREAD"):
        P.clone3(lambda: 0, P.CLONE_VM | P.CLONE_SIGHAND | P.CLONE_THREAD, cgroup=3)


@pytest.mark.parametrize("kwargs, exc, match", [
    ({"exit_signal": 65}, ValueError, "not a signal"),
    ({"exit_signal": "SIGCHLD"}, TypeError, "exit_signal must be an int"),
    ({"set_tid": []}, ValueError, "1 to 32"),
    ({"set_tid": [0]}, ValueError, "out of range"),
    ({"set_tid": "12"}, TypeError, "sequence of pids"),
    ({"cgroup": -1}, ValueError, "negative"),
    ({"cgroup": 1.5}, TypeError, "cgroup"),
    ({"stack_size": 1, "flags": P.CLONE_VM}, ValueError, "MIN_STACK_SIZE"),
    ({"stack_size": 0}, ValueError, "positive"),
])
def test_bad_arguments(kwargs, exc, match):
    with pytest.raises(exc, match=match):
        P.clone3(lambda: 0, **kwargs)


def test_not_callable():
    with pytest.raises(TypeError, match="callable"):
        P.clone3(42)


def test_exit_signal_zero_child_is_found_by_waitpid():
    res = P.clone3(lambda: 5, exit_signal=0)
    assert reap(res.pid) == 5


def test_clone_routes_flags_above_bit_31_through_clone3():
    """strace shows it; here: the flag takes effect through clone()."""
    res = subprocess.run(
        ["strace", "-f", "-e", "trace=clone3", sys.executable, "-c",
         "import pyclone, signal, os\n"
         "pid = pyclone.clone(lambda: 0, pyclone.CLONE_VM | pyclone.CLONE_CLEAR_SIGHAND"
         " | signal.SIGCHLD)\n"
         "os.waitpid(pid, 0)\n"],
        capture_output=True, text=True, timeout=60) if _have_strace() else None
    if res is None:
        pytest.skip("strace is not installed")
    assert res.returncode == 0, res.stderr
    assert "CLONE_CLEAR_SIGHAND" in res.stderr


def _have_strace():
    from shutil import which
    return which("strace") is not None


# The fallback: a seccomp filter makes clone3 fail as an old kernel (ENOSYS)
# or a container runtime (EPERM) would.
FALLBACK = r'''
import ctypes, errno, os, signal, struct, sys
import pyclone as P

class SockFprog(ctypes.Structure):
    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_char_p)]

def filter_clone3(err):
    ins = lambda code, jt, jf, k: struct.pack("=HBBI", code, jt, jf, k)
    prog = b"".join([
        ins(0x20, 0, 0, 4),                 # A = arch
        ins(0x15, 0, 3, 0xC000003E),        # x86-64? else allow
        ins(0x20, 0, 0, 0),                 # A = syscall number
        ins(0x15, 0, 1, 435),               # clone3?
        ins(0x06, 0, 0, 0x00050000 | err),  # return -err
        ins(0x06, 0, 0, 0x7FFF0000),        # allow
    ])
    libc = ctypes.CDLL(None, use_errno=True)
    assert libc.prctl(38, 1, 0, 0, 0) == 0          # PR_SET_NO_NEW_PRIVS
    fprog = SockFprog(len(prog) // 8, prog)
    assert libc.prctl(22, 2, ctypes.byref(fprog), 0, 0) == 0, ctypes.get_errno()

err = int(sys.argv[1])
filter_clone3(err)
out = []
modes = [("fork", 0), ("borrowed", P.CLONE_VM | P.CLONE_VFORK)]
if err == errno.ENOSYS:
    # glibc's pthread_create, which makes the host threads, falls back to
    # clone on ENOSYS only (so on EPERM no thread could start at all).
    modes.append(("thread", P.CLONE_VM))
for name, flags in modes:
    r = P.clone3(lambda: 9, flags, pidfd=True)
    out.append(f"{name}:{os.waitid(os.P_PIDFD, r.pidfd, os.WEXITED).si_status}")
    os.close(r.pidfd)
    pid = P.clone(lambda: 8, flags | P.CLONE_CLEAR_SIGHAND | signal.SIGCHLD)
    out.append(f"{name}-clear:{os.waitstatus_to_exitcode(P.waitpid(pid)[1])}")
for kw in ({"set_tid": [4242]}, {"flags": P.CLONE_NEWTIME}):
    try:
        P.clone3(lambda: 0, **kw)
        out.append("no error")
    except NotImplementedError as exc:
        out.append("NIE:" + str(exc))
    except PermissionError as exc:
        out.append("EPERM:" + str(exc))
print("|".join(out))
'''


@pytest.mark.skipif(platform.machine() != "x86_64", reason="the seccomp filter is x86-64's")
@pytest.mark.parametrize("err", [errno.ENOSYS, errno.EPERM], ids=["ENOSYS", "EPERM"])
def test_fallback_to_clone_when_clone3_is_missing_or_filtered(err):
    res = subprocess.run([sys.executable, "-c", textwrap.dedent(FALLBACK), str(err)],
                         capture_output=True, text=True, timeout=60)
    assert res.returncode == 0, res.stderr
    parts = res.stdout.strip().split("|")
    worked = ["fork:9", "fork-clear:8", "borrowed:9", "borrowed-clear:8"]
    if err == errno.ENOSYS:
        worked += ["thread:9", "thread-clear:8"]
    assert parts[:-2] == worked
    if err == errno.ENOSYS:
        assert parts[-2].startswith("NIE:set_tid need the clone3"), parts[-2]
        assert parts[-1].startswith("NIE:CLONE_NEWTIME need the clone3"), parts[-1]
    else:
        assert parts[-2].startswith("EPERM:") and parts[-1].startswith("EPERM:"), parts


def test_pidfd_from_a_process_with_threads_keeps_glibc_fork():
    """With other threads alive pyclone forks with glibc's fork() (no
    RuntimeWarning about a raw clone) and opens the pidfd right after."""
    import threading
    import warnings
    stop = threading.Event()
    t = threading.Thread(target=stop.wait)
    t.start()
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            res = P.clone3(lambda: 6, pidfd=True)
        assert not [w for w in caught if w.category is RuntimeWarning], caught
        info = os.waitid(os.P_PIDFD, res.pidfd, os.WEXITED)
        assert (info.si_pid, info.si_status) == (res.pid, 6)
        os.close(res.pidfd)
    finally:
        stop.set()
        t.join()
