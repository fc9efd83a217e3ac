"""The cgroup= argument of clone3() and Child: a cgroup v2 directory, given
as an open directory fd or a path (CLONE_INTO_CGROUP)."""
from __future__ import annotations

import os

from . import _rules

TYPE_CHECKING = False      # typing.TYPE_CHECKING, without importing typing
if TYPE_CHECKING:
    from typing import Optional, Tuple, Union

    CgroupSpec = Union[int, str, bytes, "os.PathLike[str]", "os.PathLike[bytes]"]


FLAG_WITHOUT_CGROUP = ("CLONE_INTO_CGROUP needs the cgroup: pass cgroup=PATH_OR_FD "
                       "(a cgroup v2 directory) instead of the flag")
_GIVE_AN_FD = "pass an fd from os.open(path, os.O_RDONLY | os.O_DIRECTORY), or the path itself"


def check_cgroup(cgroup: object) -> Optional[CgroupSpec]:
    """Type check only; opening a path happens after the audit event."""
    if cgroup is None or isinstance(cgroup, (str, bytes, os.PathLike)):
        return cgroup
    if isinstance(cgroup, bool):
        raise TypeError("cgroup must be a directory fd or a path, not bool")
    fd = _rules.check_int(cgroup, "cgroup (a directory fd or path)")
    if not 0 <= fd < 1 << 31:
        raise ValueError(f"cgroup fd {fd} is {'negative' if fd < 0 else 'too large'}: "
                         f"not a file descriptor; {_GIVE_AN_FD}")
    try:
        os.fstat(fd)
    except OSError:
        raise ValueError(f"cgroup fd {fd} is not an open file descriptor: "
                         f"{_GIVE_AN_FD}") from None
    return fd


def open_cgroup(cgroup: CgroupSpec) -> Tuple[int, bool]:
    """A directory fd for the cgroup, and whether we opened it (to close)."""
    if isinstance(cgroup, int):
        return cgroup, False
    try:
        fd = os.open(cgroup, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except FileNotFoundError as exc:
        raise FileNotFoundError(
            exc.errno, f"cgroup directory {os.fsdecode(cgroup)!r} does not exist: create it "
            "with os.mkdir() under a cgroup v2 mount (see /proc/self/mounts, type "
            "cgroup2) first", os.fsdecode(cgroup)) from None
    try:
        os.stat("cgroup.controllers", dir_fd=fd)
    except FileNotFoundError:
        os.close(fd)
        raise ValueError(f"{os.fsdecode(cgroup)!r} is not a cgroup v2 directory (it has no "
                         "cgroup.controllers): CLONE_INTO_CGROUP works only with "
                         "cgroup v2") from None
    return fd, True
