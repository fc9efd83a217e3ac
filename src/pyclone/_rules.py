"""Argument checking for clone(): every refusal happens here, before any
system call, with a message that says what to do instead."""
from __future__ import annotations

import os
import sys

from . import _clone
from . import flags as F        # the flags as plain ints (IntFlag arithmetic is slow)
from .flags import CSIGNAL, KNOWN_FLAGS as _KNOWN, MANAGED_FLAGS as _MANAGED, flag_names

TYPE_CHECKING = False      # typing.TYPE_CHECKING, without importing typing
if TYPE_CHECKING:
    from typing import Any, Dict, Mapping, Optional, Tuple

#: Default size of a child's stack (lazily committed: costs what it touches).
DEFAULT_STACK_SIZE = 8 * 1024 * 1024
#: Smallest stack_size accepted: Linus' clone example uses 16 KiB.  In
#: borrowed mode the child runs on the free part of the caller's own stack
#: whenever that holds stack_size bytes, so a small request still gets room.
MIN_STACK_SIZE = 16 * 1024
#: Largest stack_size accepted (anything above is a mistake, not a stack).
MAX_STACK_SIZE = 1 << 34
#: The least stack a CLONE_VM child runs on, whatever stack_size asks (it is
#: a lower bound there): CPython 3.14+ keeps its C-recursion limits one and
#: two margins above the bottom of a thread state's stack and refuses regions
#: below _PyOS_MIN_STACK_SIZE (48 KiB; 96 KiB in debug builds), so that much
#: plus 64 KiB to run in.  Untouched pages cost nothing.
MIN_CHILD_STACK = _clone.CPYTHON_MIN_STACK + 64 * 1024
#: In borrowed mode with the default size, carve from the caller's stack
#: when at least this much of it is free; otherwise map DEFAULT_STACK_SIZE.
CARVE_MIN_DEFAULT = 1024 * 1024

_PAGE = os.sysconf("SC_PAGE_SIZE")
_MAX_SIGNAL = 64          # SIGRTMAX on Linux; the legacy call accepts up to 255

#: (flag, what it needs, rule): the kernel answers EINVAL without the second.
_REQUIRES = (
    (F.CLONE_SIGHAND, F.CLONE_VM,
     "CLONE_SIGHAND requires CLONE_VM: a shared handler table would point at "
     "handlers in another address space. Add CLONE_VM or drop CLONE_SIGHAND."),
    (F.CLONE_THREAD, F.CLONE_SIGHAND,
     "CLONE_THREAD requires CLONE_SIGHAND (and so CLONE_VM): the threads of a "
     "group share their signal handlers."),
)
#: (flags, flag, rule): any of the first with the second is refused (EINVAL
#: from the kernel, but for the last).
_EXCLUSIVE = (
    (F.CLONE_NEWNS, F.CLONE_FS,
     "CLONE_NEWNS cannot be combined with CLONE_FS: a task in a new mount "
     "namespace cannot share root and cwd with one outside it."),
    (F.CLONE_NEWUSER, F.CLONE_FS,
     "CLONE_NEWUSER cannot be combined with CLONE_FS: filesystem information "
     "cannot be shared across user namespaces."),
    (F.CLONE_NEWUSER | F.CLONE_NEWPID, F.CLONE_THREAD,
     "CLONE_NEWUSER and CLONE_NEWPID cannot be combined with CLONE_THREAD: a "
     "thread group lives in one user and one PID namespace."),
    (F.CLONE_NEWIPC, F.CLONE_SYSVSEM,
     "CLONE_NEWIPC cannot be combined with CLONE_SYSVSEM: semaphore undo lists "
     "cannot be shared across IPC namespaces."),
    (F.CLONE_CLEAR_SIGHAND, F.CLONE_SIGHAND,
     "CLONE_CLEAR_SIGHAND cannot be combined with CLONE_SIGHAND: a shared "
     "handler table cannot be reset for the child alone."),
    (F.CLONE_INTO_CGROUP, F.CLONE_THREAD,
     "CLONE_INTO_CGROUP (cgroup=) cannot be combined with CLONE_THREAD: the "
     "threads of a process live in one cgroup."),
    (F.CLONE_PIDFD, F.CLONE_THREAD,
     "CLONE_PIDFD cannot be combined with CLONE_THREAD: pidfds refer to "
     "thread-group leaders."),
    # Not the kernel's rule but a trap it sets: when the init of a PID
    # namespace exits, zap_pid_ns_processes() sets SIGCHLD to SIG_IGN in its
    # handler table - shared with the parent - and from then on the kernel
    # reaps every child of the parent itself (waitpid fails, Popen.wait()
    # reports 0) while signal.getsignal() still says SIG_DFL.
    (F.CLONE_NEWPID, F.CLONE_SIGHAND,
     "CLONE_NEWPID cannot be combined with CLONE_SIGHAND: the child is the init "
     "of its PID namespace, and when it exits the kernel sets SIGCHLD to "
     "SIG_IGN in its signal handler table, which the parent would share; every "
     "later child of the parent would then be reaped by the kernel before "
     "anyone could wait for it. Drop CLONE_SIGHAND."),
)

