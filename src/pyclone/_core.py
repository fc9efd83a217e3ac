"""clone(), waitpid(), wait4() and terminate(): the classic calls.

What `import pyclone` loads, so only what clone() needs, and nothing that
costs milliseconds: _thread rather than threading, _signal rather than
signal (whose enums need enum), annotations left unevaluated, warnings
imported where a warning is given.
"""
from __future__ import annotations

import _thread
import atexit
import os
import sys

from . import _clone, _exit, _rules
from ._cgroup import open_cgroup
from . import flags as F
from ._version import __version__
from .flags import WALL

TYPE_CHECKING = False      # typing.TYPE_CHECKING, without importing typing
if TYPE_CHECKING:          # signal's names, without signal.py's enum import at run time
    from signal import SIGCHLD, SIGTERM
else:
    from _signal import SIGCHLD, SIGTERM

if _clone.VERSION != __version__:
    # As psutil does: a C core of another build must not run Python code it
    # was not written for.
    raise ImportError(f"pyclone's C core {_clone.__file__} is version {_clone.VERSION}, but "
                      f"its Python package is {__version__}: a stale build was left behind; "
                      "reinstall pyclone-linux (pip install --force-reinstall pyclone-linux)")

if TYPE_CHECKING:
    import resource
    from typing import Any, Callable, Dict, Mapping, NoReturn, Optional, Sequence, Tuple

    from ._errors import Extras
    #: What the child runs: (fn, args, kwargs or None); it ends by
    #: pyclone._exit's rules, which the C core knows.
    Plan = Tuple[Callable[..., Any], Tuple[Any, ...], Optional[Dict[str, Any]]]


class _SpareGuard:
    """Lives in a threading.local of each thread that made a CLONE_VM child:
    when the thread ends, its thread-local values are dropped in that thread,
    and this deletes the idle child thread state the C core keeps for it.
    (Dropped in any other thread - CPython clears dead threads' states in a
    fork child - it does nothing: that state is gone or not ours.)"""

    __slots__ = ("ident",)

    def __init__(self) -> None:
        self.ident = _thread.get_ident()

    # Bound at definition: at interpreter exit module globals may be None.
    def __del__(self, _get_ident: Callable[[], int] = _thread.get_ident,
                _drop_spare: Callable[[], None] = _clone.drop_spare) -> None:
        if _get_ident() == self.ident:
            _drop_spare()


_per_thread = _thread._local()         # threading.local
# In a fork child CPython has deleted every other thread state (the idle one
# too; the forking thread's guard survives, so it stays claimed), and the
# host threads and their children are the parent's.
os.register_at_fork(after_in_child=_clone.after_fork_child)
# Like non-daemon threads: no thread-mode child runs Python on a finalised
# interpreter.
atexit.register(_clone.join_thread_children)

#: Namespaces a child of glibc's fork() can enter itself with unshare().
_UNSHAREABLE = (F.CLONE_NEWNS | F.CLONE_NEWUTS | F.CLONE_NEWIPC | F.CLONE_NEWNET
                | F.CLONE_NEWCGROUP | F.CLONE_NEWUSER)
#: Namespaces that apply only to children made after unshare().
_FOR_CHILDREN = F.CLONE_NEWPID | F.CLONE_NEWTIME


def other_threads() -> int:
    """Threads besides the caller that could hold a lock at clone time:
    pyclone's own idle host threads are parked in a futex wait, holding none."""
    n = thread_count()
    return 0 if n == 1 else n - 1 - _clone.parked_hosts()


def thread_count() -> int:
    """OS threads in this process (field 20 of /proc/self/stat, as os.fork)."""
    if _clone.process_single_threaded():
        return 1
    try:
        with open("/proc/self/stat", "rb") as f:
            stat = f.read()
        return int(stat[stat.rindex(b")") + 2:].split()[17])
    except (OSError, ValueError, IndexError):
        return 0          # unknown


