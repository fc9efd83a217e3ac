"""The examples of the README and of docs/ run, and print what their
comments say."""
import glob
import os
import re
import subprocess
import sys

import pytest

ROOT = os.path.join(os.path.dirname(__file__), os.pardir)
PAGES = [os.path.join(ROOT, "README.md")] + sorted(glob.glob(os.path.join(ROOT, "docs", "*.md")))


def blocks():
    """Every python block, except those that show code to move away from
    (their first line starts with "# Before:")."""
    found = []
    for page in PAGES:
        with open(page) as f:
            for block in re.findall(r"```python\n(.*?)```", f.read(), re.S):
                if not block.startswith("# Before:"):
                    found.append((os.path.basename(page), block))
    return found


def expected_lines(block):
    """The comment after each print(...), where it is a literal to compare."""
    out = []
    for line in block.splitlines():
        m = re.match(r"\s*print\(.*\)\s+#\s*(.*)$", line)
        if m:
            out.append(m.group(1).strip())
    return out


@pytest.mark.skipif(os.geteuid() != 0, reason="the examples create namespaces: needs root")
@pytest.mark.parametrize("page, block", blocks(),
                         ids=[f"{page}-{i}" for i, (page, _) in enumerate(blocks())])
def test_example_runs_and_prints_what_it_says(page, block):
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
