"""The clone flags, the exit-signal byte and the wait options.

Every ``CLONE_*`` value the kernel headers define is a constant here, and a
member of :class:`CloneFlags` (an :class:`enum.IntFlag`, so members are ints
and combine with ``|`` and with a signal number).  What each flag shares or
does is stated beside it; flags that pyclone manages itself say so and are
refused as input.

No enum at import: ``enum`` costs more than the rest of ``import pyclone``,
and ``clone()`` needs only the numbers.  ``CloneFlags`` is built from the
constants below the first time it is looked up.
"""
from __future__ import annotations

TYPE_CHECKING = False      # typing.TYPE_CHECKING, without importing typing
if TYPE_CHECKING:
    from typing import Any


__all__ = ["CloneFlags", "CSIGNAL",  # noqa: F822 - CloneFlags: built by __getattr__ "WALL", "WCLONE", "WNOTHREAD",
           "MANAGED_FLAGS", "FLAG_VALUES", "KNOWN_FLAGS", "flag_names"]

#: The low byte of ``clone()``'s flags: the signal sent to the parent when
#: the child exits (``SIGCHLD`` makes it an ordinary child; 0 sends none).
CSIGNAL = 0xFF

#: Wait options the ``os`` module lacks (<linux/wait.h>).
#: ``__WNOTHREAD``: wait only for children of the calling thread.
WNOTHREAD = 0x20000000
#: ``__WALL``: wait for all children, whatever their exit signal.
WALL = 0x40000000
#: ``__WCLONE``: wait only for "clone" children (exit signal not SIGCHLD).
WCLONE = 0x80000000

#: New time namespace (Linux 5.6).  0x80 lies in the exit-signal byte of
#: the legacy call, so only ``clone3()`` can ask for it.
CLONE_NEWTIME = 0x00000080
#: Share the address space: every write, mapping and Python object.
#: Without it the child gets a copy-on-write copy (fork mode).
CLONE_VM = 0x00000100
#: Share filesystem information: root, current directory and umask.
#: A ``chdir``/``umask`` in either task changes both.
CLONE_FS = 0x00000200
#: Share the file-descriptor table: an fd opened or closed by one is
#: opened or closed for both.
CLONE_FILES = 0x00000400
#: Share the table of signal handlers (needs CLONE_VM).  Python-level
#: handlers set with ``signal.signal`` in one task act in both.
CLONE_SIGHAND = 0x00000800
#: Return a pidfd for the child (``clone3(pidfd=True)``; the legacy call
#: would return it through a pointer pyclone manages).
CLONE_PIDFD = 0x00001000
#: If the parent is being traced, trace the child too.
CLONE_PTRACE = 0x00002000
#: Suspend the calling thread until the child exits or execs.
CLONE_VFORK = 0x00004000
#: The child's parent is the caller's parent: the caller cannot wait for
#: it.  Refused by the kernel in an init process.
CLONE_PARENT = 0x00008000
#: Put the child in the caller's thread group (needs CLONE_SIGHAND): the
#: same pid, not waitable with wait(2), and an ``exit_group`` from any
#: member ends all of them.
CLONE_THREAD = 0x00010000
#: New mount namespace (needs CAP_SYS_ADMIN; not with CLONE_FS).
CLONE_NEWNS = 0x00020000
#: Share System V semaphore undo lists (``SEM_UNDO``).
CLONE_SYSVSEM = 0x00040000
#: Managed by pyclone: set the thread pointer (TLS) of the child.
CLONE_SETTLS = 0x00080000
#: Managed by pyclone: store the child's TID in the parent's memory.
CLONE_PARENT_SETTID = 0x00100000
#: Managed by pyclone: clear the TID word and wake futex waiters when
#: the child exits.
CLONE_CHILD_CLEARTID = 0x00200000
#: Obsolete and ignored since Linux 2.6.2; refused here.
CLONE_DETACHED = 0x00400000
#: A tracer cannot force CLONE_PTRACE on this child.
CLONE_UNTRACED = 0x00800000
#: Managed by pyclone: store the child's TID in the child's memory.
CLONE_CHILD_SETTID = 0x01000000
#: New cgroup namespace (needs CAP_SYS_ADMIN).
CLONE_NEWCGROUP = 0x02000000
#: New UTS namespace: hostname and domain name (needs CAP_SYS_ADMIN).
CLONE_NEWUTS = 0x04000000
#: New IPC namespace: System V IPC and POSIX queues (needs
#: CAP_SYS_ADMIN; not with CLONE_SYSVSEM).
CLONE_NEWIPC = 0x08000000
#: New user namespace: the child may be root inside it.  Unprivileged
#: where the system allows it; not with CLONE_FS or CLONE_THREAD.
CLONE_NEWUSER = 0x10000000
#: New PID namespace: the child is its pid 1 and must reap orphans
#: (needs CAP_SYS_ADMIN; not with CLONE_THREAD).
CLONE_NEWPID = 0x20000000
#: New network namespace: only a loopback device, down (needs
#: CAP_SYS_ADMIN).
CLONE_NEWNET = 0x40000000
#: Share the I/O context (I/O scheduling).
CLONE_IO = 0x80000000
#: Reset every handled signal to its default in the child (clone3
#: only in the kernel; pyclone emulates it where clone3 is missing).
#: Not with CLONE_SIGHAND.
CLONE_CLEAR_SIGHAND = 0x100000000
#: Start the child in the cgroup v2 directory given as ``cgroup=``
#: (clone3 only).
CLONE_INTO_CGROUP = 0x200000000


#: Every flag by name, in the order of its bit.
FLAG_VALUES = dict(sorted(((name, value) for name, value in globals().items()
                           if name.startswith("CLONE_")), key=lambda item: item[1]))
#: The union of every flag.
KNOWN_FLAGS = sum(FLAG_VALUES.values())

#: Bits pyclone sets itself when it needs them; refused as input.
MANAGED_FLAGS = (CLONE_SETTLS | CLONE_PARENT_SETTID | CLONE_CHILD_SETTID
                 | CLONE_CHILD_CLEARTID | CLONE_DETACHED)


def flag_names(bits: int) -> str:
    """``"CLONE_VM|CLONE_FS"`` for the known bits of ``bits`` (for messages)."""
    names = [name for name, value in FLAG_VALUES.items() if bits & value]
    return "|".join(names) if names else "no flags"


def __getattr__(name: str) -> Any:
    if name == "CloneFlags":
        import enum
        # (mypy cannot see members that come from a table: the one table of flags)
        flags = enum.IntFlag("CloneFlags", FLAG_VALUES, module=__name__)  # type: ignore[misc]
        flags.__doc__ = ("The ``CLONE_*`` bits of clone(2) and clone3(2); each "
                         "is documented at its constant in pyclone.flags.")
        globals()["CloneFlags"] = flags
        return flags
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
