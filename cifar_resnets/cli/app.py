"""`cifar-app`: start the Streamlit app (``cifar_resnets/app/streamlit_app.py``) on an outputs folder.

A thin wrapper so users need not know where the app script is installed:
``cifar-app --outputs outputs --port 8501`` runs ``streamlit run <streamlit_app.py> -- --outputs
outputs`` with the server bound to one address, headless (no browser launched, no usage statistics
sent). A folder that does not exist yet is fine: a newcomer sees the app, which says how to fill it.
docs/app.md describes the app.
"""

from __future__ import annotations

import argparse
import os
import sys
from importlib.resources import files
from pathlib import Path

from cifar_resnets.app.text import shortened

# Streamlit runs a script file: the app module as installed with the package.
APP_SCRIPT = Path(str(files("cifar_resnets.app") / "streamlit_app.py"))


def streamlit_args(outputs: Path, port: int, address: str) -> list[str]:
    """The ``streamlit`` command line (without the program name) for these options."""
    return [
        "run",
        str(APP_SCRIPT),
        "--server.port",
        str(port),
        "--server.address",
        address,
        "--server.headless",
        "true",
        "--browser.gatherUsageStats",
        "false",
        "--server.fileWatcherType",
        "none",
        "--client.toolbarMode",
        "minimal",
        "--",
        "--outputs",
        str(outputs),
    ]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="cifar-app", description="Classify images with trained checkpoints and browse runs."
    )
    parser.add_argument("--outputs", default="outputs", help="folder holding runs/ and sweeps/ (outputs)")
    parser.add_argument("--port", type=int, default=8501, help="port to serve on (8501)")
    parser.add_argument(
        "--address", default="127.0.0.1", help="address to bind (127.0.0.1; 0.0.0.0 serves the network)"
    )
    args = parser.parse_args(argv)
    if not 1 <= args.port <= 65535:
        parser.error(f"--port {args.port} is not a port number (1-65535)")
    if not args.outputs.strip():  # Path("") is ".": it would quietly list the working folder's runs
        parser.error("--outputs is empty; pass the folder cifar-train writes to (e.g. outputs)")
    args.outputs = Path(args.outputs).expanduser()
    try:
        is_file = args.outputs.is_file()
    except OSError as err:  # e.g. a name over 255 bytes: the system refuses it before any lookup
        parser.error(
            f"--outputs {shortened(str(args.outputs))}: {err.strerror or err}; "
            "pass the folder cifar-train writes to"
        )
    if is_file:
        parser.error(f"--outputs {args.outputs} is a file, not a folder; pass the folder holding runs/")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    from streamlit.web import cli as stcli

    # Streamlit's own CLI parses sys.argv; run it in-process so Ctrl-C and exit codes behave as usual.
    sys.argv = ["streamlit", *streamlit_args(args.outputs.resolve(), args.port, args.address)]
    os.environ.setdefault("STREAMLIT_BROWSER_GATHER_USAGE_STATS", "false")
    # Before torch loads: the server answers each browser session in a thread of its own and a click
    # runs small batches, so one intra-op thread per forward pass keeps sessions from contending (one
    # image took 0.21 s with the default pool on a busy machine, 0.009 s with one thread). A user's
    # OMP_NUM_THREADS wins.
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    try:
        stcli.main()
    except SystemExit as exit_:
        return int(exit_.code or 0)
    return 0


if __name__ == "__main__":
    sys.exit(main())
