"""python -m pyclone {demo,bench}"""
from __future__ import annotations

import argparse
import sys

TYPE_CHECKING = False      # typing.TYPE_CHECKING, without importing typing
if TYPE_CHECKING:
    from typing import List, Optional


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m pyclone",
                                     description="Linux clone() for Python")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("demo", help="show what each clone flag shares, and run the seed programs")
    bench = sub.add_parser("bench", help="print the microbenchmark table")
    bench.add_argument("--quick", action="store_true", help="a short run (under a minute)")
    bench.add_argument("--json", metavar="FILE", help="also write the results as JSON")
    bench.add_argument("--plot", metavar="FILE", help="also draw start cost vs parent RSS (PNG)")
    opts = parser.parse_args(argv)
    if opts.command == "demo":
        from .demo import main as demo
        return demo()
    from .bench import main as bench_main
    return bench_main(quick=opts.quick, json_path=opts.json, plot_path=opts.plot)


if __name__ == "__main__":
    sys.exit(main())
