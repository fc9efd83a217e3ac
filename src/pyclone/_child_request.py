"""What a Child asks for, checked whole in its constructor: every refusal
comes before start() makes a single system call."""
from __future__ import annotations

import os

from . import _rules
from . import flags as F
from ._cgroup import FLAG_WITHOUT_CGROUP, check_cgroup
from ._userns import check_id_map

TYPE_CHECKING = False      # typing.TYPE_CHECKING, without importing typing
if TYPE_CHECKING:          # signal's names, without signal.py's enum import at run time
    from signal import SIGCHLD
else:
    from _signal import SIGCHLD
if TYPE_CHECKING:
    from typing import Any, List

_pidfd_probe: List[bool] = []


def pidfds_work() -> bool:
    """Whether this process can have pidfds (probed once, on ourselves)."""
    if not _pidfd_probe:
        try:
            os.close(os.pidfd_open(os.getpid()))
            _pidfd_probe.append(True)
        except (OSError, AttributeError):     # ENOSYS, EPERM; no os.pidfd_open
            _pidfd_probe.append(False)
    ok: bool = _pidfd_probe[0]
    return ok


class ChildRequest:
    """The checked arguments of a Child, and what follows from them."""

    __slots__ = ("target", "args", "kwargs", "bits", "exit_signal", "mode", "stack_size",
                 "want_pidfd", "cgroup", "uid_map", "gid_map", "pdeathsig",
                 "result_channel", "vm", "thread", "private_fds")

    def __init__(self, target: Any, args: Any, kwargs: Any, flags: Any, stack_size: Any,
                 pidfd: Any, cgroup: Any, uid_map: Any, gid_map: Any, pdeathsig: Any,
                 result_channel: Any) -> None:
        if target is not None:
            _rules.check_callable(target)
        self.target = target
        self.args, self.kwargs = _rules.check_call_args(args, kwargs)
        word = _rules.check_flags_word(flags)
        if word & F.CLONE_PIDFD:
            pidfd, word = True, word & ~F.CLONE_PIDFD
        if word & F.CLONE_INTO_CGROUP:
            raise ValueError(FLAG_WITHOUT_CGROUP)
        bits, exit_signal, self.mode = _rules.check_clone_flags(word)
        if bits & F.CLONE_PARENT:
            raise ValueError("a Child cannot use CLONE_PARENT: the child would be your "
                             "sibling, which only your parent can reap and join; use "
                             "pyclone.clone() or clone3() for that")
        self.bits, self.exit_signal = bits, exit_signal
        self.stack_size = _rules.check_stack_size(stack_size, self.mode)
        # Where pidfds cannot be had (kernels before 5.3, seccomp filters),
        # the pipe sentinel serves instead: pidfd stays None.
        self.want_pidfd = bool(pidfd) and not bits & F.CLONE_THREAD and pidfds_work()
        self.cgroup = check_cgroup(cgroup)
        if self.cgroup is not None:
            _rules.check_clone3_bits(bits | F.CLONE_INTO_CGROUP)
        self.uid_map = check_id_map(uid_map, "uid_map")
        self.gid_map = check_id_map(gid_map, "gid_map")
        if (self.uid_map or self.gid_map) is not None:
            if not bits & F.CLONE_NEWUSER:
                raise ValueError("uid_map/gid_map apply to a new user namespace: "
                                 "add CLONE_NEWUSER to flags")
            if bits & F.CLONE_VFORK:
                raise ValueError("uid_map/gid_map cannot be written for a CLONE_VFORK "
                                 "child: its parent is suspended until the child ends; "
                                 "drop CLONE_VFORK")
        if pdeathsig is not None:
            pdeathsig = _rules.check_int(pdeathsig, "pdeathsig")
            if not 1 <= pdeathsig <= 64:
                raise ValueError(f"pdeathsig {pdeathsig} is not a signal: use 1..64")
            if bits & F.CLONE_THREAD:
                raise ValueError("pdeathsig does not apply to a CLONE_THREAD child: it "
                                 "ends with its process anyway")
        self.pdeathsig = pdeathsig
        self.result_channel = bool(result_channel)
        self.vm = bool(bits & F.CLONE_VM)
        self.thread = bool(bits & F.CLONE_THREAD)
        # Without CLONE_FILES the child's fd table is its own copy.
        self.private_fds = not bits & F.CLONE_FILES

    def check_at_start(self) -> None:
        """What depends on the moment: an exit signal's disposition."""
        if self.exit_signal and self.exit_signal != SIGCHLD:
            _rules.check_exit_signal_handled(self.exit_signal, self.bits)
