"""``python -m pyclone bench``: start->exit->reap of a child, pyclone's modes
against their references, as ratios measured in one run.

Timing: for each pair (method, reference) the two run in interleaved rounds
(A, B, A, B, ...), each round a batch of children; the table gives the median
per-child time of each and the median of the rounds' ratios.  Each round's
ratio compares two batches run back to back, so a machine whose speed drifts
during the run (a virtual one can move by a factor of two) moves both alike;
the ratio of the two medians is kept in the JSON too.  The C baseline is the
module pyclone._baseline, built with pyclone from benchmarks/baseline.c.
"""
from __future__ import annotations

import json
import os
import platform
import signal
import statistics
import subprocess
import threading
import time

from . import _core, _exit
from .flags import CloneFlags as F

TYPE_CHECKING = False      # typing.TYPE_CHECKING, without importing typing
if TYPE_CHECKING:
    from types import ModuleType
    from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

    Report = Dict[str, Any]

MiB = 1024 * 1024
BORROWED = F.CLONE_VM | F.CLONE_VFORK | signal.SIGCHLD
THREAD = F.CLONE_VM | signal.SIGCHLD


def _noop() -> int:
    return 0


def load_baseline() -> Optional[ModuleType]:
    """The C baseline module (built with pyclone); None where it is missing."""
    try:
        from . import _baseline
    except ImportError:
        return None
    module: ModuleType = _baseline
    return module


def methods(lib: Optional[ModuleType]) -> Dict[str, Callable[[], object]]:
    """name -> zero-argument callable that starts, exits and reaps one child."""
    def os_fork() -> None:
        pid = os.fork()
        if pid == 0:
            os._exit(0)
        os.waitpid(pid, 0)

    def os_fork_call() -> None:
        # The same child work as pyclone's: call fn, flush stdio, leave.
        pid = os.fork()
        if pid == 0:
            _noop()
            _exit.flush_std_streams()
            os._exit(0)
        os.waitpid(pid, 0)

    def fork_mode() -> None:
        _core.waitpid(_core.clone(_noop, signal.SIGCHLD))

    def borrowed_mode() -> None:
        _core.waitpid(_core.clone(_noop, BORROWED))

    def thread_mode() -> None:
        _core.waitpid(_core.clone(_noop, THREAD))

    def spawn_borrowed() -> None:
        _core.waitpid(_core.clone(os.execv, BORROWED, args=("/bin/true", ["/bin/true"])))

    def spawn_subprocess() -> None:
        subprocess.run(["/bin/true"], check=True)

    def spawn_posix() -> None:
        os.waitpid(os.posix_spawn("/bin/true", ["/bin/true"], {}), 0)

    def threading_thread() -> None:
        t = threading.Thread(target=_noop)
        t.start()
        t.join()

    table: Dict[str, Callable[[], object]] = {
        "os.fork": os_fork,
        "os.fork, child calls fn": os_fork_call,
        "fork mode": fork_mode,
        "borrowed mode": borrowed_mode,
        "threading.Thread": threading_thread,
        "thread mode": thread_mode,
        "spawn: borrowed+execv": spawn_borrowed,
        "spawn: subprocess.run": spawn_subprocess,
        "spawn: os.posix_spawn": spawn_posix,
    }
    if lib is not None:
        table["C clone(VM|VFORK)"] = lib.borrowed
        table["C clone(VM|FS|FILES|SIGHAND)"] = lib.thread
        table["C fork"] = lib.fork
    return table


#: (method, reference) pairs, the ratio method/reference is what is judged.
PAIRS = [
    ("fork mode", "os.fork, child calls fn"),
    ("fork mode", "os.fork"),
    ("borrowed mode", "C clone(VM|VFORK)"),
    ("borrowed mode", "os.fork"),
    ("thread mode", "threading.Thread"),
    ("thread mode", "C clone(VM|FS|FILES|SIGHAND)"),
    ("spawn: borrowed+execv", "spawn: os.posix_spawn"),
    ("spawn: borrowed+execv", "spawn: subprocess.run"),
]


# ---- semaphore ping-pong between two tasks --------------------------------

def _pingpong_child(ping: Any, pong: Any, rounds: int) -> int:
    for _ in range(rounds):
        ping.acquire()
        pong.release()
    # Leave only after the parent took the last pong: a robust semaphore's
    # SEM_UNDO would otherwise take back at exit what we released.
    ping.acquire()
    return 0


def pingpong(kind: str, mode: str, rounds: int) -> float:
    """Seconds per round trip: the parent releases `ping`, a child of `mode`
    acquires it and releases `pong`, the parent acquires `pong`."""
    import multiprocessing
    from . import sync
    makers: Dict[str, Callable[[], Any]] = {
        "Semaphore": lambda: sync.Semaphore(0),
        "Semaphore(robust=True)": lambda: sync.Semaphore(0, robust=True),
        "multiprocessing.Semaphore": lambda: multiprocessing.get_context("fork").Semaphore(0),
        "threading.Semaphore": lambda: threading.Semaphore(0),
    }
    make = makers[kind]
    ping, pong = make(), make()
    flags = THREAD if mode == "thread" else signal.SIGCHLD
    pid = _core.clone(_pingpong_child, flags, args=(ping, pong, rounds))
    t0 = time.perf_counter()
    for _ in range(rounds):
        ping.release()
        pong.acquire()
    elapsed = time.perf_counter() - t0
    ping.release()
    _core.waitpid(pid)
    for sem in (ping, pong):
        getattr(sem, "close", lambda: None)()
    return elapsed / rounds