def fork_method(bits: int, exit_signal: int, raw_only: bool = False,
                prefer_raw: bool = False) -> Tuple[Optional[int], int]:
    """How to make a fork-mode child as safely as os.fork().

    glibc's fork() takes the malloc, stdio and loader locks around the system
    call and runs pthread_atfork handlers; a raw clone skips all of it, and in
    a process with other threads its children can hang in malloc.  So: fork()
    wherever the request can be expressed as fork() plus steps the child
    takes itself; a raw clone when the process is single-threaded (nothing
    to skip) or when only the raw call can express the request (then warn).
    ``raw_only``: clone3's cgroup or set_tid, which fork() cannot carry.
    ``prefer_raw``: a pidfd is wanted, which only the raw call returns
    race-free (after fork() pyclone opens one at once with pidfd_open).
    """
    rest = bits & ~F.CLONE_CLEAR_SIGHAND          # emulated after fork()
    plain = exit_signal == SIGCHLD and not raw_only
    if plain and not rest & ~_UNSHAREABLE and not prefer_raw:
        return _clone.FORK_LIBC, rest
    if other_threads() == 0:
        return _clone.FORK_RAW, 0
    if plain and not rest & ~_UNSHAREABLE:
        return _clone.FORK_LIBC, rest
    if plain and not rest & ~(_UNSHAREABLE | _FOR_CHILDREN):
        return _clone.FORK_LIBC_INTERMEDIATE, rest
    return None, 0


def _warn_threads(method: Optional[int], stacklevel: int) -> None:
    if method is None:
        import warnings
        warnings.warn(
            f"this process has {thread_count()} threads and clone() with these flags "
            "needs a raw clone, which skips glibc's fork-time lock handling: the "
            "child may deadlock in malloc or stdio. Drop the flags that need it "
            "(CLONE_FILES, CLONE_FS, CLONE_SYSVSEM, CLONE_PARENT, CLONE_VFORK, "
            "an exit signal other than SIGCHLD, clone3's cgroup or set_tid...) or "
            "clone before starting threads.",
            RuntimeWarning, stacklevel=stacklevel + 1)


#: os.fork() warns (3.12+) when the process has other threads.  It counts
#: them before its after-in-parent hooks run (so a thread such a hook starts
#: is not counted), except 3.13.0, which counts after them.  Under an "error"
#: filter, 3.12-3.14 drop the warning and return the pid; 3.15 raises it,
#: although the child exists by then.  pyclone does what the running
#: version's os.fork does, whenever it forks through glibc's fork().
_WARNS_LIKE_OS_FORK = sys.version_info >= (3, 12)
_COUNTS_AFTER_HOOKS = sys.version_info[:3] == (3, 13, 0)
_RAISES_FORK_WARNING = sys.version_info >= (3, 15)


def _warn_like_os_fork(others: int, stacklevel: int) -> None:
    """What os.fork() says when the process has other threads (pyclone's
    parked host threads, which hold no lock, do not count)."""
    if others <= 0:
        return
    import warnings
    try:
        warnings.warn(f"This process (pid={os.getpid()}) is multi-threaded, use of clone() "
                      "may lead to deadlocks in the child.", DeprecationWarning,
                      stacklevel=stacklevel + 1)
    except DeprecationWarning:
        if _RAISES_FORK_WARNING:
            raise


#: Built for a CPython newer than any pyclone was tested on (or built with
#: PYCLONE_PRETEND_UNTESTED=1): the C core reads none of its private frame
#: structures.
_UNTESTED_INTERNALS = not _clone.FRAMES_KNOWN


def _warn_untested_python(stacklevel: int) -> None:
    """Once per process, at the first CLONE_VM child."""
    global _UNTESTED_INTERNALS
    _UNTESTED_INTERNALS = False
    tested = _clone.NEWEST_TESTED_HEX
    import warnings
    warnings.warn(
        f"pyclone was not tested on CPython {sys.version_info[0]}.{sys.version_info[1]} "
        f"(newest tested: {tested >> 24}.{(tested >> 16) & 0xff}): the Python frames of a "
        "CLONE_VM child that ends without returning (os._exit, exec, a signal) are not "
        "released; what they hold stays allocated (a bounded leak per such child)",
        RuntimeWarning, stacklevel=stacklevel + 1)


