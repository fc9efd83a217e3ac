"""clone3(): the modern call, with pidfds, cgroups, set_tid and the flags
that do not fit in clone()'s 32 bits."""
from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable, Mapping, NamedTuple, Optional, Sequence, Tuple

from . import _clone, _core, _rules
from ._cgroup import FLAG_WITHOUT_CGROUP, check_cgroup
from . import flags as F
from .flags import CSIGNAL

if TYPE_CHECKING:          # signal's names, without signal.py's enum import at run time
    from signal import SIGCHLD
else:
    from _signal import SIGCHLD

if TYPE_CHECKING:
    from ._cgroup import CgroupSpec


class CloneResult(NamedTuple):
    """What clone3() returns: the child's pid (tid under CLONE_THREAD) and
    its pidfd (None unless ``pidfd=True``; close it when done)."""
    pid: int
    pidfd: Optional[int]


_MAX_PID_NS_LEVEL = _clone.MAX_SET_TID     # PID namespaces nest at most this deep


def _pid_max() -> int:
    try:
        with open("/proc/sys/kernel/pid_max") as f:
            return int(f.read())
    except (OSError, ValueError):
        return 1 << 22        # PID_MAX_LIMIT on 64-bit


def check_set_tid(set_tid: Any) -> Tuple[int, ...]:
    """None or a sequence of 1..32 pids, innermost PID namespace first."""
    if set_tid is None:
        return ()
    if isinstance(set_tid, (str, bytes)) or not hasattr(set_tid, "__len__"):
        raise TypeError("set_tid must be a sequence of pids, innermost namespace first, "
                        f"not {type(set_tid).__name__!r}")
    tids = tuple(_rules.check_int(t, "set_tid item") for t in set_tid)
    if not 1 <= len(tids) <= _MAX_PID_NS_LEVEL:
        raise ValueError(f"set_tid holds 1 to {_MAX_PID_NS_LEVEL} pids (one per PID "
                         f"namespace level, innermost first), got {len(tids)}")
    limit = _pid_max()
    for t in tids:
        if not 1 <= t < limit:
            raise ValueError(f"set_tid pid {t} is out of range: pids run from 1 to "
                             f"{limit - 1} (kernel.pid_max)")
    return tids


def check_clone3_flags(flags: Any, exit_signal: Any, pidfd: Any, cgroup: Any,
                       set_tid: Any) -> Tuple[int, int, str, bool]:
    """(bits, exit signal, mode, want_pidfd) after every check clone3 makes
    before a system call."""
    bits = _rules.check_flags_word(flags)
    low = bits & CSIGNAL & ~F.CLONE_NEWTIME
    if low:
        raise ValueError(
            f"flags has {low:#x} in its low byte: clone3 takes the exit signal "
            f"separately (exit_signal=...); only CLONE_NEWTIME (0x80) lives there")
    sig = _rules.check_int(exit_signal, "exit_signal")
    if not 0 <= sig <= 64:
        raise ValueError(f"exit_signal {sig} is not a signal: it must be 0..64")
    _rules.check_exit_signal(sig)
    want_pidfd = bool(pidfd) or bool(bits & F.CLONE_PIDFD)
    bits &= ~F.CLONE_PIDFD
    if bits & F.CLONE_INTO_CGROUP and cgroup is None:
        raise ValueError(FLAG_WITHOUT_CGROUP)
    bits &= ~F.CLONE_INTO_CGROUP
    checked = bits | (F.CLONE_PIDFD if want_pidfd else 0)
    checked |= F.CLONE_INTO_CGROUP if cgroup is not None else 0
    mode = _rules.check_clone3_bits(checked)
    if sig and sig != SIGCHLD:
        _rules.check_exit_signal_handled(sig, bits)
    if mode != "fork" and not _clone.HAVE_CLONE3_VM:
        needs = [name for name, used in (("CLONE_NEWTIME", bits & F.CLONE_NEWTIME),
                                          ("CLONE_INTO_CGROUP", cgroup is not None),
                                          ("set_tid", set_tid))
                 if used]
        if needs:
            raise NotImplementedError(
                f"{', '.join(needs)} with CLONE_VM need pyclone's clone3 trampoline, "
                "which exists for x86-64 only; use fork mode (no CLONE_VM)")
    return bits, sig, mode, want_pidfd


def clone3(fn: Callable[..., Any], flags: int = 0, *, exit_signal: int = SIGCHLD,
           stack_size: Optional[int] = None, args: Sequence[Any] = (),
           kwargs: Optional[Mapping[str, Any]] = None, pidfd: bool = False,
           cgroup: Optional[CgroupSpec] = None,
           set_tid: Optional[Sequence[int]] = None) -> CloneResult:
    """Run ``fn(*args, **kwargs)`` in a new task made by clone3(2).

    The modes, stacks and exit status are those of :func:`pyclone.clone`;
    the exit signal is a separate argument, which frees the low byte of
    ``flags`` for ``CLONE_NEWTIME``.  ``pidfd=True`` (or ``CLONE_PIDFD`` in
    ``flags``) returns a pidfd for the child in the result (yours to
    close; not with ``CLONE_THREAD``).  ``cgroup`` (a path or directory fd
    of a cgroup v2 directory) starts the child in that cgroup
    (``CLONE_INTO_CGROUP``).  ``set_tid`` chooses the child's pid in each
    PID namespace level, innermost first (needs CAP_SYS_ADMIN or
    CAP_CHECKPOINT_RESTORE).  ``CLONE_CLEAR_SIGHAND`` resets the child's
    signal handlers (ignored signals stay ignored).

    Where clone3 is missing (ENOSYS) or filtered by seccomp (EPERM), a
    request that the legacy call can express falls back to it; one that
    cannot raises ``NotImplementedError`` naming the feature.
    """
    _rules.check_callable(fn)
    cgroup = check_cgroup(cgroup)
    tids = check_set_tid(set_tid)
    bits, sig, mode, want_pidfd = check_clone3_flags(flags, exit_signal, pidfd, cgroup, tids)
    size = _rules.check_stack_size(stack_size, mode)
    call_args, call_kwargs = _rules.check_call_args(args, kwargs)
    pid, fd = _core.launch(fn, call_args, call_kwargs, bits, sig, mode, size,
                           audit_flags=(bits | (F.CLONE_PIDFD if want_pidfd else 0)
                                        | (F.CLONE_INTO_CGROUP if cgroup is not None else 0)),
                           want_pidfd=want_pidfd, cgroup=cgroup, set_tid=tids)
    return CloneResult(pid, fd if want_pidfd else None)
