"""Child and run(): the multiprocessing.Process-shaped handle, in every mode."""
import asyncio
import gc
import multiprocessing.connection
import os
import pickle
import select
import selectors
import signal
import subprocess
import sys
import textwrap
import time

import pytest

import pyclone as P
from pyclone import Child, ChildError

#: Every mode, plus children whose exit signal is not SIGCHLD.
FLAGS = {
    "fork": signal.SIGCHLD,
    "fork-nosignal": 0,
    "borrowed": P.CLONE_VM | P.CLONE_VFORK | signal.SIGCHLD,
    "thread": P.CLONE_VM | signal.SIGCHLD,
    "thread-nosignal": P.CLONE_VM,
    "thread-group": P.CLONE_VM | P.CLONE_SIGHAND | P.CLONE_THREAD,
}
VM = {k for k, v in FLAGS.items() if v & P.CLONE_VM}
CONCURRENT = [k for k in FLAGS if k != "borrowed"]


def double(x):
    return 2 * x


class Marker(Exception):
    pass


MARKER = Marker("from the child")


def raise_marker():
    raise MARKER


def block_on(fd):
    os.read(fd, 1)


@pytest.fixture
def gate():
    r, w = os.pipe()
    yield r, w
    os.close(r)
    os.close(w)


@pytest.mark.parametrize("mode", FLAGS)
def test_result_exitcode_and_pid(mode):
    with Child(double, (21,), flags=FLAGS[mode]).start() as c:
        assert c.pid > 0
    assert c.exitcode == 0 and c.result == 42 and c.exception is None
    assert not c.is_alive()
    assert "exitcode=0" in repr(c)


@pytest.mark.parametrize("mode", ["fork", "thread"])
def test_pidfd_and_sentinel(mode):
    with Child(double, (1,), flags=FLAGS[mode]).start() as c:
        assert c.pidfd is not None and c.sentinel == c.pidfd
        c.join()
        os.fstat(c.pidfd)       # the pidfd stays valid until close()
    assert c.pidfd is None


def test_no_pidfd_when_not_asked():
    with Child(double, (1,), pidfd=False).start() as c:
        assert c.pidfd is None
        assert multiprocessing.connection.wait([c.sentinel], timeout=30) == [c.sentinel]
    assert c.result == 2


@pytest.mark.parametrize("mode", ["fork", "borrowed", "thread"])
def test_result_by_reference_under_clone_vm_by_pickle_otherwise(mode):
    payload = [object()]
    with Child(lambda: payload, flags=FLAGS[mode]).start() as c:
        pass
    if mode in VM:
        assert c.result is payload
    else:
        assert c.result is not payload and len(c.result) == 1


def test_large_result_crosses_over():
    big = os.urandom(1 << 20) * 24       # 24 MiB: far beyond a pipe's buffer
    with Child(lambda: big).start() as c:
        pass
    assert c.exitcode == 0 and c.result == big


@pytest.mark.parametrize("mode", FLAGS)
def test_exception(mode, capfd):
    with Child(raise_marker, flags=FLAGS[mode]).start() as c:
        pass
    assert c.exitcode == 1 and c.result is None
    if mode in VM:
        assert c.exception is MARKER
    else:
        exc = c.exception
        assert isinstance(exc, ChildError)
        assert exc.pid == c.pid and exc.exc_type == "Marker"
        assert "raise MARKER" in exc.traceback and "from the child" in str(exc)
        again = pickle.loads(pickle.dumps(exc))
        assert (again.pid, again.exc_type, again.traceback) == (exc.pid, "Marker", exc.traceback)
    assert "Marker: from the child" in capfd.readouterr().err


def test_unpicklable_result_becomes_the_exception(capfd):
    with Child(lambda: (lambda: None)).start() as c:
        pass
    assert c.exitcode == 1 and isinstance(c.exception, ChildError)
    assert "cannot be pickled" in capfd.readouterr().err


@pytest.mark.parametrize("mode", FLAGS)
def test_system_exit_gives_its_code(mode):
    with Child(sys.exit, (3,), flags=FLAGS[mode]).start() as c:
        pass
    assert c.exitcode == 3 and c.exception is None


def test_subclass_with_run():
    class Square(Child):
        def __init__(self, n):
            super().__init__()
            self.n = n

        def run(self):
            return self.n * self.n
    with Square(9).start() as c:
        pass
    assert c.result == 81


