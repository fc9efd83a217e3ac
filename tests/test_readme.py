"""The README's examples run, and print what their comments say."""
import os
import re
import subprocess
import sys

import pytest

README = os.path.join(os.path.dirname(__file__), os.pardir, "README.md")


def blocks():
    with open(README) as f:
        return re.findall(r"```python\n(.*?)```", f.read(), re.S)


def expected_lines(block):
    """The comment after each print(...), where it is a literal to compare."""
    out = []
    for line in block.splitlines():
        m = re.match(r"\s*print\(.*\)\s+#\s*(.*)$", line)
        if m:
            out.append(m.group(1).strip())
    return out


@pytest.mark.skipif(os.geteuid() != 0, reason="the examples create namespaces: needs root")
@pytest.mark.parametrize("index", range(len(blocks())))
def test_example_runs_and_prints_what_it_says(index):
    block = blocks()[index]
    res = subprocess.run([sys.executable, "-c", block], capture_output=True, text=True,
                         timeout=60)
    assert res.returncode == 0, res.stderr
    got = res.stdout.splitlines()
    want = expected_lines(block)
    assert len(got) == len(want), (got, want)
    for g, w in zip(got, want):
        if "pid" in w or "unchanged" in w:
            continue        # a pid, or prose: not comparable literally
        assert g == w
