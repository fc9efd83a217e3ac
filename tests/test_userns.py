"""Namespaces made usable: uid/gid maps written before the callable runs,
unprivileged sandboxes, and pdeathsig with its race closed."""
import ctypes
import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest

import pyclone as P
from pyclone import Child
from conftest import in_forked_child, needs_root

with open("/proc/sys/kernel/overflowuid") as _f:
    OVERFLOW_UID = int(_f.read())


def ids():
    with open("/proc/self/uid_map") as f:
        uid_map = f.read().split()
    with open("/proc/self/setgroups") as f:
        setgroups = f.read().strip()
    return os.getuid(), os.getgid(), uid_map, setgroups


def userns_works():
    try:
        return P.run(lambda: 0, flags=P.CLONE_NEWUSER | signal.SIGCHLD) == 0
    except PermissionError:
        return False


needs_userns = pytest.mark.skipif(not userns_works(),
                                  reason="user namespaces are disabled on this machine")


@needs_userns
def test_without_maps_the_child_sees_the_overflow_uid():
    uid, gid, uid_map, _ = P.run(ids, flags=P.CLONE_NEWUSER | signal.SIGCHLD)
    assert (uid, gid, uid_map) == (OVERFLOW_UID, OVERFLOW_UID, [])


@needs_userns
@pytest.mark.parametrize("flags", [signal.SIGCHLD, P.CLONE_VM | signal.SIGCHLD],
                         ids=["fork", "thread"])
def test_maps_are_in_place_before_the_callable(flags):
    """Our own ids mapped to 0 inside: the child is root there at once."""
    outside_uid, outside_gid = os.getuid(), os.getgid()
    with Child(ids, flags=flags | P.CLONE_NEWUSER,
               uid_map=[(0, outside_uid, 1)], gid_map=[(0, outside_gid, 1)]).start() as c:
        pass
    assert c.exitcode == 0, c.exception
    uid, gid, uid_map, _ = c.result
    assert (uid, gid) == (0, 0)
    assert uid_map == ["0", str(outside_uid), "1"]


@needs_root
def test_ranges_of_ids_can_be_mapped():
    """A privileged parent may map whole ranges; the child, root in its
    namespace, may then become any mapped user."""
    r, w = os.pipe()

    def become(uid):
        os.setgid(uid)
        os.setuid(uid)
        os.read(r, 1)           # the parent looks at us from outside now
        return os.getuid()
    try:
        with Child(become, (5,), flags=P.CLONE_NEWUSER | signal.SIGCHLD,
                   uid_map=[(0, 0, 1), (1, 200000, 1000)],
                   gid_map=[(0, 0, 1), (1, 200000, 1000)]).start() as c:
            outside = None
            for _ in range(3000):
                with open(f"/proc/{c.pid}/status") as f:
                    outside = [line.split()[1] for line in f if line.startswith("Uid:")][0]
                if outside != "0":
                    break
                time.sleep(0.01)
            os.write(w, b"x")
    finally:
        os.close(r)
        os.close(w)
    assert c.exitcode == 0, c.exception
    assert (c.result, outside) == (5, "200004")


@needs_root
def test_root_writes_gid_map_without_denying_setgroups():
    with Child(ids, flags=P.CLONE_NEWUSER | signal.SIGCHLD,
               uid_map=[(0, 0, 1)], gid_map=[(0, 0, 1)]).start() as c:
        pass
    assert c.result[3] == "allow"


def _drop_to_nobody():
    os.setgroups([])
    os.setgid(65534)
    os.setuid(65534)
    # setuid made this process non-dumpable: its children's /proc files
    # would belong to root, and the maps could not be written.
    assert ctypes.CDLL(None).prctl(4, 1, 0, 0, 0) == 0      # PR_SET_DUMPABLE


