"""What `import pyclone` adds to an interpreter's start, in milliseconds.

Starts the interpreter that runs this script again and again, alternating
`-c pass` with `-c "import pyclone"` (and a few other first uses), and
prints the median and the lowest difference over the bare start.  The goal
is at most 5 ms for `import pyclone`.

Run pinned to one CPU:  taskset -c 1 python benchmarks/import_cost.py
"""
import statistics
import subprocess
import sys
import time

ROUNDS = 60
CASES = [
    ("import pyclone", "import pyclone"),
    ("import pyclone; clone() a fork-mode child",
     "import os, pyclone; os.waitpid(pyclone.clone(lambda: 0), 0)"),
    ("import pyclone; first use of Child", "import pyclone; pyclone.Child"),
    ("import pyclone; first use of a CLONE_* flag", "import pyclone; pyclone.CLONE_VM"),
    ("import signal (for comparison)", "import signal"),
    ("import asyncio (for comparison)", "import asyncio"),
]


def start_time(code):
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-c", code], check=True)
    return time.perf_counter() - t0


def main():
    codes = ["pass"] + [code for _, code in CASES]
    times = {code: [] for code in codes}
    for _ in range(ROUNDS):
        for code in codes:          # interleaved: drifts hit every case alike
            times[code].append(start_time(code))
    bare = times["pass"]
    print(f"CPython {sys.version.split()[0]}: bare start {statistics.median(bare) * 1e3:.1f} ms "
          f"(median of {ROUNDS}); added by each:")
    for label, code in CASES:
        extra = [t - b for t, b in zip(times[code], bare)]
        print(f"  {label:45s} median {statistics.median(extra) * 1e3:5.1f} ms   "
              f"lowest {(min(times[code]) - min(bare)) * 1e3:5.1f} ms")


if __name__ == "__main__":
    main()
