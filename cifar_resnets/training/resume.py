"""Which checkpoint a run resumes from: ``ckpt_path=auto`` (this folder's ``last.ckpt``), a file, or none.

Lightning only warns and trains from scratch on a missing checkpoint, so the path is checked and read
here before any training state is built; a refusal names the newest readable checkpoint and the exact
command that resumes from it.
"""

from __future__ import annotations

import logging
import re
import shlex
from pathlib import Path
from typing import Any

from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf

from cifar_resnets.errors import CheckpointError, ConfigError
from cifar_resnets.inference.checkpoint import read_checkpoint
from cifar_resnets.models.build import build_net
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


# A value Hydra's override parser reads as it is; anything else is quoted for it.
_HYDRA_PLAIN = re.compile(r"[A-Za-z0-9_/.:+@-]+")


def hydra_value(value: str) -> str:
    """``value`` as an override value Hydra parses back to the same string (quoted when it must be)."""
    if _HYDRA_PLAIN.fullmatch(value):
        return value
    # Hydra reads a backslash as an escape only before a quote or at the string's end.
    body = re.sub(r"(\\*)('|$)", lambda m: m.group(1) * 2 + ("\\'" if m.group(2) else ""), value)
    return f"'{body}'"


def resume_command(run_dir: Path, checkpoint: Path) -> str:
    """The command line of this run with ``ckpt_path=checkpoint``, into the same folder, quoted for the
    shell (``shlex.join``) and for Hydra."""
    overrides = list(HydraConfig.get().overrides.task) if HydraConfig.initialized() else []
    replaced = ("ckpt_path", "hydra.run.dir")
    kept = [o for o in overrides if o.split("=", 1)[0].lstrip("+~") not in replaced]
    args = [*kept, f"ckpt_path={hydra_value(str(checkpoint))}", f"hydra.run.dir={hydra_value(str(run_dir))}"]
    return shlex.join(["cifar-train", *args])


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


def _model_config(cfg: DictConfig) -> dict[str, Any]:
    model = OmegaConf.to_container(cfg.model, resolve=True)
    assert isinstance(model, dict)
    return model


def check_same_model(path: Path, checkpoint: dict[str, Any], cfg: DictConfig) -> None:
    """Refuse a checkpoint whose model is not this run's: another name (a residual and a plain net of
    one depth have the same shapes), or weights that do not fit the net the run builds."""
    stored = ((checkpoint.get("hyper_parameters") or {}).get("config") or {}).get("model") or {}
    wanted = _model_config(cfg)
    state = {
        k.removeprefix("net.").replace("_orig_mod.", ""): v
        for k, v in (checkpoint.get("state_dict") or {}).items()
        if k.startswith("net.")
    }
    heads = [v for k, v in state.items() if k.endswith("fc.weight")]
    problem = None
    if stored.get("name") != wanted.get("name"):
        problem = f"it holds model {stored.get('name')!r}"
    elif heads:
        net = build_net(wanted, int(heads[-1].shape[0]), pretrained=False)
        try:
            result = net.load_state_dict(state, strict=False)
            bad = [*result.missing_keys, *result.unexpected_keys]
            if bad:
                problem = f"{len(bad)} of its weights do not fit this run's net (e.g. {bad[0]})"
        except RuntimeError as err:
            problem = f"its weights do not fit this run's net ({str(err).strip().splitlines()[-1].strip()})"
    if problem is not None:
        raise CheckpointError(
            f"{path}: {problem}, not this run's model {wanted.get('name')!r}; continue it with its own "
            f"model settings (model={stored.get('name')}), or give this run another folder "
            "(hydra.run.dir=...)",
            "other_model",
        )


def resume_checkpoint(ckpt_path: str | None, folder: RunFolder, cfg: DictConfig) -> str | None:
    """The checkpoint ``trainer.fit`` resumes from, checked (readable, this run's model); None to start
    from scratch."""
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
        checkpoint = read_checkpoint(path)
    except CheckpointError as err:
        raise _unusable(str(err), err.kind, path, folder) from None
    check_same_model(path, checkpoint, cfg)
    log.info("resuming from %s", path)
    return str(path)
