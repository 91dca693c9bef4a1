"""Every command of the README runs, in the README's order, shrunk to a few CPU steps.

The commands are the lines of its ```bash blocks. Each is run as written, with only what makes it
small added at the end: the suite's own smoke overrides for a training run (the ones `cifar-reproduce
--smoke` uses), `--smoke` and one row for a table, two steps for a benchmark, and the test's data
folder for `data.root`. Commands run in one working folder, so the run that the README trains is the
one its `cifar-eval` and `cifar-predict` lines read. A command that cannot run here (it would need a
GPU, a cluster or the internet) does not belong in the README's code blocks.
"""

from __future__ import annotations

import os
import re
import shlex
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest
from hydra.core.global_hydra import GlobalHydra
from PIL import Image
from train_helpers import REPO

README = (REPO / "README.md").read_text()
CODE = "\n".join(re.findall(r"```bash\n(.*?)```", README, flags=re.S))
COMMANDS = [line.split(" #", 1)[0].strip() for line in CODE.splitlines() if line.split(" #", 1)[0].strip()]
# Each README line runs within this folder; the test targets are what run this test.
NOT_RUN_HERE = ("make test", "make test-slow", "make test-bench")


@pytest.fixture(scope="module")
def workspace(tmp_path_factory, synthetic_cifar10: Path, synthetic_cifar100: Path) -> Path:
    """The README's working folder: a data folder with CIFAR-10 and CIFAR-100 (synthetic files in the real
    format: what is checked here is that the commands work, not how well the nets learn), and photos."""
    work = tmp_path_factory.mktemp("readme")
    data = work / "data"
    data.mkdir()
    (data / "cifar-10-batches-py").symlink_to(synthetic_cifar10 / "cifar-10-batches-py")
    (data / "cifar-100-python").symlink_to(synthetic_cifar100 / "cifar-100-python")
    photos = work / "photos"
    photos.mkdir()
    rng = np.random.default_rng(0)
    for name, size in (("cat.jpg", (64, 48)), ("ship.png", (32, 32)), ("plane.webp", (120, 90))):
        Image.fromarray(rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)).save(photos / name)
    return work


def _shrunk_train(args: list[str], index: int) -> list[str]:
    from cifar_resnets.config.compose import compose_train
    from cifar_resnets.reproduce.plan import smoke_overrides

    sweep = "-m" in args
    if sweep:  # two values of every swept key, at most two jobs at a time
        args = [re.sub(r"=([^,=]+),([^,]+),.*", r"=\1,\2", a) for a in args]
        args = [re.sub(r"n_jobs=\d+", "n_jobs=2", a) for a in args]
    overrides = [a for a in _without_config_dir(args) if a != "-m" and not a.startswith(("hydra.", "--"))]
    first = [re.sub(r"=([^,]*),.*", r"=\1", o) for o in overrides] + _config_dir_searchpath(args)
    shrink = smoke_overrides(compose_train(first)) + ["paths.data_dir=data"]
    if sweep:
        shrink.append(f"hydra.sweep.dir=outputs/sweeps/readme{index}")
    elif not any(a.startswith("hydra.run.dir=") for a in args):
        shrink.append(f"hydra.run.dir=outputs/runs/readme{index}")
    return [*args, *shrink]


def _without_config_dir(args: list[str]) -> list[str]:
    """``args`` without ``--config-dir DIR`` (its value is no override)."""
    out, skip = [], False
    for arg in args:
        if skip or arg in ("--config-dir", "-cd"):
            skip = not skip
            continue
        out.append(arg)
    return out


def _config_dir_searchpath(args: list[str]) -> list[str]:
    """``--config-dir DIR`` as the compose API takes it: the folder on Hydra's search path."""
    for flag, value in zip(args, args[1:]):
        if flag in ("--config-dir", "-cd"):
            return [f"hydra.searchpath=[file://{Path(value).absolute()}]"]
    return []


def _run_search(args: list[str]) -> None:
    """A search of two trials of a training run shrunk as cifar-train's are, in the search's own folder
    (so that the README's next line trains its best trial)."""
    from cifar_resnets.cli.search import main
    from cifar_resnets.config.compose import compose_train
    from cifar_resnets.reproduce.plan import smoke_overrides

    shrink = [*smoke_overrides(compose_train(args)), "paths.data_dir=data", "search.n_trials=2"]
    _run_hydra_main("cifar-search", main, [*args, *shrink])


def _run_hydra_main(prog: str, main, args: list[str]) -> None:
    """A Hydra command's ``main`` in this process, as its console script calls it with ``args``."""
    GlobalHydra.instance().clear()
    argv, sys.argv = sys.argv, [prog, *args]
    try:
        main()
    except SystemExit as exit_:
        assert exit_.code in (0, None), f"{prog} {' '.join(args)} exited with {exit_.code}"
    finally:
        sys.argv = argv
        GlobalHydra.instance().clear()


