"""A published net (``pretrained:<source>/<net>`` or its release file) as a checkpoint's ``LoadedModel``.

The net is the suite's own ``CifarResNet`` rebuilt by ``models.build.build_net`` with the release's weights
mapped by ``models.pretrained``; the config carries a ``data`` section naming the dataset it was trained
on (so cifar-eval finds the test split) and a ``pretrained`` section with its source, URL, license and
published accuracy (so cifar-eval can print it beside ours, and a bundle exported from it keeps it).
"""

from __future__ import annotations

from pathlib import Path

from cifar_resnets.inference.checkpoint import LoadedModel, check_keys_fit, rebuild_net, weights_do_not_fit
from cifar_resnets.models.pretrained import CLASS_NAMES, PREFIX, is_pretrained, release_state

__all__ = ["is_pretrained", "load_pretrained", "report_folder"]


def report_folder(loaded: LoadedModel) -> Path | None:
    """Where a published net's reports and exports go when no folder is given (it has no run folder):
    ``outputs/pretrained/<source>-<net>``; ``None`` for a net of this suite."""
    published = loaded.config.get("pretrained")
    if not published:
        return None
    return Path("outputs", "pretrained", str(published["name"]).removeprefix(PREFIX).replace("/", "-"))


def load_pretrained(name_or_path: str | Path) -> LoadedModel:
    """The published net in eval mode on the CPU, fed with the normalisation its authors trained with."""
    release, state = release_state(name_or_path)
    model_cfg = release.model_config()
    where = Path(str(name_or_path))
    net = rebuild_net(where, model_cfg, release.num_classes)
    try:
        result = net.load_state_dict(state, strict=False)
    except RuntimeError as err:  # shape mismatches
        raise weights_do_not_fit(where, model_cfg, err) from None
    check_keys_fit(where, model_cfg, [*result.missing_keys, *result.unexpected_keys])
    net.eval()
    config = {
        "model": model_cfg,
        "data": {
            "_target_": "cifar_resnets.data.cifar.CIFARDataModule",
            "name": release.dataset,
            "root": "data",
            "image_size": 32,
        },
        "pretrained": release.info(),
    }
    return LoadedModel(
        net=net,
        config=config,
        num_classes=release.num_classes,
        classes=list(CLASS_NAMES[release.dataset]),
        mean=release.mean,
        std=release.std,
        image_size=32,
        resize_size=None,
        path=where,
        metrics={},
    )