def launch(fn: Callable[..., Any], args: Tuple[Any, ...], kwargs: Optional[Dict[str, Any]],
           bits: int, exit_signal: int, mode: str, stack_size: Optional[int], *,
           audit_flags: Optional[int] = None, want_pidfd: Optional[bool] = None,
           cgroup: Any = None, set_tid: Tuple[int, ...] = (),
           before: Optional[Callable[[Optional[int]], None]] = None, stacklevel: int = 2) -> Any:
    """The one way from a checked request into the C core, for clone(),
    clone3() and Child: raises the audit event before anything else
    happens, opens a cgroup given as a path, calls ``before(fd)`` (a Child
    makes its pipes there; ``fd`` is the cgroup fd opened here, else None),
    clones, and closes what it opened.  ``kwargs`` may be None (none).
    Returns the pid, or (pid, pidfd or -1) when ``want_pidfd`` is not None
    (the request uses clone3's extras).
    """
    sys.audit("pyclone.clone", bits | exit_signal if audit_flags is None else audit_flags, mode)
    plan = (fn, args, kwargs)
    extras = None
    try:
        if want_pidfd is None and cgroup is None and not set_tid and before is None:
            return _STARTS[mode](bits, exit_signal, stack_size, plan, stacklevel + 1, None)
        fd, opened = (-1, False) if cgroup is None else open_cgroup(cgroup)
        try:
            if before is not None:
                before(fd if opened else None)
            extras = (bool(want_pidfd), fd, set_tid)
            return _STARTS[mode](bits, exit_signal, stack_size, plan, stacklevel + 1, extras)
        finally:
            if opened:
                os.close(fd)
    except OSError as exc:
        _raise_refused(exc, bits, extras)


def _raise_refused(exc: OSError, bits: int, extras: Optional[Extras]) -> NoReturn:
    """Raise, for a clone the kernel refused, ``exc`` itself or a clearer
    error that says what to change (chained to it)."""
    from . import _errors           # only a refused clone needs the hints
    new = _errors.translate(exc, bits, extras)
    if new is exc:
        raise exc
    raise new from exc


# The modes' entry points: (bits, exit_signal, stack_size or None, plan,
# stacklevel, extras or None) -> pid, or (pid, pidfd or -1) with extras.

def _start_fork(bits: int, exit_signal: int, stack_size: Optional[int], plan: Plan,
                stacklevel: int, extras: Optional[Extras]) -> Any:
    # Every page this touches, before or after the fork, is written once
    # more per child (the fork write-protects them all again): the plain
    # case takes the shortest path.
    _exit.flush_std_streams()    # never duplicate buffered output
    method: Optional[int]
    if extras is None and exit_signal == SIGCHLD and not bits & ~_UNSHAREABLE:
        method, unshare = _FORK_LIBC, bits      # fork_method's first case
    elif extras is None:
        method, unshare = fork_method(bits, exit_signal)
    else:
        method, unshare = fork_method(bits, exit_signal,
                                      raw_only=extras[1] >= 0 or bool(extras[2]),
                                      prefer_raw=extras[0])
    if method is None:
        _warn_threads(method, stacklevel + 1)
    warn_after = (_WARNS_LIKE_OS_FORK and method in (_FORK_LIBC, _clone.FORK_LIBC_INTERMEDIATE)
                  and not _clone.process_single_threaded())
    count_now = warn_after and not _COUNTS_AFTER_HOOKS
    pid = _clone.clone_fork(*plan, bits, exit_signal,
                            _clone.FORK_RAW if method is None else method,
                            unshare, extras, count_now)
    if warn_after:
        _warn_like_os_fork(_clone.threads_at_fork() if count_now else other_threads(),
                           stacklevel + 1)
    return pid


#: A CLONE_VM child's stack: never less than MIN_CHILD_STACK.  In borrowed
#: mode (carve, map): carved from the caller's stack when that much is free
#: there, else a mapping of the second size.
_DEFAULT_CARVE = max(_rules.CARVE_MIN_DEFAULT, _rules.MIN_CHILD_STACK)
_DEFAULT_MAP = max(_rules.DEFAULT_STACK_SIZE, _rules.MIN_CHILD_STACK)