#: Exit signals the parent could not survive or ever handle.
_FATAL_EXIT_SIGNALS = {
    9: "SIGKILL cannot be caught: the child's exit would kill the parent",
    19: "SIGSTOP cannot be caught: the child's exit would stop the parent",
    32: "signal 32 is reserved by glibc (thread cancellation): Python cannot handle it",
    33: "signal 33 is reserved by glibc (set*id broadcast): Python cannot handle it",
}
#: Signals whose default action is to do nothing (ignore, or continue).
_HARMLESS_BY_DEFAULT = frozenset((17, 18, 23, 28))    # CHLD, CONT, URG, WINCH


def mode_of(bits: int) -> str:
    """The execution mode the flags select: fork, borrowed, thread (docs/modes.md)."""
    if not bits & F.CLONE_VM:
        return "fork"
    if bits & F.CLONE_VFORK:
        return "borrowed"
    return "thread"


def check_callable(fn: object) -> None:
    if not callable(fn):
        raise TypeError(f"fn must be callable, not {type(fn).__name__!r}")


def check_int(value: Any, what: str, bool_ok: bool = True) -> int:
    """``value`` as an int (anything with ``__index__``), else TypeError;
    ``bool_ok=False`` refuses True and False, where a count is meant."""
    if type(value) is int:
        return value
    if not bool_ok and isinstance(value, bool):
        raise TypeError(f"{what} must be an int, not 'bool'")
    import operator             # not at import: it costs more than this module
    try:
        return operator.index(value)
    except TypeError:
        raise TypeError(f"{what} must be an int, not {type(value).__name__!r}") from None


def check_call_args(args: Any, kwargs: Optional[Mapping[str, Any]]
                    ) -> Tuple[Tuple[Any, ...], Dict[str, Any]]:
    if type(args) is tuple and kwargs is None:
        return args, {}
    try:
        args = tuple(args)
    except TypeError:
        raise TypeError(f"args must be a sequence, not {type(args).__name__!r}") from None
    if kwargs is None:
        kwargs = {}
    elif not hasattr(kwargs, "keys"):
        raise TypeError(f"kwargs must be a mapping, not {type(kwargs).__name__!r}")
    return args, dict(kwargs)


def check_legacy_exit_signal(exit_signal: int) -> None:
    """The low byte of clone()'s flags."""
    if exit_signal & F.CLONE_NEWTIME:
        raise ValueError(
            "flags has bit 0x80 set in its exit-signal byte: that is CLONE_NEWTIME, "
            "which the legacy clone() cannot express (0x80 is part of the signal "
            "number there); use pyclone.clone3(fn, CLONE_NEWTIME, ...)")
    if exit_signal > _MAX_SIGNAL:
        raise ValueError(
            f"exit signal {exit_signal} (low byte of flags) is not a signal: "
            f"it must be 0..{_MAX_SIGNAL}")
    check_exit_signal(exit_signal)


def check_exit_signal(sig: int) -> None:
    """Exit signals that can never be right (any time, so cacheable)."""
    if sig in _FATAL_EXIT_SIGNALS:
        raise ValueError(f"exit signal {sig} is refused: {_FATAL_EXIT_SIGNALS[sig]}. "
                         "Use SIGCHLD (the default), 0 for none, or a signal you handle")


def check_exit_signal_handled(sig: int, bits: int) -> None:
    """An exit signal that would terminate or stop the parent as things stand
    (its disposition is the default) is refused; checked at each call, as
    handlers change.  Under CLONE_PARENT the signal is the caller's parent's
    business, and a CLONE_THREAD child sends none."""
    if sig in _HARMLESS_BY_DEFAULT or bits & (F.CLONE_PARENT | F.CLONE_THREAD):
        return
    if _clone.signal_disposition(sig) == 0:
        name = _signal_name(sig)
        raise ValueError(
            f"exit signal {name} would kill (or stop) this process when the child exits: "
            f"its disposition is the default. Install a handler first "
            f"(signal.signal({name}, handler)) or ignore it, or use SIGCHLD (the "
            "default) or 0")


def _signal_name(sig: int) -> str:
    import signal
    try:
        return signal.Signals(sig).name
    except ValueError:
        return f"signal {sig}"