@needs_userns
@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to drop to an unprivileged user")
def test_rootless_sandbox_with_maps():
    """The getting-started sandbox (docs/getting-started.md), run by an unprivileged user: root inside, in new
    PID, mount, UTS and network namespaces; setgroups denied first."""
    def sandbox():
        _drop_to_nobody()

        def inside():
            import socket
            socket.sethostname("sandbox")
            return (os.getpid(), os.getuid(), socket.gethostname(),
                    [name for _, name in socket.if_nameindex()], ids()[3])
        flags = (P.CLONE_NEWUSER | P.CLONE_NEWPID | P.CLONE_NEWNS | P.CLONE_NEWUTS
                 | P.CLONE_NEWNET | signal.SIGCHLD)
        return _run_with_maps(inside, flags)

    out = in_forked_child(sandbox)
    assert out == repr((1, 0, "sandbox", ["lo"], "deny")), out


def _run_with_maps(fn, flags):
    with Child(fn, flags=flags, uid_map=[(0, os.getuid(), 1)],
               gid_map=[(0, os.getgid(), 1)]).start() as c:
        pass
    if c.exception is not None:
        raise c.exception
    return c.result


@needs_userns
@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to drop to an unprivileged user")
def test_unprivileged_map_of_another_uid_is_refused_and_nothing_is_left():
    def attempt():
        _drop_to_nobody()
        try:
            Child(ids, flags=P.CLONE_NEWUSER | signal.SIGCHLD,
                  uid_map=[(0, 0, 1)]).start()
        except PermissionError:
            return f"refused, children left: {_children_count()}"
        return "accepted"
    assert in_forked_child(attempt) == "refused, children left: 0"


def _children_count():
    with open(f"/proc/self/task/{os.getpid()}/children") as f:
        return len(f.read().split())


# pdeathsig: a middle process starts the child and dies; the test is a child
# subreaper so the orphan comes back to it and its end can be seen.
PDEATHSIG = r'''
import ctypes, os, signal, sys, time
import pyclone
libc = ctypes.CDLL(None)
assert libc.prctl(36, 1, 0, 0, 0) == 0              # PR_SET_CHILD_SUBREAPER
slow = sys.argv[1] == "slow"
r, w = os.pipe()
middle = os.fork()
if middle == 0:
    if slow:
        # The child sets pdeathsig only after its parent is gone: only the
        # re-check after prctl can catch that.
        real = pyclone._clone.set_pdeathsig
        def late(sig):
            time.sleep(0.5)
            real(sig)
        pyclone._clone.set_pdeathsig = late
    c = pyclone.Child(time.sleep, (30,), pdeathsig=signal.SIGKILL).start()
    os.write(w, str(c.pid).encode())
    if not slow:
        time.sleep(0.5)         # the child has set pdeathsig by now
    os._exit(0)
os.close(w)
pid = int(os.read(r, 32))
os.waitpid(middle, 0)
t0 = time.monotonic()
got, status = os.waitpid(pid, 0)
print(os.waitstatus_to_exitcode(status), round(time.monotonic() - t0, 1))
'''


@pytest.mark.parametrize("timing", ["fast", "slow"])
def test_pdeathsig_kills_the_child_when_its_parent_dies(timing):
    res = subprocess.run([sys.executable, "-c", textwrap.dedent(PDEATHSIG), timing],
                         capture_output=True, text=True, timeout=60)
    assert res.returncode == 0, res.stderr
    code, waited = res.stdout.split()
    assert int(code) == -signal.SIGKILL
    assert float(waited) < 10


def test_pdeathsig_is_set_in_the_child():
    def current():
        sig = ctypes.c_int()
        ctypes.CDLL(None).prctl(2, ctypes.byref(sig), 0, 0, 0)   # PR_GET_PDEATHSIG
        return sig.value
    with Child(current, pdeathsig=signal.SIGTERM).start() as c:
        pass
    assert c.result == signal.SIGTERM
    with Child(current).start() as c:
        pass
    assert c.result == 0