def _start_borrowed(bits: int, exit_signal: int, stack_size: Optional[int], plan: Plan,
                    stacklevel: int, extras: Optional[Extras]) -> Any:
    if _claim_guard():
        _per_thread.guard = _SpareGuard()
    if _UNTESTED_INTERNALS:
        _warn_untested_python(stacklevel + 1)
    if stack_size is None:
        return _clone_borrowed(*plan, bits, exit_signal, _DEFAULT_CARVE, _DEFAULT_MAP, extras)
    size = max(stack_size, _rules.MIN_CHILD_STACK)
    return _clone_borrowed(*plan, bits, exit_signal, size, size, extras)


def _start_thread(bits: int, exit_signal: int, stack_size: Optional[int], plan: Plan,
                  stacklevel: int, extras: Optional[Extras]) -> Any:
    if _UNTESTED_INTERNALS:
        _warn_untested_python(stacklevel + 1)
    size = _DEFAULT_MAP if stack_size is None else max(stack_size, _rules.MIN_CHILD_STACK)
    return _clone_thread(*plan, bits, exit_signal, size, extras)


_STARTS = {"fork": _start_fork, "borrowed": _start_borrowed, "thread": _start_thread}
_claim_guard = _clone.claim_guard
_clone_borrowed = _clone.clone_borrowed
_clone_thread = _clone.clone_thread
_wait_pid = _clone.wait_pid
_FORK_LIBC = _clone.FORK_LIBC


def _clone_full(fn: Callable[..., Any], flags: int = SIGCHLD,
                stack_size: Optional[int] = None, *, args: Sequence[Any] = (),
                kwargs: Optional[Mapping[str, Any]] = None) -> int:
    """:func:`pyclone.clone`'s whole path: the C core's ``clone`` (which holds
    the docstring) calls it for every request but the plain ones recorded in
    _plain_requests."""
    if not callable(fn):
        _rules.check_callable(fn)
    bits, exit_signal, mode = _rules.check_clone_flags(flags)
    if exit_signal != SIGCHLD and exit_signal:
        _rules.check_exit_signal_handled(exit_signal, bits)
    size = None if stack_size is None else _rules.check_stack_size(stack_size, mode)
    if type(args) is not tuple or kwargs is not None:
        args, kwargs = _rules.check_call_args(args, kwargs)
    pid: int = launch(fn, args, kwargs, bits, exit_signal, mode, size)
    _record_plain(bits, exit_signal, mode)
    return pid


# Its errors about the call itself name clone(), as the caller wrote it.
_clone_full.__name__ = _clone_full.__qualname__ = "clone"
_clone_full.__code__ = _clone_full.__code__.replace(co_name="clone")

#: flags word -> how the C core's clone() starts a plain request with it
#: (fn, and at most an args tuple): (START_*, audit flags, mode, the start
#: entry point's arguments after (fn, args, kwargs)).
_plain_requests: Dict[int, Tuple[int, int, str, Tuple[int, ...]]] = {}


def _record_plain(bits: int, exit_signal: int, mode: str) -> None:
    """Record, once its request has been checked and has started, what a
    plain request with this flags word needs: what launch() and _start_*()
    do for it, in the same order, decided here, done in C without a frame
    (in fork mode each object a frame touches is one more copy-on-write
    fault per fork)."""
    if bits & F.CLONE_PARENT:
        return              # its check depends on the moment
    tail: Tuple[int, ...]
    if mode == "fork":
        if exit_signal != SIGCHLD or bits & ~_UNSHAREABLE:
            return          # fork_method's other cases
        # With threads, os.fork (3.12+) warns: the full path does as it does.
        start = _clone.START_FORK_IF_SINGLE if _WARNS_LIKE_OS_FORK else _clone.START_FORK
        tail = (bits, exit_signal, _FORK_LIBC, bits)
    elif exit_signal not in (0, SIGCHLD) or _UNTESTED_INTERNALS:
        return              # a handler check at each call; a warning to give
    elif mode == "borrowed":
        start, tail = _clone.START_BORROWED, (bits, exit_signal, _DEFAULT_CARVE, _DEFAULT_MAP)
    else:
        start, tail = _clone.START_THREAD, (bits, exit_signal, _DEFAULT_MAP)
    _plain_requests[bits | exit_signal] = (start, bits | exit_signal, mode, tail)


