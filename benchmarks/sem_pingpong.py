"""Semaphore ping-pong latency between two tasks (fork mode and thread mode):
pyclone.Semaphore (eventfd), Semaphore(robust=True) (System V) against
multiprocessing.Semaphore (fork mode) and threading.Semaphore (thread mode).
Also part of `python -m pyclone bench`.

    python benchmarks/sem_pingpong.py [--quick]
"""
import sys

from pyclone import bench

if __name__ == "__main__":
    report = {"machine": bench.run(sizes=[], pairs=[])["machine"],
              "results": bench.run_pingpong(quick="--quick" in sys.argv)}
    bench.print_table(report)
