"""Id maps of a Child's new user namespace: checked in the constructor,
written by the parent into /proc/PID/ while the child waits for them."""
from __future__ import annotations

import os

from . import _rules

TYPE_CHECKING = False      # typing.TYPE_CHECKING, without importing typing
if TYPE_CHECKING:
    from typing import Iterable, Optional

_CAP_SETGID = 6


def check_id_map(id_map: Optional[Iterable[Iterable[int]]], what: str) -> Optional[bytes]:
    """None, or rows of (inside, outside, count) as the text the kernel reads."""
    if id_map is None:
        return None
    try:
        rows = [tuple(row) for row in id_map]
    except TypeError:
        raise TypeError(f"{what} must be a list of (inside, outside, count) tuples") from None
    if not rows:
        raise ValueError(f"{what} is empty: give at least one (inside, outside, count)")
    for row in rows:
        if len(row) != 3:
            raise ValueError(f"{what} row {row!r} must be (inside, outside, count)")
        inside, outside, count = (_rules.check_int(v, what + " value") for v in row)
        if inside < 0 or outside < 0 or count < 1 or inside + count > 1 << 32:
            raise ValueError(f"{what} row {row!r}: ids are 0..2**32-1 and count at least 1")
    return "".join(f"{a} {b} {c}\n" for a, b, c in rows).encode()


def write_id_maps(pid: int, uid_map: Optional[bytes], gid_map: Optional[bytes]) -> None:
    """Writes the maps checked by check_id_map for child ``pid``."""
    if gid_map is not None and not _has_capability(_CAP_SETGID):
        # Without CAP_SETGID in the parent namespace the kernel accepts a
        # gid_map only once setgroups(2) is denied in the child's namespace.
        _write_proc(pid, "setgroups", b"deny")
    if uid_map is not None:
        _write_proc(pid, "uid_map", uid_map)
    if gid_map is not None:
        _write_proc(pid, "gid_map", gid_map)


def _has_capability(bit: int) -> bool:
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("CapEff:"):
                    return bool(int(line.split()[1], 16) >> bit & 1)
    except (OSError, ValueError):
        pass
    return False


def _write_proc(pid: int, name: str, data: bytes) -> None:
    fd = os.open(f"/proc/{pid}/{name}", os.O_WRONLY | os.O_CLOEXEC)
    try:
        os.write(fd, data)      # the kernel wants the whole map in one write
    finally:
        os.close(fd)