def _give_guard() -> None:
    """The C core's clone() calls this when a thread claims its guard."""
    _per_thread.guard = _SpareGuard()


_clone.set_clone_paths(_clone_full, _plain_requests, _rules._verdict_types, _raise_refused,
                       _give_guard)
clone = _clone.clone


def _check_wait_args(pid: Any, options: Any) -> Tuple[int, int]:
    if type(pid) is not int:
        pid = _rules.check_int(pid, "pid")
    if type(options) is not int:
        options = _rules.check_int(options, "options")
    if not 0 <= options < 1 << 32:
        raise ValueError(f"options {options:#x} is not a valid set of wait flags")
    return pid, options


#: ``waitpid(pid=-1, options=WALL) -> (pid, status)``: ``os.waitpid`` for
#: clone children.  In C (fork mode's parent then runs no frame of ours
#: between fork and wait, where each page written is a copy-on-write
#: fault); it calls _check_wait_args for anything but plain ints in range.
waitpid = _clone.waitpid
_clone.set_wait_args_checker(_check_wait_args)


def wait4(pid: int = -1, options: int = WALL) -> Tuple[int, int, Optional[resource.struct_rusage]]:
    """``os.wait4`` for clone children: ``(pid, status, rusage)``.

    As :func:`waitpid` (``WALL`` by default, ``WCLONE`` accepted), plus the
    reaped child's resource usage as a ``resource.struct_rusage`` (all zero
    when ``WNOHANG`` found nothing to reap).  A ``CLONE_THREAD`` child is a
    thread of this process: the kernel keeps no account of it apart from the
    process's own (``resource.getrusage(RUSAGE_SELF)``), so its rusage is None.
    """
    import resource
    pid, options = _check_wait_args(pid, options)
    pid, status, usage = _wait_pid(pid, options, True)
    if usage is None:                   # a CLONE_THREAD child
        return pid, status, None if pid else resource.struct_rusage((0.0, 0.0) + (0,) * 14)
    return pid, status, resource.struct_rusage(usage)


def terminate(pid: int, timeout: float = 1.0) -> None:
    """End child ``pid`` the way ``SIGTERM`` would, safely for any mode.

    A fork-mode child is a process of its own: it gets ``SIGTERM``.  A
    ``CLONE_VM`` child shares this interpreter's memory, and a signal that
    lands while it holds or waits for a lock there (the GIL's, malloc's)
    would leave the parent hung; so it is ended where it holds nothing:

    * running Python: :class:`pyclone.Terminated` is raised in it at its next
      bytecode; it unwinds (``finally`` blocks run) and, if the exception
      leaves its callable, ends as a process killed by SIGTERM;
    * blocked in a system call other than a lock wait (a sleep, a read, a
      poll, a wait, a semaphore): stopped, checked, and killed by SIGTERM
      without running another instruction (by SIGKILL where SIGTERM's action
      in its handler table is not the default);
    * waiting for a lock (GIL, mutex, condition variable) or running C code:
      left alone until it returns to Python, where the exception takes it.

    Tries to reach a safe point for up to ``timeout`` seconds, then returns;
    the exception stays pending for the child's next bytecode.  A child
    found asleep at a safe point with the exception still pending (it was
    on its way there when the exception was set) is killed there, the
    exception taken back first.  A ``CLONE_THREAD`` child gets the
    exception only.  Reap the child as
    usual afterwards.  Unlike ``os.kill(pid, SIGKILL)``, which is as
    dangerous for a ``CLONE_VM`` child as killing a thread.
    """
    if type(pid) is not int:
        pid = _rules.check_int(pid, "pid")
    if pid <= 0:
        raise ValueError(f"pid must be a positive process id, got {pid}")
    if _clone.terminate_vm(pid, _exit.Terminated, float(timeout)) == 0:
        os.kill(pid, SIGTERM)           # shares no memory with us: a signal is safe