def _run_train(args: list[str]) -> None:
    from cifar_resnets.cli.train import main

    _run_hydra_main("cifar-train", main, args)


def _run_reproduce(args: list[str]) -> None:
    from cifar_resnets.cli.reproduce import main

    if "--list" not in args:
        table = args[0]
        args = [re.sub(r"^(\d+)$", lambda m: str(min(int(m.group(1)), 2)), a) for a in args]  # --seeds
        if "--rows" not in args:
            from cifar_resnets.reproduce.spec import load_table_arg

            args += ["--rows", load_table_arg(table).rows[0].name]
        args += [a for a in ("--smoke", "--in-process") if a not in args] + ["--data-root", "data"]
    assert main(args) == 0, f"cifar-reproduce {' '.join(args)}"


def _run_app(args: list[str]) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    args = [re.sub(r"^8501$", str(port), a) for a in args]
    proc = subprocess.Popen(
        [sys.executable, "-m", "cifar_resnets.cli.app", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            assert proc.poll() is None, proc.stdout.read()
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/_stcore/health", timeout=2) as reply:
                    assert reply.status == 200
                    return
            except OSError:
                time.sleep(0.5)
        raise AssertionError("cifar-app did not answer within 120 s")
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def _run_make(args: list[str], work: Path) -> None:
    # `make train` uses the checkout's .venv; run it only from that environment (CI's), never build one.
    if Path(sys.prefix).resolve() != (REPO / ".venv").resolve():
        pytest.skip("make train runs the checkout's .venv, which is not this interpreter's")
    from cifar_resnets.config.compose import compose_train
    from cifar_resnets.reproduce.plan import smoke_overrides

    shrink = [*smoke_overrides(compose_train([])), f"hydra.run.dir={work / 'outputs/runs/make_train'}"]
    env = {**os.environ, "CIFAR_DATA": str(work / "data")}
    proc = subprocess.run(
        ["make", "-C", str(REPO), *args, f"ARGS={' '.join(shrink)}"], env=env, capture_output=True, text=True
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]


def _run(command: str, index: int, work: Path) -> None:
    program, *args = shlex.split(command)
    if program == "cifar-train":
        _run_train(_shrunk_train(args, index))
    elif program == "cifar-search":
        _run_search(args)
    elif program == "cifar-eval":
        from cifar_resnets.cli.evaluate import main

        main(args)
    elif program == "cifar-predict":
        from cifar_resnets.cli.predict import main

        main(args)
    elif program == "cifar-reproduce":
        _run_reproduce(args)
    elif program == "cifar-bench":
        from cifar_resnets.cli.bench import main

        args = [re.sub(r"^data$", str(work / "data"), a) for a in args]
        main([*args, "--steps", "2", "--warmup", "1", "--workers", "0"])
    elif program == "cifar-app":
        _run_app(args)
    elif program == "make":
        _run_make(args, work)
    else:
        raise AssertionError(f"the README runs {program!r}, which this test does not know how to shrink")


@pytest.mark.slow
@pytest.mark.parametrize("index", range(len(COMMANDS)), ids=lambda i: COMMANDS[i])
def test_readme_command_runs(index: int, workspace: Path, monkeypatch) -> None:
    command = COMMANDS[index]
    if command in NOT_RUN_HERE:
        pytest.skip(f"{command} is what runs this test")
    monkeypatch.chdir(workspace)
    monkeypatch.delenv("CIFAR_DATA", raising=False)
    _run(command, index, workspace)


def test_ci_runs_the_readme_commands_this_test_skips(tmp_path: Path) -> None:
    """The README's test commands are skipped above because CI runs them: run .ci/run with a ``make``
    that only records its arguments (and the browser it would install already present)."""
    stubs = tmp_path / "bin"
    stubs.mkdir()
    calls = tmp_path / "make.calls"
    for name, body in (
        ("make", f'echo "make $*" >> {calls}'),
        ("chromium", "true"),
        ("chromedriver", "true"),
    ):
        (stubs / name).write_text(f"#!/bin/sh\n{body}\n")
        (stubs / name).chmod(0o755)
    env = {**os.environ, "PATH": f"{stubs}{os.pathsep}{os.environ['PATH']}"}
    proc = subprocess.run(
        ["bash", str(REPO / ".ci" / "run")], env=env, capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 0, proc.stderr
    skipped = [command for command in COMMANDS if command in NOT_RUN_HERE]
    assert skipped and set(skipped) <= set(calls.read_text().splitlines())