# Not a CLONE_THREAD child: a signal's default action ends its whole process.
@pytest.mark.parametrize("mode", [m for m in CONCURRENT if m != "thread-group"])
def test_join_timeout_then_terminate(mode, gate):
    c = Child(block_on, (gate[0],), flags=FLAGS[mode]).start()
    t0 = time.monotonic()
    c.join(0.2)
    assert time.monotonic() - t0 >= 0.15
    assert c.is_alive() and c.exitcode is None
    c.terminate()
    c.join()
    assert c.exitcode == -signal.SIGTERM
    c.close()


def test_join_timeout_of_a_thread_group_child(gate):
    c = Child(block_on, (gate[0],), flags=FLAGS["thread-group"]).start()
    c.join(0.1)
    assert c.is_alive()
    os.write(gate[1], b"x")
    c.join(30)
    assert c.exitcode == 0
    c.close()


def test_kill_and_send_signal(gate):
    c = Child(block_on, (gate[0],)).start()
    c.send_signal(signal.SIGUSR1)
    c.join()
    assert c.exitcode == -signal.SIGUSR1
    c.kill()                     # reaped: does nothing, and no pid-reuse risk
    c.close()
    c = Child(block_on, (gate[0],)).start()
    c.kill()
    c.join()
    assert c.exitcode == -signal.SIGKILL
    c.close()


def test_sentinel_with_selectors(gate):
    c = Child(block_on, (gate[0],), flags=FLAGS["thread"]).start()
    with selectors.DefaultSelector() as sel:
        sel.register(c.sentinel, selectors.EVENT_READ)
        assert sel.select(0.05) == []
        os.write(gate[1], b"x")
        assert len(sel.select(30)) == 1
    c.join()
    assert c.exitcode == 0
    c.close()


def test_start_twice_and_join_before_start():
    c = Child(double, (1,))
    with pytest.raises(RuntimeError, match="start"):
        c.join()
    c.start()
    with pytest.raises(RuntimeError, match="only be started once"):
        c.start()
    c.join()
    c.close()


def test_close_refuses_a_running_child(gate):
    c = Child(block_on, (gate[0],)).start()
    with pytest.raises(ValueError, match="join it first"):
        c.close()
    os.write(gate[1], b"x")
    c.join()
    c.close()


def test_wait_async_gathers_children_of_every_mode():
    """Including exit signal 0 children, which asyncio's child watchers
    cannot reap, and a CLONE_THREAD child."""
    async def main():
        children = [Child(time.sleep, (0.2,), flags=f).start() for f in FLAGS.values()]
        t0 = time.monotonic()
        codes = await asyncio.wait_for(
            asyncio.gather(*(c.wait_async() for c in children)), 30)
        return children, codes, time.monotonic() - t0
    children, codes, took = asyncio.run(main())
    assert codes == [0] * len(FLAGS)
    assert took < 5          # concurrent, not one after another forever
    for c in children:
        assert c.exitcode == 0
        c.close()


def test_wait_async_sees_a_killed_child(gate):
    async def main():
        c = Child(block_on, (gate[0],), flags=0).start()
        asyncio.get_running_loop().call_later(0.05, c.kill)
        return c, await asyncio.wait_for(c.wait_async(), 30)
    c, code = asyncio.run(main())
    assert code == -signal.SIGKILL
    c.close()


@pytest.mark.parametrize("mode", ["fork", "borrowed", "thread"])
def test_run_returns_the_result(mode):
    assert P.run(double, 5, flags=FLAGS[mode]) == 10
    assert P.run(lambda a, b=0: a - b, 5, b=2, flags=FLAGS[mode]) == 3


def test_run_reraises():
    with pytest.raises(Marker):
        P.run(raise_marker, flags=FLAGS["thread"])
    with pytest.raises(ChildError) as info:
        P.run(raise_marker)
    assert info.value.exc_type == "Marker"
    with pytest.raises(ChildError, match="SIGKILL"):
        P.run(lambda: os.kill(os.getpid(), signal.SIGKILL))
    with pytest.raises(ChildError, match="status 4"):
        P.run(sys.exit, 4)


