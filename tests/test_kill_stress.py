"""A bounded run of benchmarks/kill_stress.py: thread-mode children
SIGKILLed at random moments while everybody runs Python.  After each kill
the parent either goes on working or aborts with pyclone's message; it never
hangs (src/pyclone/watchdog.c)."""
import json
import os
import subprocess
import sys

import pytest

SCRIPT = os.path.join(os.path.dirname(__file__), "..", "benchmarks", "kill_stress.py")


@pytest.mark.timeout(240)
def test_random_sigkills_never_hang_the_parent():
    out = subprocess.run([sys.executable, SCRIPT, "--kills", "15", "--hang-after", "20"],
                         capture_output=True, text=True, timeout=230)
    assert out.returncode == 0, out.stderr
    counts = json.loads(out.stdout)
    assert counts["hangs"] == 0, counts
    assert counts["kills"] == 15
    assert counts["survived"] + counts["aborted"] == 15
    # An abort is counted only when pyclone's message preceded it (naming
    # the child); any other end of a worker fails the harness itself.
