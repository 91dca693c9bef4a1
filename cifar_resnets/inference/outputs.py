"""Where cifar-eval, cifar-predict and cifar-export write: checked before any work, written atomically.

An output that is an input of the same command is refused (writing would destroy it), and files are
written through a temporary file renamed into place, so a crash leaves the old or the new file. torch is
not imported, so the command lines run these checks before the heavy modules load.
"""

from __future__ import annotations

import contextlib
import errno
import os
import tempfile
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

from cifar_resnets.errors import InputError, find_cause

# Why a write failed, in words, by errno (anything else: the system's own message).
_CAUSES = {
    errno.ENOSPC: "no space left on the device",
    errno.EDQUOT: "the disk quota is used up",
    errno.EROFS: "the filesystem is read-only",
    errno.EACCES: "permission denied",
    errno.EPERM: "permission denied",
    errno.ENOTDIR: "a file stands where a folder must be",
    errno.EISDIR: "it is a folder",
}


def _cause(err: OSError) -> str:
    return _CAUSES.get(err.errno or 0, err.strerror or str(err))


def _guarded(inputs: Iterable[str | Path | None]) -> list[Path]:
    """The files an output must not land on: each input, and a bundle's card beside its weights."""
    paths = []
    for given in inputs:
        if given is None:
            continue
        path = Path(given)
        paths.append(path)
        if path.suffix == ".safetensors":  # a cifar-export bundle: model.safetensors + model.json
            paths.append(path.with_suffix(".json"))
    return paths


def _is_input(target: Path, inputs: list[Path]) -> Path | None:
    """The input ``target`` would overwrite: the same file, or a file inside an input folder."""
    if not target.exists():
        return None
    for given in inputs:
        if not given.exists():
            continue
        if os.path.samefile(target, given):
            return given
        if given.is_dir() and target.resolve().is_relative_to(given.resolve()):
            return given
    return None


def _check_folder(folder: Path, flag: str) -> None:
    """``folder`` exists and takes new files, or can be made: found by trying, as the write will."""
    ancestor = folder.absolute()
    while not ancestor.exists():
        ancestor = ancestor.parent
    if not ancestor.is_dir():
        raise InputError(f"{flag} {folder}: cannot write there, {ancestor} is a file, not a folder")
    try:
        with tempfile.TemporaryFile(dir=ancestor):
            pass
    except OSError as err:
        raise InputError(f"{flag} {folder}: cannot write in {ancestor} ({_cause(err)})") from None


def check_output_file(out: str | Path, inputs: Iterable[str | Path | None], flag: str) -> Path:
    """Refuse ``out`` (a file to write) when it is an input, a folder, or in a folder that takes no files."""
    out = Path(out)
    if out.is_dir():
        raise InputError(f"{flag} {out} is a folder; give a file name")
    hit = _is_input(out, _guarded(inputs))
    if hit is not None:
        raise InputError(f"{flag} {out} would overwrite the input {hit}; write the output elsewhere")
    _check_folder(out.parent, flag)
    return out


def check_output_folder(
    out: str | Path, names: Iterable[str], inputs: Iterable[str | Path | None], flag: str
) -> Path:
    """Refuse ``out`` (a folder to write ``names`` into) when it is a file, cannot take files, or one of
    the files would overwrite an input."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise InputError(f"{flag} {out} is a file; give a folder for the output files")
    guarded = _guarded(inputs)
    for name in names:
        hit = _is_input(out / name, guarded)
        if hit is not None:
            raise InputError(f"{flag} {out} would overwrite the input {hit}; write the output elsewhere")
    _check_folder(out, flag)
    return out


def make_folder(folder: str | Path, flag: str) -> Path:
    """``mkdir -p folder``, its failure in one line."""
    folder = Path(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise InputError(f"{flag} {folder}: cannot make the folder ({_cause(err)})") from None
    return folder


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@contextlib.contextmanager
def _one_line(path: Path) -> Iterator[None]:
    try:
        yield
    except Exception as err:
        os_err = find_cause(err, OSError)
        if os_err is None:
            raise
        raise InputError(f"cannot write {path}: {_cause(os_err)}; nothing there was changed") from None


def write_atomic(path: str | Path, write: Callable[[Path], object]) -> Path:
    """``write(tmp)`` then rename ``tmp`` over ``path``: readers see the old file or the whole new one.

    ``tmp`` is in ``path``'s folder (a rename within one filesystem) and keeps its suffix, for writers
    that pick the format by it.
    """
    path = Path(path)
    tmp = path.with_name(f".{path.stem}.partial-{os.getpid()}{path.suffix}")
    with _one_line(path):
        try:
            write(tmp)
            _fsync(tmp)
            os.replace(tmp, path)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        with contextlib.suppress(OSError):  # the rename is done; a folder that cannot be fsynced is fine
            _fsync(path.parent)
    return path


def write_text(path: str | Path, text: str) -> Path:
    return write_atomic(path, lambda tmp: tmp.write_text(text))
