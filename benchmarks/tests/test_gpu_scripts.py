"""The GPU check scripts in their CPU smoke mode (GPU_CHECK_TINY=1)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from bench_helpers import run_gpu_script


@pytest.mark.slow
def test_gpu_bench_script_runs_tiny_on_cpu(tmp_path, synthetic_cifar10):
    run_gpu_script("bench.sh", tmp_path, BENCH_DATA=str(synthetic_cifar10))
    bench = tmp_path / "bench"
    summary = (bench / "summary.md").read_text()
    assert "| model | batch | path |" in summary and "Lightning's share" in summary
    paths = {
        r["path"]
        for f in bench.glob("*.json")
        if f.stem.startswith(("throughput", "lightning"))
        for r in json.loads(f.read_text())["results"]
    }
    assert paths == {"reference", "cifar-train", "raw"}
    tta = json.loads((bench / "accuracy.json").read_text())
    assert [r["variant"] for r in tta["time_to_accuracy"]] == ["cuda_graph", "eager"]


@pytest.mark.slow
def test_gpu_table_row_script_runs_tiny_on_cpu(tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    run_gpu_script("table_row.sh", out)
    summary = json.loads((out / "table_row.json").read_text())
    assert 0.0 <= summary["row"]["test_acc"] <= 1.0
    assert set(summary["sharing"]) == {"resnet20", "resnet32"}
    for kinds in summary["sharing"].values():
        assert set(kinds) == {"one", "four"}  # no MPS on a CPU
        assert len(kinds["four"]["per_job_images_per_second"]) == 4
        assert kinds["four"]["images_per_second"] > 0 and kinds["one"]["images_per_second"] > 0
    assert summary["mps"] == "not tried (CONC_MPS=0)"
    t6 = summary["table6_minutes"]
    assert 0 < t6["best_of_measured"] <= t6["one_job_at_a_time"]
    assert "| resnet32 |" in (out / "table_row.md").read_text()


@pytest.mark.parametrize(
    "value,message",
    [("maybe", "CONC_MPS=maybe: use auto, 0 or 1"), ("1", "nvidia-cuda-mps-control is not on PATH")],
)
def test_gpu_table_row_script_refuses_bad_mps_settings_early(tmp_path: Path, value, message) -> None:
    if value == "1" and shutil.which("nvidia-cuda-mps-control"):
        pytest.skip("MPS is installed here: CONC_MPS=1 would start the runs")
    proc = run_gpu_script("table_row.sh", tmp_path, check=False, CONC_MPS=value)
    assert proc.returncode == 2 and message in proc.stderr, proc.stderr
    assert not any(tmp_path.iterdir())  # refused before any run started
