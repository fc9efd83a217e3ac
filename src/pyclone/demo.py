"""``python -m pyclone demo``: what a child's changes do to its parent.

For each flag set a child changes a variable, closes a file descriptor,
changes directory and umask, installs a signal handler, sets the hostname
and reports its pid; the parent then looks at each and says whether the
change reached it.  Then the seed programs run (Linus' clone example,
Bernard's fork listing, the light-weight-process slides).
"""
from __future__ import annotations

import ctypes
import os
import signal
import socket
import tempfile

from . import _core, _rules
from .flags import CloneFlags as F

TYPE_CHECKING = False      # typing.TYPE_CHECKING, without importing typing
if TYPE_CHECKING:
    from typing import List, Sequence

SIG = signal.SIGUSR1
FLAG_SETS = [
    ("SIGCHLD (like fork)", 0),
    ("CLONE_VM", F.CLONE_VM),
    ("CLONE_FILES", F.CLONE_FILES),
    ("CLONE_FS", F.CLONE_FS),
    ("CLONE_VM|CLONE_SIGHAND", F.CLONE_VM | F.CLONE_SIGHAND),
    ("CLONE_VM|FS|FILES|SIGHAND (seeds)", F.CLONE_VM | F.CLONE_FS | F.CLONE_FILES | F.CLONE_SIGHAND),
    ("CLONE_VFORK", F.CLONE_VFORK),
    ("CLONE_VM|CLONE_VFORK", F.CLONE_VM | F.CLONE_VFORK),
    ("CLONE_NEWUTS", F.CLONE_NEWUTS),
    ("CLONE_NEWPID", F.CLONE_NEWPID),
    ("CLONE_NEWUSER", F.CLONE_NEWUSER),
]
COLUMNS = ["flags", "mode", "variable", "fd", "cwd", "umask", "handler py/kernel",
           "hostname", "child's pid"]
WIDTHS = [34, 9, 9, 8, 8, 8, 18, 9, 14]


def _kernel_disposition(sig: int) -> str:
    """'child's' (a handler), 'ignored' or 'default' in this process's kernel
    table: /proc, not signal.getsignal, which reads Python's own table."""
    masks = {}
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(("SigCgt:", "SigIgn:")):
                masks[line[:6]] = int(line.split()[1], 16)
    bit = 1 << (sig - 1)
    if masks.get("SigCgt", 0) & bit:
        return "child's"
    return "ignored" if masks.get("SigIgn", 0) & bit else "default"


def _handler(signum: int, frame: object) -> None:
    pass


def run_row(name: str, bits: int, workdir: str) -> List[str]:
    """One flag set: returns the table cells."""
    mode = _rules.mode_of(bits)
    box = {"variable": "parent"}
    fd = os.open("/dev/null", os.O_RDONLY)
    home = os.getcwd()
    old_umask = os.umask(0o022)
    hostname = socket.gethostname()
    r, w = os.pipe()

    def child() -> int:
        box["variable"] = "child"
        os.close(fd)
        os.chdir(workdir)
        os.umask(0o077)
        try:
            signal.signal(SIG, _handler)
        except ValueError:
            # CPython: only the main thread may set handlers (thread mode).
            # Set the kernel's disposition instead: SIG_IGN.
            ctypes.CDLL(None).signal(SIG, signal.SIG_IGN)
        if bits & F.CLONE_NEWUTS:
            socket.sethostname("pyclone-child")
        os.write(w, str(os.getpid()).encode())
        return 0

    try:
        pid = _core.clone(child, bits | signal.SIGCHLD)
    except PermissionError:
        os.close(fd)
        cells = [name, mode, "needs CAP_SYS_ADMIN", "", "", "", "", "", ""]
        os.umask(old_umask)
        os.close(r)
        os.close(w)
        return cells
    _core.waitpid(pid)
    os.close(w)         # only now: under CLONE_FILES it is the child's too
    seen_pid = os.read(r, 32).decode()
    os.close(r)

    fd_state = "open"
    try:
        os.fstat(fd)
    except OSError:
        fd_state = "CLOSED"
    if fd_state == "open":
        os.close(fd)
    py = "child's" if signal.getsignal(SIG) is _handler else "default"
    kernel = _kernel_disposition(SIG)
    cells = [
        name, mode,
        "CHANGED" if box["variable"] == "child" else "private",
        fd_state,
        "CHANGED" if os.getcwd() == workdir else "private",
        "CHANGED" if os.umask(old_umask) == 0o077 else "private",
        f"{py}/{kernel}",
        ("CHANGED" if socket.gethostname() != hostname else "private")
        if bits & F.CLONE_NEWUTS else "-",
        seen_pid if seen_pid == str(pid) else f"{seen_pid} (ns) / {pid}",
    ]
    # Put everything back for the next row.
    os.chdir(home)
    signal.signal(SIG, signal.SIG_DFL)
    return cells