def _is_zombie_or_alive(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return None


def test_collected_child_is_reaped():
    c = Child(double, (1,)).start()
    pid = c.pid
    deadline = time.monotonic() + 30
    while _is_zombie_or_alive(pid) != "Z" and time.monotonic() < deadline:
        time.sleep(0.01)
    del c
    gc.collect()
    assert _is_zombie_or_alive(pid) is None


def test_child_collected_while_running_is_reaped_later(gate):
    c = Child(block_on, (gate[0],)).start()
    pid = c.pid
    del c
    gc.collect()
    assert _is_zombie_or_alive(pid) in ("S", "R")
    os.write(gate[1], b"x")
    deadline = time.monotonic() + 30
    while _is_zombie_or_alive(pid) != "Z" and time.monotonic() < deadline:
        time.sleep(0.01)
    with Child(double, (1,)).start():       # start() reaps earlier orphans
        pass
    assert _is_zombie_or_alive(pid) is None


def test_unjoined_child_is_waited_for_at_exit(tmp_path):
    mark = tmp_path / "done"
    code = f"""
        import time, pyclone
        def work():
            time.sleep(0.3)
            open({str(mark)!r}, "w").close()
        c = pyclone.Child(work).start()
        print(c.pid)
    """
    res = subprocess.run([sys.executable, "-c", textwrap.dedent(code)],
                         capture_output=True, text=True, timeout=60)
    assert res.returncode == 0, res.stderr
    assert mark.exists(), "the child was not waited for at exit"
    assert _is_zombie_or_alive(int(res.stdout)) is None


@pytest.mark.parametrize("kwargs, exc, match", [
    ({"target": 1}, TypeError, "callable"),
    ({"flags": "x"}, TypeError, "flags must be an int"),
    ({"flags": P.CLONE_SIGHAND}, ValueError, "requires CLONE_VM"),
    ({"flags": P.CLONE_INTO_CGROUP}, ValueError, "pass cgroup="),
    ({"uid_map": [(0, 0, 1)]}, ValueError, "add CLONE_NEWUSER"),
    ({"uid_map": [(0, 0, 1)], "flags": P.CLONE_NEWUSER | P.CLONE_VM | P.CLONE_VFORK},
     ValueError, "drop CLONE_VFORK"),
    ({"uid_map": [(0, 0)], "flags": P.CLONE_NEWUSER}, ValueError, "inside, outside, count"),
    ({"uid_map": [(0, 0, 0)], "flags": P.CLONE_NEWUSER}, ValueError, "count at least 1"),
    ({"gid_map": 5, "flags": P.CLONE_NEWUSER}, TypeError, "list of"),
    ({"pdeathsig": 99}, ValueError, "not a signal"),
    ({"pdeathsig": 9, "flags": P.CLONE_VM | P.CLONE_SIGHAND | P.CLONE_THREAD},
     ValueError, "CLONE_THREAD"),
    ({"stack_size": 10, "flags": P.CLONE_VM | signal.SIGCHLD}, ValueError, "MIN_STACK_SIZE"),
    ({"stack_size": -10}, ValueError, "positive"),
    ({"stack_size": 4096.0}, TypeError, "stack_size"),
    ({"flags": P.CLONE_PARENT | signal.SIGCHLD}, ValueError, "sibling"),
    ({"cgroup": 2.5}, TypeError, "cgroup"),
])
def test_bad_arguments_fail_in_the_constructor(kwargs, exc, match):
    kwargs.setdefault("target", double)
    with pytest.raises(exc, match=match):
        Child(**kwargs)


def test_missing_cgroup_fails_at_start_and_leaves_nothing(tmp_path):
    c = Child(double, (1,), cgroup=str(tmp_path / "missing"))
    with pytest.raises(FileNotFoundError, match="does not exist"):
        c.start()
    assert c.pid is None


def test_child_in_a_cgroup(cgroup_dir):
    name = os.path.basename(cgroup_dir)

    def where():
        with open("/proc/self/cgroup") as f:
            return [line.rstrip().rsplit("/", 1)[-1] for line in f]
    for flags in (signal.SIGCHLD, P.CLONE_VM | signal.SIGCHLD):
        with Child(where, flags=flags, cgroup=cgroup_dir).start() as c:
            pass
        assert name in c.result
    assert name not in where()


def test_child_reaped_by_someone_else_warns_and_reports_255():
    c = Child(lambda: 3).start()
    got, _ = os.waitpid(c.pid, 0)           # another reaper takes the status
    assert got == c.pid
    with pytest.warns(RuntimeWarning, match="reaped by someone else"):
        c.join()
    assert c.exitcode == 255
    c.close()


def test_without_pidfds_the_pipe_sentinel_serves(monkeypatch):
    from pyclone import _child_request
    monkeypatch.setattr(_child_request, "_pidfd_probe", [False])
    for flags in (signal.SIGCHLD, P.CLONE_VM | signal.SIGCHLD):
        c = Child(lambda: 5, flags=flags).start()
        assert c.pidfd is None
        assert select.select([c.sentinel], [], [], 30)[0] == [c.sentinel]
        c.join()
        assert c.exitcode == 0 and c.result == 5
        c.close()
