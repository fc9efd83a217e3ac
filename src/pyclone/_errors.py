"""Kernel refusals turned into exceptions that say what to do."""
from __future__ import annotations

import errno

from . import flags as F
from .flags import flag_names

TYPE_CHECKING = False      # typing.TYPE_CHECKING, without importing typing
if TYPE_CHECKING:
    from typing import Tuple
    #: clone3's extras as the C core takes them: (want_pidfd, cgroup_fd, set_tid)
    Extras = Tuple[bool, int, Tuple[int, ...]]

#: Flags whose creation needs CAP_SYS_ADMIN in the caller's user namespace
#: (or a CLONE_NEWUSER in the same request).
_NEEDS_SYS_ADMIN = (F.CLONE_NEWNS | F.CLONE_NEWUTS | F.CLONE_NEWIPC | F.CLONE_NEWPID
                    | F.CLONE_NEWNET | F.CLONE_NEWCGROUP | F.CLONE_NEWTIME)

_USERNS_HINT = ("unprivileged user namespaces may be disabled: see the sysctls "
                "user.max_user_namespaces and kernel.unprivileged_userns_clone, and "
                "AppArmor's kernel.apparmor_restrict_unprivileged_userns; a caller "
                "in a chroot cannot create one either")


def clone3_features(bits: int, extras: Extras | None) -> list[str]:
    """Names of what only the clone3 system call can do in this request."""
    names = []
    if bits & F.CLONE_NEWTIME:
        names.append("CLONE_NEWTIME")
    if extras is not None:
        if extras[1] >= 0:
            names.append("CLONE_INTO_CGROUP (cgroup=)")
        if extras[2]:
            names.append("set_tid")
    return names


def translate(exc: OSError, bits: int, extras: Extras | None = None) -> BaseException:
    """The exception to raise (chained by the caller) for OSError `exc` from a
    clone with flag bits `bits` and clone3 extras `extras`
    (want_pidfd, cgroup_fd, set_tid) or None."""
    err = exc.errno
    what = exc.strerror or ""
    if err == errno.ENOSYS:
        features = clone3_features(bits, extras) or ["this request"]
        return NotImplementedError(
            f"{', '.join(features)} need the clone3 system call (Linux 5.3+; "
            f"CLONE_INTO_CGROUP 5.7+), which this kernel does not offer [{what}]")
    if extras is not None and extras[2]:
        if err == errno.EEXIST:
            return FileExistsError(err, f"set_tid {list(extras[2])}: a requested pid is "
                                        f"already in use [{what}]")
        if err == errno.EPERM:
            return PermissionError(err, "set_tid needs CAP_SYS_ADMIN or "
                                        "CAP_CHECKPOINT_RESTORE in the user namespace "
                                        "that owns each target PID namespace, and a "
                                        "seccomp filter must not forbid clone3 "
                                        f"[{what}]")
        if err == errno.EINVAL:
            return OSError(err, "set_tid was refused: it may not name more pids than the "
                                "child has PID namespace levels, and a pid other than 1 "
                                "needs an existing init in that namespace "
                                f"[{what}]")
    if extras is not None and extras[1] >= 0 and err in (errno.EBUSY, errno.EOPNOTSUPP,
                                                         errno.EBADF):
        return OSError(err, "the kernel refused the cgroup: it must be a cgroup v2 "
                            "directory with no controllers enabled in its "
                            "cgroup.subtree_control (no internal processes), and not "
                            f"a threaded cgroup for a new process [{what}]")
    if err == errno.EPERM and clone3_features(bits, extras):
        needed = ", ".join(clone3_features(bits, extras))
        return PermissionError(err, f"clone3 was refused and {needed} cannot fall back to "
                                    "clone: a seccomp filter may forbid clone3 (container "
                                    "runtimes answer EPERM), or CAP_SYS_ADMIN is missing "
                                    f"[{what}]")
    if err == errno.EPERM:
        privileged = bits & _NEEDS_SYS_ADMIN
        if privileged and not bits & F.CLONE_NEWUSER:
            msg = (f"{flag_names(privileged)} need CAP_SYS_ADMIN: run as root, or add "
                   f"CLONE_NEWUSER to create the namespaces inside a new user namespace")
        elif bits & F.CLONE_NEWUSER:
            msg = f"CLONE_NEWUSER was refused: {_USERNS_HINT}"
        else:
            msg = ("the kernel refused the clone; a seccomp filter or security module "
                   "may forbid it")
        return PermissionError(err, f"{msg} [{what}]")
    if err == errno.EAGAIN:
        return BlockingIOError(err, "too many processes: RLIMIT_NPROC, the pids cgroup "
                                    f"or kernel.threads-max is reached [{what}]")
    if err in (errno.ENOSPC, errno.EUSERS):
        return OSError(err, "too many namespaces: a nesting limit or a "
                            f"user.max_*_namespaces sysctl is reached [{what}]")
    if err == errno.ENOMEM:
        return OSError(err, "out of memory, or the PID namespace's init has exited "
                            f"[{what}]")
    if err == errno.EINVAL:
        return OSError(err, f"the kernel refused {flag_names(bits)} [{what}]")
    return exc