#: (method, reference, mode): ping-pong latency pairs.
PINGPONG = [
    ("Semaphore", "multiprocessing.Semaphore", "fork"),
    ("Semaphore(robust=True)", "multiprocessing.Semaphore", "fork"),
    ("Semaphore", "threading.Semaphore", "thread"),
    ("Semaphore(robust=True)", "threading.Semaphore", "thread"),
]


def run_pingpong(quick: bool = False) -> List[Dict[str, Any]]:
    rounds, trips = (5, 300) if quick else (9, 2000)
    results = []
    for name, ref, mode in PINGPONG:
        a, b = [], []
        for _ in range(rounds):
            a.append(pingpong(name, mode, trips))
            b.append(pingpong(ref, mode, trips))
        results.append(_result(0, f"ping-pong {name} ({mode})", ref, a, b))
    return results


def _result(size_mib: int, name: str, ref: str, ta: Sequence[float],
            tb: Sequence[float]) -> Dict[str, Any]:
    """One line of the report from the two series of per-round times."""
    ma, mb = statistics.median(ta), statistics.median(tb)
    ratios = [x / y for x, y in zip(ta, tb)]
    return {"rss_extra_mib": size_mib, "method": name, "reference": ref,
            "method_us": round(ma * 1e6, 3), "reference_us": round(mb * 1e6, 3),
            "ratio": round(statistics.median(ratios), 3),
            "ratio_of_medians": round(ma / mb, 3),
            "round_ratios": [round(r, 4) for r in ratios]}


def interleaved(a: Callable[[], object], b: Callable[[], object], rounds: int,
                batch: int) -> Tuple[List[float], List[float]]:
    """Seconds per call of a and of b in each round, run in alternating
    batches (a's batch, then b's, in every round)."""
    ta: List[float] = []
    tb: List[float] = []
    for _ in range(rounds):
        for fn, sink in ((a, ta), (b, tb)):
            t0 = time.perf_counter()
            for _ in range(batch):
                fn()
            sink.append((time.perf_counter() - t0) / batch)
    return ta, tb


def ballast(size: int) -> bytes:
    """Touched memory that makes the parent's RSS larger by `size` bytes."""
    return bytes([1]) * size if size else b""


def run(quick: bool = False, pairs: Optional[Sequence[Tuple[str, str]]] = None,
        sizes: Optional[Sequence[int]] = None) -> Report:
    lib = load_baseline()
    table = methods(lib)
    sizes = sizes if sizes is not None else ([0, 100 * MiB] if quick else [0, 100 * MiB, 1024 * MiB])
    rounds, batch = (5, 20) if quick else (15, 40)
    results = []
    for size in sizes:
        extra = ballast(size)
        for name, ref in pairs or PAIRS:
            if name not in table or ref not in table:
                continue
            # Warm up both (imports, caches, page tables of the ballast).
            interleaved(table[name], table[ref], 1, 5)
            ta, tb = interleaved(table[name], table[ref], rounds, batch)
            results.append(_result(size // MiB, name, ref, ta, tb))
        del extra
    return {"machine": {"python": platform.python_version(), "kernel": platform.release(),
                        "cpus": os.cpu_count(), "date": time.strftime("%Y-%m-%d"),
                        "c_baseline": lib is not None},
            "results": results}


def print_table(report: Report) -> None:
    m = report["machine"]
    print(f"pyclone bench: CPython {m['python']}, Linux {m['kernel']}, {m['cpus']} CPUs, "
          f"{m['date']}; medians of interleaved rounds, microseconds per child "
          "(ping-pong: per round trip); ratio: the median of the rounds' ratios\n")
    print(f"{'RSS+':>6}  {'method':<40}{'us':>9}   {'reference':<30}{'us':>9}  {'ratio':>6}")
    for r in report["results"]:
        print(f"{r['rss_extra_mib']:>5}M  {r['method']:<40}{r['method_us']:>9.1f}   "
              f"{r['reference']:<30}{r['reference_us']:>9.1f}  {r['ratio']:>6.3f}")
    if not m["c_baseline"]:
        print("\n(no C baseline: this build of pyclone lacks pyclone._baseline)")


def plot(report: Report, path: str) -> bool:
    """Start cost against parent RSS, one line per method: the picture of
    "why copy-on-write is not enough".  Needs matplotlib (the plot extra)."""
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("\n--plot needs matplotlib: pip install 'pyclone[plot]'")
        return False
    lines: Dict[str, Dict[int, float]] = {}
    for r in report["results"]:
        if r["method"].startswith("ping-pong"):
            continue
        for name, us in ((r["method"], r["method_us"]), (r["reference"], r["reference_us"])):
            if name.startswith("spawn") or name.startswith("os.fork, child"):
                continue
            lines.setdefault(name, {})[r["rss_extra_mib"]] = us
    fig, ax = plt.subplots(figsize=(8, 5))
    for name, points in sorted(lines.items()):
        xs = sorted(points)
        ax.plot(xs, [points[x] for x in xs], marker="o", label=name)
    ax.set_xlabel("extra parent RSS (MiB)")
    ax.set_ylabel("start -> exit -> reap, microseconds (log)")
    ax.set_yscale("log")
    m = report["machine"]
    ax.set_title(f"pyclone: child start cost vs parent memory (CPython {m['python']}, {m['date']})")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    print(f"\nplot written to {path}")
    return True


def main(quick: bool = False, json_path: Optional[str] = None,
         plot_path: Optional[str] = None) -> int:
    report = run(quick=quick)
    report["results"] += run_pingpong(quick=quick)
    print_table(report)
    if json_path:
        with open(json_path, "w") as f:
            json.dump(report, f, indent=2)
    if plot_path:
        plot(report, plot_path)
    return 0