#: The verdicts of the checks that do not depend on the moment: (bits, exit
#: signal, mode) by clone()'s whole flags word (bits | exit signal), and the
#: mode by clone3's bits.  Only valid requests are remembered; keyed by the
#: int (IntFlag and Signals values hash and compare equal to it).
_clone_verdicts: dict[int, tuple[int, int, str]] = {}
_clone3_verdicts: dict[int, str] = {}
#: The types whose values are looked up there: int, and the int enums a
#: flags word is commonly written with (signal.SIGCHLD, CloneFlags) once
#: one has passed the checks.  Not any type: a float equal to a remembered
#: word (17.0) is still no flags word.
_verdict_types: set[type] = {int}


def check_clone_flags(flags: Any) -> Tuple[int, int, str]:
    """clone()'s flags word -> (bits, exit signal, mode), every check made."""
    verdict = _clone_verdicts.get(flags) if type(flags) in _verdict_types else None
    if verdict is None:
        bits, exit_signal = split_legacy_flags(flags)
        check_legacy_exit_signal(exit_signal)
        _check_flag_bits(bits, "clone")
        verdict = _clone_verdicts[bits | exit_signal] = (bits, exit_signal, mode_of(bits))
        signals = getattr(sys.modules.get("signal"), "Signals", None)
        if type(flags) in (vars(F).get("CloneFlags"), signals):
            _verdict_types.add(type(flags))     # int's hash and ==
    if verdict[0] & F.CLONE_PARENT:
        _check_parent_allowed()
    return verdict


def check_clone3_bits(bits: int) -> str:
    """clone3's flag bits -> the mode, every check made."""
    mode = _clone3_verdicts.get(bits)
    if mode is None:
        _check_flag_bits(bits, "clone3")
        mode = _clone3_verdicts[bits] = mode_of(bits)
    if bits & F.CLONE_PARENT:
        _check_parent_allowed()
    return mode


def _check_parent_allowed() -> None:
    """Not cacheable: a process may become an init (after setns, in a child)."""
    if os.getpid() == 1:
        raise ValueError("CLONE_PARENT is refused by the kernel in an init process "
                         "(pid 1 of its namespace): its children would have no reaper")


def _check_flag_bits(bits: int, api: str) -> None:
    unknown = bits & ~_KNOWN
    if unknown:
        raise ValueError(f"unknown clone flag bits {unknown:#x}; see pyclone.CloneFlags")
    managed = bits & _MANAGED
    if managed:
        raise ValueError(
            f"{flag_names(managed)} ({managed:#x}) are managed by pyclone, which sets "
            "them itself when a mode needs them; remove them from flags")
    if api == "clone":
        if bits & F.CLONE_PIDFD:
            raise ValueError("CLONE_PIDFD is not accepted by clone(): use "
                             "pyclone.clone3(fn, pidfd=True), which returns the pidfd")
        if bits & F.CLONE_INTO_CGROUP:
            raise ValueError("CLONE_INTO_CGROUP needs a cgroup directory: use "
                             "pyclone.clone3(fn, cgroup=PATH_OR_FD)")
    for flag, needed, rule in _REQUIRES:
        if bits & flag and not bits & needed:
            raise ValueError(rule)
    for flags, flag, rule in _EXCLUSIVE:
        if bits & flags and bits & flag:
            raise ValueError(rule)
    if bits & F.CLONE_THREAD and bits & F.CLONE_VFORK and bits & F.CLONE_VM:
        raise NotImplementedError(
            "CLONE_THREAD with CLONE_VFORK is not supported: a borrowed child leaves with "
            "exit_group, which would end the whole thread group; drop CLONE_VFORK (thread "
            "mode) and join with pyclone.waitpid(tid)")


def check_stack_size(stack_size: object, mode: str) -> Optional[int]:
    """None, or a positive int >= MIN_STACK_SIZE; returned rounded up to pages.

    In fork mode the child runs on its copy of the caller's stack, so any
    positive size is accepted there (and unused: None is returned)."""
    if stack_size is None:
        return None
    size = check_int(stack_size, "stack_size")
    if size <= 0:
        raise ValueError(f"stack_size must be a positive number of bytes, got {size}; "
                         "pass None for the default of 8 MiB")
    if size > MAX_STACK_SIZE:
        raise ValueError(f"stack_size {size} is absurdly large (limit {MAX_STACK_SIZE})")
    if mode == "fork":
        return None
    if size < MIN_STACK_SIZE:
        raise ValueError(f"stack_size {size} is below MIN_STACK_SIZE ({MIN_STACK_SIZE}); "
                         "pass None for the default of 8 MiB")
    return -(-size // _PAGE) * _PAGE


def check_flags_word(flags: object) -> int:
    """A flags argument as a plain non-negative int."""
    flags = int(check_int(flags, "flags"))
    if flags < 0:
        raise ValueError(f"flags must not be negative, got {flags:#x}")
    return flags


def split_legacy_flags(flags: object) -> Tuple[int, int]:
    """clone()'s flags word -> (flag bits, exit signal), as plain ints."""
    flags = check_flags_word(flags)
    return flags & ~CSIGNAL, flags & CSIGNAL


