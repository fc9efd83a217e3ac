"""Kernel refusals turned into exceptions that say what to do."""
import errno

from .flags import CloneFlags as F, flag_names

#: Flags whose creation needs CAP_SYS_ADMIN in the caller's user namespace
#: (or a CLONE_NEWUSER in the same request).
_NEEDS_SYS_ADMIN = (F.CLONE_NEWNS | F.CLONE_NEWUTS | F.CLONE_NEWIPC | F.CLONE_NEWPID
                    | F.CLONE_NEWNET | F.CLONE_NEWCGROUP | F.CLONE_NEWTIME)

_USERNS_HINT = ("unprivileged user namespaces may be disabled: see the sysctls "
                "user.max_user_namespaces and kernel.unprivileged_userns_clone, and "
                "AppArmor's kernel.apparmor_restrict_unprivileged_userns")


def translate(exc, bits):
    """The exception to raise (chained by the caller) for OSError `exc` from a
    clone with flag bits `bits`."""
    err = exc.errno
    what = exc.strerror or ""
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
