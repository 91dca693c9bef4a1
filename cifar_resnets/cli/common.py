"""What every command line of the suite shares."""

from __future__ import annotations

from collections.abc import Sequence


def keyvalue_to_options(argv: Sequence[str], keys: Sequence[str]) -> list[str]:
    """Turn Hydra-style ``key=value`` tokens into ``--key value`` (dots become dashes) for argparse.

    Only tokens that start with one of the listed keys and ``=`` are translated; other values
    (file names containing ``=`` included) pass through unchanged.
    """
    out: list[str] = []
    for token in argv:
        key, sep, value = token.partition("=")
        if sep and not token.startswith("-") and key in keys:
            out += [f"--{key.replace('.', '-').replace('_', '-')}", value]
        else:
            out.append(token)
    return out
