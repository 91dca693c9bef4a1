"""The GPU check scripts in their CPU smoke mode (GPU_CHECK_TINY=1), and how they install the suite on a
GPU machine."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from bench_helpers import REPO, run_gpu_script

SHARED_DIR = Path(os.environ.get("CIFAR_SHARED_DIR", REPO.parent.parent / "shared"))


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


def test_gpu_scripts_refuse_an_interpreter_without_the_suite(tmp_path: Path) -> None:
    """Configs are found through the installed package cifar_resnets.conf: a python that only has the
    checkout on its path is refused in one line that says how to install, before any run."""
    bare = tmp_path / "bare"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(bare)], check=True)
    proc = run_gpu_script("bench.sh", tmp_path / "out", check=False, PYTHON=str(bare / "bin" / "python"))
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [
        f"bench.sh: the suite is not installed for {bare / 'bin' / 'python'}; install it with "
        f"'{bare / 'bin' / 'python'} -m pip install -e {REPO}' (benchmarks/gpu/run_all.sh does it on a GPU "
        "machine)"
    ]
    assert not (tmp_path / "out").exists()


def test_install_suite_layers_the_wheels_and_the_checkout_on_the_interpreter(tmp_path: Path) -> None:
    """run_all.sh's set-up on a GPU machine: the Hydra wheels and the suite (editable) in a venv layered
    on the interpreter's own packages; afterwards every check script finds the suite and its configs."""
    wheels = SHARED_DIR / "wheels-gpu"
    if not list(wheels.glob("*.whl")):
        pytest.skip(f"no GPU-machine wheels in {wheels}")
    venv = tmp_path / "venv"
    script = (
        f'source "{REPO}/benchmarks/gpu/common.sh" && install_suite "{wheels}" "{venv}" && require_suite && '
        '"$PY" -c "import hydra, torch, cifar_resnets.config.resources as r; print(r.conf_dir())" '
        '&& echo "PY=$PY PYTHON=$PYTHON"'
    )
    proc = subprocess.run(
        ["bash", "-c", script],
        cwd=tmp_path,
        env={**os.environ, "PYTHON": sys.executable},
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    conf, names = proc.stdout.strip().splitlines()[-2:]
    assert Path(conf) == REPO / "conf"
    assert names == f"PY={venv}/bin/python PYTHON={venv}/bin/python"
    # The wheels went into the layered venv, not into the interpreter's own packages.
    assert list(venv.glob("lib/python*/site-packages/hydra"))