def print_row(cells: Sequence[object]) -> None:
    print("  ".join(str(c).ljust(w) for c, w in zip(cells, WIDTHS)).rstrip())


def matrix() -> None:
    print("What the child's change did to the parent (CHANGED = the parent saw it):\n")
    print_row(COLUMNS)
    print_row(["-" * w for w in WIDTHS])
    workdir = tempfile.mkdtemp(prefix="pyclone-demo-")
    try:
        for name, bits in FLAG_SETS:
            print_row(run_row(name, bits, os.path.realpath(workdir)))
    finally:
        os.rmdir(workdir)
    print()
    print("handler py/kernel: Python's handler table lives in memory (shared under"
          " CLONE_VM), the kernel's\nonly under CLONE_SIGHAND; 'child's/default' means"
          " they now disagree in the parent.  In thread mode\nCPython refuses"
          " signal.signal() outside the main thread, so the child sets SIG_IGN"
          " through libc.\n")


def seed_linus() -> None:
    print("Linus Torvalds' clone example (CLONE_VM|CLONE_FS|CLONE_FILES|CLONE_SIGHAND):")
    shared = {"show_same_vm": 0}

    def cloned_process_starts_here(data: int) -> None:
        print(f"child:\t got argument {data} as fd")
        shared["show_same_vm"] = 5
        print(f"child:\t vm = {shared['show_same_vm']}")
        os.close(data)

    fd = os.open("/dev/null", os.O_RDWR)
    print(f"mother:\t fd = {fd}")
    shared["show_same_vm"] = 10
    print(f"mother:\t vm = {shared['show_same_vm']}")
    flags = F.CLONE_VM | F.CLONE_FS | F.CLONE_FILES | F.CLONE_SIGHAND | signal.SIGCHLD
    pid = _core.clone(cloned_process_starts_here, flags, 16384, args=(fd,))
    _core.waitpid(pid)
    print(f"mother:\t vm = {shared['show_same_vm']}")
    try:
        os.write(fd, b"c")
        os.close(fd)
    except OSError:
        print("mother:\t child closed our file descriptor")
    print()


def seed_bernard() -> None:
    print("Joey Bernard, listing 1 (fork): the child changes a variable and closes a file")
    state = {"variable": 9}
    fd = os.open("/dev/null", os.O_RDWR)

    def child() -> None:
        state["variable"] = 42
        os.close(fd)
        print(f"child:\t variable = {state['variable']}, file closed")
    _core.waitpid(_core.clone(child, signal.SIGCHLD))
    still_open = os.write(fd, b"c") == 1
    os.close(fd)
    print(f"parent:\t variable = {state['variable']}, file "
          f"{'still open' if still_open else 'closed'}\n")


def seed_slides() -> None:
    print("Light-weight process slides: threadFunction with a 64 kB stack")
    for share_files in (True, False):
        fd = os.open("/dev/null", os.O_RDWR)

        def thread_function(argument: int) -> int:
            print("child thread entering")
            os.close(argument)
            print("child thread exiting")
            return 0
        flags = signal.SIGCHLD | F.CLONE_FS | F.CLONE_SIGHAND | F.CLONE_VM
        flags |= F.CLONE_FILES if share_files else 0
        print(f"Creating child thread ({'with' if share_files else 'without'} CLONE_FILES)")
        _core.waitpid(_core.clone(thread_function, flags, 1024 * 64, args=(fd,)), 0)
        try:
            os.write(fd, b"c")
            os.close(fd)
            print("Parent:\t our file descriptor is still open")
        except OSError:
            print("Parent:\t child closed our file descriptor")
    print()
    print("Slides, 'Another Example: CLONE_VM': the child writes into the parent's buffer")
    for vm in (False, True):
        buf = bytearray(b"hello from parent")

        def child_func(arg: bytearray) -> int:
            print(f'Child sees buf = "{arg.decode()}"')
            arg[:] = b"hello from child"
            return 0
        flags = signal.SIGCHLD | ((F.CLONE_VM | F.CLONE_VFORK) if vm else 0)
        _, status = _core.waitpid(_core.clone(child_func, flags, 65536, args=(buf,)))
        print(f'Child exited with status {status}. buf = "{buf.decode()}"'
              f"{'   (CLONE_VM)' if vm else ''}")
    print()


def main() -> int:
    print("pyclone demo: Linux clone() from Python\n")
    matrix()
    seed_linus()
    seed_bernard()
    seed_slides()
    return 0
