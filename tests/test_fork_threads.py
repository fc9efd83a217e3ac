"""Fork mode in a process with other threads: as safe as os.fork().

A raw clone skips glibc's fork-time lock handling; with threads inside
malloc (sqlite with the GIL released) and one malloc arena, its children
hang (benchmarks/fork_with_threads.py --method raw shows it: 60 of 150 on
our machine).  pyclone goes through glibc's fork() for these flags."""
import json
import os
import signal
import subprocess
import sys
import threading
import warnings

import pytest

import pyclone
from conftest import needs_root, reap, wait_single_threaded

SCRIPT = os.path.join(os.path.dirname(__file__), "..", "benchmarks", "fork_with_threads.py")


def run_stress(flags):
    env = dict(os.environ, GLIBC_TUNABLES="glibc.malloc.arena_max=1")
    out = subprocess.run([sys.executable, SCRIPT, "--flags", flags, "--clones", "150",
                          "--child-timeout", "5"],
                         capture_output=True, text=True, env=env, timeout=240)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


@pytest.mark.timeout(300)
@pytest.mark.parametrize("flags", ["plain", pytest.param("newuts", marks=needs_root),
                                   pytest.param("newpid", marks=needs_root)])
def test_no_child_hangs_with_sqlite_threads_and_one_arena(flags):
    result = run_stress(flags)
    assert result["clones"] == 150
    assert result["hangs"] == 0, result
    assert result["errors"] == 0, result


@pytest.fixture
def busy_thread():
    stop = threading.Event()
    t = threading.Thread(target=stop.wait)
    t.start()
    yield
    stop.set()
    t.join()


def test_raw_clone_with_threads_warns(busy_thread):
    with pytest.warns(RuntimeWarning, match="raw clone.*deadlock"):
        pid = pyclone.clone(lambda: 3, pyclone.CLONE_FILES | signal.SIGCHLD)
    assert reap(pid) == 3


def test_fork_path_with_threads_warns_like_os_fork(busy_thread):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        pid = pyclone.clone(lambda: 4)
    assert reap(pid) == 4
    deprecations = [w for w in caught if issubclass(w.category, DeprecationWarning)]
    if sys.version_info >= (3, 12):
        assert len(deprecations) == 1
        assert "multi-threaded" in str(deprecations[0].message)
    else:
        assert deprecations == []          # os.fork() warns from 3.12 on
    assert not [w for w in caught if issubclass(w.category, RuntimeWarning)]


# pytest-timeout's thread method is a thread of its own: not here.
@pytest.mark.timeout(60, method="signal")
def test_single_threaded_raw_clone_does_not_warn():
    wait_single_threaded()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        pid = pyclone.clone(lambda: 5, pyclone.CLONE_FILES | signal.SIGCHLD)
    assert reap(pid) == 5


def test_warning_filter_error_stops_the_raw_clone(busy_thread):
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        with pytest.raises(RuntimeWarning):
            pyclone.clone(lambda: 0, pyclone.CLONE_FILES | signal.SIGCHLD)
    with pytest.raises(ChildProcessError):
        os.waitpid(-1, os.WNOHANG | pyclone.WALL)


@needs_root
def test_newpid_with_threads_goes_through_an_intermediate(busy_thread):
    """The real child is still ours (CLONE_PARENT from the intermediate),
    pid 1 in its namespace, and the intermediate is reaped."""
    r, w = os.pipe()
    pid = pyclone.clone(lambda: os.write(w, str(os.getpid()).encode()) and 9,
                        pyclone.CLONE_NEWPID | signal.SIGCHLD)
    os.close(w)
    assert os.read(r, 10) == b"1"
    os.close(r)
    assert reap(pid, 0) == 9
    with pytest.raises(ChildProcessError):
        os.waitpid(-1, os.WNOHANG | pyclone.WALL)


@needs_root
def test_intermediate_path_warns_like_os_fork_too(busy_thread):
    """CLONE_NEWPID with threads: glibc's fork() of an intermediate, so the
    same warning as os.fork() (3.12+)."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        pid = pyclone.clone(lambda: 4, pyclone.CLONE_NEWPID | signal.SIGCHLD)
    assert reap(pid, 0) == 4
    deprecations = [w for w in caught if issubclass(w.category, DeprecationWarning)]
    assert len(deprecations) == (1 if sys.version_info >= (3, 12) else 0)


def _outcome_under_error_filter(fork):
    """'returned' or 'raised' for fork() with a DeprecationWarning error
    filter; the child is reaped either way (it exists in both cases)."""
    with warnings.catch_warnings():
        warnings.simplefilter("error", DeprecationWarning)
        try:
            pid = fork()
        except DeprecationWarning:
            outcome = "raised"
        else:
            if pid == 0:
                os._exit(4)
            outcome = "returned"
    got, status = os.waitpid(-1, 0)
    assert os.waitstatus_to_exitcode(status) == 4
    return outcome


def test_error_filter_outcome_matches_os_fork(busy_thread):
    """3.12-3.14's os.fork drops the warning under an error filter and returns
    the pid; 3.15's raises it with the child already made.  clone() does what
    this interpreter's os.fork does."""
    theirs = _outcome_under_error_filter(os.fork)
    ours = _outcome_under_error_filter(lambda: pyclone.clone(lambda: 4) or 1)
    assert ours == theirs
    assert theirs == ("raised" if sys.version_info >= (3, 15) else "returned")


HOOK_THREAD = """
import os, sys, threading, warnings, pyclone
stop = threading.Event()
os.register_at_fork(after_in_parent=lambda: threading.Thread(target=stop.wait, daemon=True).start())
warnings.simplefilter("always")
counts = []
for fork in (os.fork, lambda: pyclone.clone(lambda: 0)):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        pid = fork()
        if pid == 0:
            os._exit(0)
    os.waitpid(pid, 0)
    counts.append(sum(issubclass(w.category, DeprecationWarning) for w in caught))
    stop.set()
    for t in threading.enumerate():
        if t is not threading.main_thread():
            t.join()
    while len(os.listdir("/proc/self/task")) > 1:
        pass
    stop.clear()
print(counts)
"""


def test_thread_started_by_an_at_fork_hook_counts_as_for_os_fork():
    """Threads are counted where this version's os.fork counts them: before
    the after-in-parent hooks (3.12, 3.13.1+) or after them (3.13.0)."""
    out = subprocess.run([sys.executable, "-c", HOOK_THREAD], capture_output=True, text=True,
                         timeout=30)
    assert out.returncode == 0, out.stderr
    theirs, ours = json.loads(out.stdout)
    assert ours == theirs
