"""python -m pyclone bench: it runs, covers every comparison, writes JSON
and (with matplotlib) a plot.  No timing is asserted here: the performance
contract is measured by the benchmark itself, as ratios."""
import json
import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(scope="module")
def quick_report(tmp_path_factory):
    out = tmp_path_factory.mktemp("bench") / "bench.json"
    run = subprocess.run([sys.executable, "-m", "pyclone", "bench", "--quick", "--json", str(out)],
                         cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    return run.stdout, json.loads(out.read_text())


@pytest.mark.timeout(150)
def test_quick_bench_compares_every_mode_with_its_reference(quick_report):
    stdout, report = quick_report
    pairs = {(r["method"], r["reference"], r["rss_extra_mib"]) for r in report["results"]}
    for size in (0, 100):
        assert ("fork mode", "os.fork", size) in pairs
        assert ("borrowed mode", "C clone(VM|VFORK)", size) in pairs
        assert ("thread mode", "threading.Thread", size) in pairs
        assert ("spawn: borrowed+execv", "spawn: os.posix_spawn", size) in pairs
    assert any(r["method"].startswith("ping-pong") for r in report["results"])
    for r in report["results"]:
        assert r["method_us"] > 0 and r["reference_us"] > 0
        assert r["ratio_of_medians"] == pytest.approx(r["method_us"] / r["reference_us"],
                                                      rel=0.01, abs=0.002)
        # The median of the rounds' ratios, each round's pair run back to back.
        rounds = r["round_ratios"]
        assert len(rounds) >= 5 and all(x > 0 for x in rounds)
        assert r["ratio"] == pytest.approx(sorted(rounds)[len(rounds) // 2], abs=0.001)
    assert report["machine"]["c_baseline"] is True
    assert "ratio" in stdout and "threading.Thread" in stdout


@pytest.mark.timeout(150)
def test_plot(quick_report, tmp_path):
    pytest.importorskip("matplotlib", reason="the plot needs the optional matplotlib")
    report, png = tmp_path / "report.json", tmp_path / "plot.png"
    report.write_text(json.dumps(quick_report[1]))
    # In a subprocess: matplotlib keeps font files open.
    subprocess.run([sys.executable, "-c", "import json, sys; from pyclone import bench; "
                    "sys.exit(not bench.plot(json.load(open(sys.argv[1])), sys.argv[2]))",
                    str(report), str(png)], check=True, timeout=120, capture_output=True)
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
