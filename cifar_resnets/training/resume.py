"""Which checkpoint a run resumes from: ``ckpt_path=auto`` (this folder's ``last.ckpt``), a file, or none.

Lightning only warns and trains from scratch when the checkpoint it is given does not exist, so the
path is checked here first, and read (``read_checkpoint``: tensors and plain values only) before any
training state is built. When it cannot be used, the one-line error names the newest readable
checkpoint beside it and the exact command that resumes from that one.
"""

from __future__ import annotations

import logging
import shlex
from pathlib import Path

from hydra.core.hydra_config import HydraConfig

from cifar_resnets.errors import ConfigError
from cifar_resnets.inference.checkpoint import CheckpointError, read_checkpoint
from cifar_resnets.training.run_folder import RunFolder

log = logging.getLogger(__name__)


def _newest_readable(folder: Path, besides: Path) -> tuple[Path, int, int] | None:
    """The checkpoint in ``folder`` (other than ``besides``) with the highest step: (path, step, epoch)."""
    found = []
    for path in folder.glob("*.ckpt"):
        if path == besides:
            continue
        try:
            checkpoint = read_checkpoint(path)
        except CheckpointError:
            continue
        step, epoch = int(checkpoint.get("global_step", -1)), int(checkpoint.get("epoch", -1))
        found.append((step, path.stat().st_mtime, path, epoch))
    if not found:
        return None
    step, _, path, epoch = max(found)
    return path, step, epoch


def resume_command(run_dir: Path, checkpoint: Path) -> str:
    """The command line of this run with ``ckpt_path=checkpoint``, into the same folder."""
    overrides = list(HydraConfig.get().overrides.task) if HydraConfig.initialized() else []
    replaced = ("ckpt_path", "hydra.run.dir")
    kept = [o for o in overrides if o.split("=", 1)[0].lstrip("+~") not in replaced]
    args = [*kept, f"ckpt_path={checkpoint}", f"hydra.run.dir={run_dir}"]
    return " ".join(["cifar-train", *(shlex.quote(a) for a in args)])


def _unusable(problem: str, kind: str, path: Path, folder: RunFolder) -> CheckpointError:
    newest = _newest_readable(path.parent, besides=path)
    if newest is None:
        hint = f"no other readable checkpoint is in {path.parent}; ckpt_path=null starts the run over"
    else:
        other, step, epoch = newest
        hint = (
            f"the newest readable checkpoint beside it is {other} (step {step}, epoch {epoch}); "
            f"resume from it with: {resume_command(folder.path.absolute(), other.absolute())}"
        )
    return CheckpointError(f"{problem}; {hint}", kind)


def resume_checkpoint(ckpt_path: str | None, folder: RunFolder) -> str | None:
    """The checkpoint ``trainer.fit`` resumes from, checked; None to start from scratch."""
    if ckpt_path is None:
        return None
    if ckpt_path == "auto":
        # The same command again (after a kill, SIGTERM or requeue) continues this folder's last.ckpt.
        path = folder.last_checkpoint
        if not path.is_file():
            if path.parent.is_dir() and any(path.parent.glob("*.ckpt")):
                # Killed between an epoch file and last.ckpt: starting over would overwrite that epoch.
                raise _unusable(f"ckpt_path=auto: {path} does not exist", "missing", path, folder)
            log.info("ckpt_path=auto: no %s yet, starting from scratch", path)
            return None
    else:
        path = Path(ckpt_path)
        if not path.is_file():
            raise ConfigError(
                f"ckpt_path={ckpt_path} does not exist; use a checkpoints/last.ckpt or ckpt_path=auto"
            )
    try:
        read_checkpoint(path)
    except CheckpointError as err:
        raise _unusable(str(err), err.kind, path, folder) from None
    log.info("resuming from %s", path)
    return str(path)
