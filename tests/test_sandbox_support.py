"""What sandboxes and container tools need from Child and wait4(): resource
usage, the fds pyclone gives a child, and a child that closes fds."""
import os
import resource
import signal

import pytest

import pyclone as P
from pyclone import Child

FLAGS = {
    "fork": signal.SIGCHLD,
    "borrowed": P.CLONE_VM | P.CLONE_VFORK | signal.SIGCHLD,
    "thread": P.CLONE_VM | signal.SIGCHLD,
}


def burn(seconds=0.05):
    """Uses this task's CPU time until its own account shows ``seconds``."""
    while True:
        usage = resource.getrusage(resource.RUSAGE_SELF)
        if usage.ru_utime + usage.ru_stime >= seconds:
            return usage.ru_utime + usage.ru_stime


def open_fds():
    """This task's open fds (not the one os.listdir used to read them)."""
    fds = set()
    for name in os.listdir("/proc/self/fd"):
        try:
            os.fstat(int(name))
        except OSError:
            continue
        fds.add(int(name))
    return fds


@pytest.mark.parametrize("mode", FLAGS)
def test_child_rusage_is_the_reaped_childs(mode):
    c = Child(burn, flags=FLAGS[mode])
    assert c.rusage is None
    with c.start():
        pass
    assert c.exitcode == 0
    used = c.result
    assert isinstance(c.rusage, resource.struct_rusage)
    # The kernel's account of the child includes what the child itself read.
    assert c.rusage.ru_utime + c.rusage.ru_stime >= used - 0.002
    assert c.rusage.ru_maxrss > 0


def test_rusage_of_a_thread_group_child_is_none():
    with Child(lambda: 1, flags=P.CLONE_VM | P.CLONE_SIGHAND | P.CLONE_THREAD).start() as c:
        pass
    assert c.exitcode == 0 and c.rusage is None


def test_rusage_is_none_after_another_reaper():
    c = Child(lambda: 3).start()
    got, _, usage = os.wait4(c.pid, 0)
    assert got == c.pid and usage.ru_maxrss > 0
    with pytest.warns(RuntimeWarning, match="reaped by someone else"):
        c.join()
    assert c.exitcode == 255 and c.rusage is None
    c.close()


@pytest.mark.parametrize("mode", FLAGS)
def test_wait4(mode):
    pid = P.clone(burn, FLAGS[mode])
    got, status, usage = P.wait4(pid)
    assert got == pid and os.waitstatus_to_exitcode(status) == 0
    assert usage.ru_utime + usage.ru_stime >= 0.048


@pytest.mark.filterwarnings("ignore:this process has .* threads:RuntimeWarning")
def test_wait4_finds_children_with_any_exit_signal():
    pid = P.clone(lambda: 7, 0)         # no exit signal: os.wait4 cannot see it
    with pytest.raises(ChildProcessError):
        os.wait4(pid, os.WNOHANG)
    got, status, usage = P.wait4(pid)
    assert (got, os.waitstatus_to_exitcode(status)) == (pid, 7)
    assert isinstance(usage, resource.struct_rusage)


def test_wait4_nohang_and_thread_children():
    r, w = os.pipe()
    try:
        pid = P.clone(os.read, P.CLONE_VM | signal.SIGCHLD, args=(r, 1))
        got, status, usage = P.wait4(pid, P.WALL | os.WNOHANG)
        assert (got, status) == (0, 0) and usage.ru_maxrss == 0
        os.write(w, b"x")
        assert P.wait4(pid)[0] == pid
        tid = P.clone(os.read, P.CLONE_VM | P.CLONE_SIGHAND | P.CLONE_THREAD, args=(r, 1))
        assert P.wait4(tid, os.WNOHANG)[0] == 0
        os.write(w, b"x")
        got, status, usage = P.wait4(tid)
        assert (got, os.waitstatus_to_exitcode(status), usage) == (tid, 0, None)
    finally:
        os.close(r)
        os.close(w)


def test_wait4_bad_arguments():
    with pytest.raises(TypeError, match="pid"):
        P.wait4("1")
    with pytest.raises(ValueError, match="wait flags"):
        P.wait4(-1, -1)


# -- the fds pyclone gives the child -------------------------------------

@pytest.mark.parametrize("pidfd", [True, False], ids=["pidfd", "pipe-sentinel"])
@pytest.mark.parametrize("mode", ["fork", "thread"])
def test_own_fds_are_exactly_what_pyclone_adds(mode, pidfd):
    def target():
        return open_fds(), set(c.own_fds)
    c = Child(target, flags=FLAGS[mode], pidfd=pidfd)
    assert c.own_fds == frozenset()
    before = open_fds()
    with c.start():
        pass
    assert c.exitcode == 0
    in_child, own = c.result
    assert own == set(c.own_fds)
    assert in_child == before | own
    expected = (0 if mode == "thread" else 1) + (0 if pidfd else 1)
    assert len(own) == expected


@pytest.mark.parametrize("pidfd", [True, False], ids=["pidfd", "pipe-sentinel"])
@pytest.mark.parametrize("mode", ["fork", "thread"])
def test_a_target_that_closes_all_but_own_fds_works(mode, pidfd):
    def target():
        keep = {0, 1, 2} | c.own_fds
        for fd in open_fds() - keep:
            os.close(fd)
        return sorted(open_fds())
    c = Child(target, flags=FLAGS[mode], pidfd=pidfd)
    with c.start():
        pass
    assert c.exitcode == 0, c.exception
    assert c.result == sorted({0, 1, 2} | c.own_fds)


def test_without_a_result_channel_nothing_is_given(capfd):
    def target():
        return open_fds()
    before = open_fds()
    with Child(target, result_channel=False).start() as c:
        assert c.own_fds == frozenset()
    assert (c.exitcode, c.result, c.exception) == (0, None, None)
    with Child(lambda: 1 / 0, result_channel=False).start() as c:
        pass
    assert (c.exitcode, c.exception) == (1, None)
    assert "ZeroDivisionError" in capfd.readouterr().err
    assert open_fds() == before


def test_closing_the_result_channel_is_explained(capfd):
    def target():
        for fd in c.own_fds:
            os.close(fd)
        return 0
    c = Child(target)       # bound before start(): the target reads it
    with c.start():
        pass
    assert c.exitcode == 1 and c.result is None
    err = capfd.readouterr().err
    assert "the target closed fd" in err and "result channel" in err
    assert "own_fds" in err and "result_channel=False" in err
    assert "Traceback" not in err


def test_a_reused_fd_number_is_not_written(tmp_path, capfd):
    # The target closes the result channel and opens a file of its own
    # under the same number: pyclone must not write its pickle into it.
    path = tmp_path / "mine"

    def target():
        (fd,) = c.own_fds
        mine = os.open(path, os.O_RDWR | os.O_CREAT)
        os.dup2(mine, fd)
        os.close(mine)
        return "result"
    c = Child(target)
    with c.start():
        pass
    assert c.exitcode == 1
    assert path.read_bytes() == b""
    assert "the target closed fd" in capfd.readouterr().err


def test_closing_the_pipe_sentinel_is_explained(capfd):
    def target():
        for fd in c.own_fds:
            os.close(fd)
    c = Child(target, flags=FLAGS["thread"], pidfd=False)
    with c.start():
        pass
    assert c.exitcode == 0
    err = capfd.readouterr().err
    assert "end-of-child pipe" in err and "own_fds" in err


def test_an_exit_without_returning_has_rusage_too():
    with Child(lambda: os._exit(3), pidfd=False).start() as c:
        pass
    assert c.exitcode == 3 and c.rusage.ru_maxrss > 0
