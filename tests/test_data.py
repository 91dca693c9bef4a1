"""CIFAR file reading/validation, the GPU-resident loader (on CPU tensors) and CIFARDataModule."""

from __future__ import annotations

import os
import pickle
import socket
from urllib.error import URLError

import numpy as np
import pytest
import torch
import yaml

from cifar_resnets.config.resources import conf_dir
from cifar_resnets.data.cifar import CIFARDataModule
from cifar_resnets.data.cifar_files import cifar_splits, load_cifar, load_cifar_pickle
from cifar_resnets.data.gpu_loader import GPUBatchLoader, mix_batch
from cifar_resnets.data.synthetic import main as synthetic_main
from cifar_resnets.data.synthetic import write_synthetic_cifar
from cifar_resnets.data.transforms import AugmentSpec
from cifar_resnets.errors import ConfigError, DataError

CONF = conf_dir()
AUGMENT_CONFIGS = sorted(p.stem for p in (CONF / "augment").glob("*.yaml"))


def augment_config(name: str) -> dict:
    return yaml.safe_load((CONF / "augment" / f"{name}.yaml").read_text())


# ---------------------------------------------------------------- file formats
def raw(path):
    with open(path, "rb") as f:
        return pickle.load(f, encoding="bytes")


def test_cifar10_synthetic_matches_official_format_and_reads_back(synthetic_cifar10):
    folder = synthetic_cifar10 / "cifar-10-batches-py"
    batch = raw(folder / "data_batch_1")
    assert set(batch) == {b"batch_label", b"labels", b"data", b"filenames"}
    assert batch[b"data"].dtype == np.uint8 and batch[b"data"].shape[1] == 3072
    assert isinstance(batch[b"labels"], list)
    assert set(raw(folder / "batches.meta")) == {b"num_cases_per_batch", b"label_names", b"num_vis"}

    arrays = load_cifar(synthetic_cifar10, "cifar10")
    expected = np.concatenate([raw(folder / f"data_batch_{i}")[b"data"] for i in range(1, 6)])
    labels = sum((raw(folder / f"data_batch_{i}")[b"labels"] for i in range(1, 6)), [])
    assert arrays.train_images.shape == (512, 3, 32, 32) and arrays.train_images.dtype == np.uint8
    np.testing.assert_array_equal(arrays.train_images.reshape(512, -1), expected)
    np.testing.assert_array_equal(arrays.train_labels, labels)
    assert arrays.train_labels.dtype == np.int64
    assert arrays.test_images.shape == (256, 3, 32, 32)
    assert arrays.classes[0] == "airplane" and len(arrays.classes) == 10


def test_cifar100_synthetic_matches_official_format_and_reads_back(synthetic_cifar100):
    folder = synthetic_cifar100 / "cifar-100-python"
    train = raw(folder / "train")
    assert set(train) == {b"filenames", b"batch_label", b"fine_labels", b"coarse_labels", b"data"}
    assert set(raw(folder / "meta")) == {b"fine_label_names", b"coarse_label_names"}
    arrays = load_cifar(synthetic_cifar100, "cifar100")
    np.testing.assert_array_equal(arrays.train_images.reshape(512, -1), train[b"data"])
    np.testing.assert_array_equal(arrays.train_labels, train[b"fine_labels"])
    assert arrays.train_labels.max() < 100 and len(arrays.classes) == 100


def test_synthetic_cli(tmp_path, capsys):
    synthetic_main([str(tmp_path), "--name", "cifar100", "--train", "20", "--test", "10"])
    assert load_cifar(tmp_path, "cifar100").test_images.shape[0] == 10
    assert "wrote 20 train" in capsys.readouterr().out


def test_load_cifar_pickle_with_and_without_labels(tmp_path, synthetic_cifar10):
    images, labels = load_cifar_pickle(synthetic_cifar10 / "cifar-10-batches-py" / "test_batch")
    assert images.shape == (256, 3, 32, 32) and labels.shape == (256,)
    path = tmp_path / "unlabelled"
    path.write_bytes(pickle.dumps({b"data": np.zeros((3, 3072), np.uint8)}))
    images, labels = load_cifar_pickle(path)
    assert images.shape == (3, 3, 32, 32) and labels is None


@pytest.fixture
def cifar_copy(tmp_path):
    write_synthetic_cifar(tmp_path, "cifar10", num_train=50, num_test=20)
    return tmp_path


def dump(path, obj):
    path.write_bytes(pickle.dumps(obj, protocol=2))


def test_missing_root_names_full_path_and_fix(tmp_path):
    with pytest.raises(DataError) as err:
        load_cifar(tmp_path / "nowhere", "cifar10")
    message = str(err.value)
    assert str((tmp_path / "nowhere" / "cifar-10-batches-py").resolve()) in message
    assert "data.root=" in message and "data.download=true" in message
    assert isinstance(err.value, FileNotFoundError) and isinstance(err.value, ValueError)


@pytest.mark.parametrize(
    "failure",
    [
        URLError(socket.gaierror(-2, "Name or service not known")),
        RuntimeError("File not found or corrupted."),
    ],
    ids=["offline", "bad-md5"],
)
def test_a_failed_download_is_one_line_that_says_what_to_do(tmp_path, monkeypatch, failure):
    """Offline (CI, a cluster node) or a changed archive: one user error, not torchvision's trace."""
    import torchvision.datasets.utils as tv_utils

    def fail(*args, **kwargs):
        raise failure

    monkeypatch.setattr(tv_utils, "download_and_extract_archive", fail)
    with pytest.raises(DataError) as err:
        load_cifar(tmp_path, "cifar10", download=True)
    message = str(err.value)
    assert "\n" not in message and "cifar-10-python.tar.gz" in message
    assert "check the internet connection" in message and "data.root=" in message


def test_missing_batch(cifar_copy):
    (cifar_copy / "cifar-10-batches-py" / "data_batch_3").unlink()
    with pytest.raises(DataError, match="data_batch_3"):
        load_cifar(cifar_copy, "cifar10")


BAD_BATCHES = {
    "wrong keys": ({b"pixels": np.zeros((2, 3072), np.uint8), b"labels": [0, 1]}, "expected keys"),
    "wrong dtype": ({b"data": np.zeros((2, 3072), np.float32), b"labels": [0, 1]}, "dtype float32"),
    "wrong shape": ({b"data": np.zeros((2, 1024), np.uint8), b"labels": [0, 1]}, "shape"),
    "label count": ({b"data": np.zeros((2, 3072), np.uint8), b"labels": [0]}, "1 labels for 2 images"),
    "label range": ({b"data": np.zeros((2, 3072), np.uint8), b"labels": [0, 10]}, r"labels range 0\.\.10"),
    "negative label": ({b"data": np.zeros((2, 3072), np.uint8), b"labels": [-1, 0]}, "labels range"),
    "not a dict": ([1, 2, 3], "expected keys"),
}


@pytest.mark.parametrize("case", sorted(BAD_BATCHES))
def test_malformed_batch_gives_one_clear_error(cifar_copy, case):
    obj, pattern = BAD_BATCHES[case]
    path = cifar_copy / "cifar-10-batches-py" / "data_batch_2"
    dump(path, obj)
    with pytest.raises(DataError, match=pattern) as err:
        load_cifar(cifar_copy, "cifar10")
    assert "data_batch_2" in str(err.value) and "data.download=true" in str(err.value)


def test_truncated_file(cifar_copy):
    path = cifar_copy / "cifar-10-batches-py" / "test_batch"
    path.write_bytes(path.read_bytes()[:5000])
    with pytest.raises(DataError, match="test_batch is truncated"):
        load_cifar(cifar_copy, "cifar10")


def test_bad_meta(cifar_copy):
    dump(cifar_copy / "cifar-10-batches-py" / "batches.meta", {b"label_names": [b"a", b"b"]})
    with pytest.raises(DataError, match="10 class names"):
        load_cifar(cifar_copy, "cifar10")


class _Exploit:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


class _ExploitEval:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (eval, (f"open({str(self.marker)!r}, 'w').close()",))


@pytest.mark.parametrize("exploit", [_Exploit, _ExploitEval])
def test_malicious_pickle_is_refused_and_runs_nothing(cifar_copy, tmp_path, exploit):
    marker = tmp_path / "pwned"
    path = cifar_copy / "cifar-10-batches-py" / "data_batch_1"
    dump(path, {b"data": exploit(marker), b"labels": [0]})
    with pytest.raises(DataError, match="refuses to load .*this file is not a CIFAR batch"):
        load_cifar(cifar_copy, "cifar10")
    with pytest.raises(DataError):
        load_cifar_pickle(path)
    assert not marker.exists()


# ---------------------------------------------------------------- GPU-resident loader
MEAN0, STD1 = (0.0, 0.0, 0.0), (1.0, 1.0, 1.0)


def coordinate_images(n: int) -> torch.Tensor:
    """Images whose pixels encode (row, column, image index), so crops are reconstructable."""
    rows = torch.arange(32).view(32, 1).expand(32, 32) * 7
    cols = torch.arange(32).view(1, 32).expand(32, 32) * 7
    images = torch.empty(n, 3, 32, 32, dtype=torch.uint8)
    images[:, 0], images[:, 1] = rows, cols
    images[:, 2] = torch.arange(n).view(n, 1, 1)
    return images


def loader(images, labels=None, batch_size=64, **kw):
    labels = torch.zeros(images.shape[0], dtype=torch.int64) if labels is None else labels
    kw.setdefault("train", True)
    kw.setdefault("mean", MEAN0)
    kw.setdefault("std", STD1)
    return GPUBatchLoader(images, labels, batch_size, **kw)


def test_crops_stay_inside_padded_image_and_flips_half():
    images = coordinate_images(256)
    padded = torch.nn.functional.pad(images[:1].float(), (4, 4, 4, 4), mode="reflect")[0]
    candidates = {}
    for dy in range(9):
        for dx in range(9):
            crop = padded[:2, dy : dy + 32, dx : dx + 32]
            candidates[(dy, dx, False)] = crop
            candidates[(dy, dx, True)] = crop.flip(-1)
    seen = []
    for x, _ in loader(images, augment={"crop_padding": 4, "flip": True}):
        pixels = (x * 255).round()
        assert x.is_contiguous(memory_format=torch.channels_last) and x.dtype == torch.float32
        for img in pixels:
            match = [k for k, c in candidates.items() if torch.equal(img[:2], c)]
            assert match, "output is not a crop of the reflect-padded image"
            seen.append(match[0])
    assert len(seen) == 256
    assert {s[0] for s in seen} == set(range(9)) and {s[1] for s in seen} == set(range(9))
    flipped = np.mean([s[2] for s in seen])
    assert 0.35 < flipped < 0.65


def test_augmentation_off_returns_normalized_images():
    images = coordinate_images(8)
    (x, _) = next(iter(loader(images, batch_size=8, augment=augment_config("none"))))
    order = x[:, 2, 0, 0].mul(255).round().long()  # channel 2 holds the image index
    torch.testing.assert_close(x * 255, images[order].float())


def test_normalization_uses_mean_and_std():
    images = torch.full((4, 3, 32, 32), 255, dtype=torch.uint8)
    eval_loader = loader(images, batch_size=4, train=False, mean=(0.5, 0.5, 0.5), std=(0.25, 0.5, 1.0))
    (x, y) = next(iter(eval_loader))
    torch.testing.assert_close(x[0, :, 0, 0], torch.tensor([2.0, 1.0, 0.5]))
    assert y.dtype == torch.int64


def batches_of(ld, epoch=0):
    ld.set_epoch(epoch)
    return [(x.clone(), y.clone()) for x, y in ld]


def test_same_seed_same_batches_other_epoch_other_order():
    images, labels = coordinate_images(200), torch.arange(200)
    a = batches_of(loader(images, labels, 32, seed=3))
    b = batches_of(loader(images, labels, 32, seed=3))
    assert len(a) == 6  # 200 // 32, last partial batch dropped
    for (xa, ya), (xb, yb) in zip(a, b):
        assert torch.equal(xa, xb) and torch.equal(ya, yb)
    c = batches_of(loader(images, labels, 32, seed=3), epoch=1)
    assert not torch.equal(torch.cat([y for _, y in a]), torch.cat([y for _, y in c]))
    d = batches_of(loader(images, labels, 32, seed=4))
    assert not torch.equal(torch.cat([y for _, y in a]), torch.cat([y for _, y in d]))


def test_global_rng_is_not_used():
    images, labels = coordinate_images(32), torch.arange(32)
    torch.manual_seed(0)
    a = batches_of(loader(images, labels, 16, augment=augment_config("strong"), num_classes=64))
    torch.manual_seed(1)
    state = torch.get_rng_state()
    b = batches_of(loader(images, labels, 16, augment=augment_config("strong"), num_classes=64))
    assert torch.equal(torch.get_rng_state(), state)
    for (xa, ya), (xb, yb) in zip(a, b):
        assert torch.equal(xa, xb) and torch.equal(ya, yb)


def test_sampler_set_epoch_is_what_lightning_calls():
    from lightning.fabric.utilities.data import _set_sampler_epoch

    ld = loader(coordinate_images(64), torch.arange(64), 16)
    _set_sampler_epoch(ld, 5)
    assert ld.epoch == 5


def test_ddp_shards_are_disjoint_and_cover_the_epoch():
    images, labels = coordinate_images(203), torch.arange(203)
    shards = []
    for rank in range(2):
        ld = loader(images, labels, 25, rank=rank, world_size=2, seed=1)
        ld.set_epoch(2)
        assert len(ld) == 4  # 203 // 2 = 101 per rank, 4 full batches of 25
        shards.append(torch.cat([y for _, y in ld]))
    assert len(set(shards[0].tolist()) & set(shards[1].tolist())) == 0
    # with a batch dividing the shard, the two shards cover the whole epoch but the dropped remainder
    full = [loader(images, labels, 101, rank=r, world_size=2, seed=1) for r in range(2)]
    ys = torch.cat([y for ld in full for _, y in ld])
    assert ys.unique().numel() == 202


def test_ddp_eval_shards_pad_to_equal_length():
    images, labels = coordinate_images(11), torch.arange(11)
    lengths, seen = [], []
    for rank in range(2):
        ld = loader(images, labels, 4, train=False, rank=rank, world_size=2)
        ys = torch.cat([y for _, y in ld])
        lengths.append(ys.numel())
        seen += ys.tolist()
    assert lengths == [6, 6] and set(seen) == set(range(11))


def test_state_dict_resumes_mid_epoch_at_next_batch():
    images, labels = coordinate_images(96), torch.arange(96)
    spec = augment_config("strong")
    reference = batches_of(loader(images, labels, 16, seed=7, augment=spec, num_classes=96), epoch=3)
    first = loader(images, labels, 16, seed=7, augment=spec, num_classes=96)
    first.set_epoch(3)
    it = iter(first)
    for _ in range(4):
        next(it)
    state = first.state_dict()
    assert state == {"epoch": 3, "batches_yielded": 4}

    resumed = loader(images, labels, 16, seed=7, augment=spec, num_classes=96)
    resumed.load_state_dict(state)  # Lightning: before the iterator exists, then set_epoch, then iter
    resumed.sampler.set_epoch(3)
    rest = [(x, y) for x, y in resumed]
    assert len(rest) == len(reference) - 4
    for (xa, ya), (xb, yb) in zip(rest, reference[4:]):
        assert torch.equal(xa, xb) and torch.equal(ya, yb)
    assert resumed.state_dict() == {"epoch": 3, "batches_yielded": 6}
    assert len(batches_of(resumed, epoch=4)) == 6  # the next epoch starts from the beginning


def test_eval_loader_fixed_order_keeps_last_partial_batch():
    images, labels = coordinate_images(50), torch.arange(50)
    ld = loader(images, labels, 16, train=False, augment=augment_config("strong"))
    assert len(ld) == 4
    ys = [y for _, y in ld]
    assert [len(y) for y in ys] == [16, 16, 16, 2]
    assert torch.equal(torch.cat(ys), labels)


@pytest.mark.parametrize("kind", ["mixup", "cutmix"])
def test_mix_soft_targets_sum_to_one(kind):
    spec = AugmentSpec.from_config({f"{kind}_alpha": 1.0, f"{kind}_prob": 1.0})
    x = torch.randn(8, 3, 32, 32)
    y = torch.arange(8)
    for s in range(5):
        xm, ym = mix_batch(x, y, 10, spec, np.random.default_rng(s))
        assert ym.shape == (8, 10) and xm.shape == x.shape
        torch.testing.assert_close(ym.sum(1), torch.ones(8))
        lam = ym[0, 0].item()  # image 0 mixes with image 7 (roll by one)
        assert 0 <= lam <= 1 and ym[0, 7].item() == pytest.approx(1 - lam, abs=1e-6)
        if kind == "mixup":
            torch.testing.assert_close(xm[0], lam * x[0] + (1 - lam) * x[7])
        else:
            from_0, from_7 = (xm[0] == x[0]).all(0), (xm[0] == x[7]).all(0)
            assert bool((from_0 | from_7).all())
            assert from_7.float().mean().item() == pytest.approx(1 - lam, abs=1e-6)


def test_loader_soft_targets_from_strong_config():
    images, labels = coordinate_images(64), torch.arange(64) % 10
    ld = loader(images, labels, 16, augment=augment_config("strong"), num_classes=10)
    for x, y in ld:
        assert y.shape == (16, 10) and y.dtype == torch.float32
        torch.testing.assert_close(y.sum(1), torch.ones(16))
        assert torch.isfinite(x).all()


def test_loader_rejects_bad_input():
    with pytest.raises(ValueError, match="uint8"):
        GPUBatchLoader(torch.zeros(4, 3, 32, 32), torch.zeros(4), 2, train=True, mean=MEAN0, std=STD1)
    with pytest.raises(ValueError, match="num_classes"):
        loader(coordinate_images(4), augment={"mixup_alpha": 1.0, "mixup_prob": 0.5})
    with pytest.raises(ConfigError, match="unknown augment keys"):
        loader(coordinate_images(4), augment={"rotate": 3})
    with pytest.raises(ValueError, match=r"augment.crop_padding=32 must be smaller than the 32x32 images"):
        loader(coordinate_images(4), augment={"crop_padding": 32})


# ---------------------------------------------------------------- datamodule
def test_datamodule_split_sizes_and_contract(synthetic_cifar10):
    dm = CIFARDataModule("cifar10", str(synthetic_cifar10), val_size=100, batch_size=32, eval_batch_size=64)
    dm.setup("fit")
    assert dm.num_classes == 10 and dm.classes[1] == "automobile" and dm.image_size == 32
    assert len(dm.mean) == 3 and len(dm.std) == 3
    val_y = torch.cat([y for _, y in dm.val_dataloader()])
    test_size = sum(y.shape[0] for _, y in dm.test_dataloader())
    assert dm.train_arrays()[0].shape[0] == 412 and val_y.shape[0] == 100 and test_size == 256
    assert dm.steps_per_epoch == 412 // 32 == len(dm.train_dataloader())
    # the split is the one cifar_splits holds out (cifar-eval rebuilds it so), fixed by split_seed
    assert torch.equal(
        val_y, torch.from_numpy(cifar_splits(synthetic_cifar10, "cifar10", val_size=100).val[1])
    )
    again = CIFARDataModule("cifar10", str(synthetic_cifar10), val_size=100)
    again.setup("fit")
    assert torch.equal(torch.cat([y for _, y in again.val_dataloader()]), val_y)
    assert len(dm.val_dataloader()) == 2


def test_datamodule_no_validation_and_num_train(synthetic_cifar10):
    dm = CIFARDataModule("cifar10", str(synthetic_cifar10), val_size=0, num_train=300, batch_size=100)
    dm.setup("fit")
    assert dm.val_dataloader() == [] and dm.train_arrays()[0].shape[0] == 300 and dm.steps_per_epoch == 3
    too_many = CIFARDataModule("cifar10", str(synthetic_cifar10), val_size=100, num_train=500)
    with pytest.raises(ConfigError, match="num_train=500 but only 412"):
        too_many.setup("fit")
    with pytest.raises(ConfigError, match="val_size"):
        CIFARDataModule("cifar10", str(synthetic_cifar10), val_size=512).setup("fit")
    with pytest.raises(ConfigError, match="loader"):
        CIFARDataModule(loader="tpu")


def test_datamodule_missing_data_message(tmp_path):
    dm = CIFARDataModule("cifar100", str(tmp_path / "absent"))
    with pytest.raises(DataError, match="cifar-100-python does not exist; set data.root="):
        dm.setup("fit")


def test_auto_loader_on_cpu_is_the_batched_loader(synthetic_cifar10):
    dm = CIFARDataModule("cifar10", str(synthetic_cifar10), val_size=0, loader="auto")
    dm.setup("fit")
    assert isinstance(dm.train_dataloader(), GPUBatchLoader)
    dm.loader = "cpu"
    assert isinstance(dm.train_dataloader(), torch.utils.data.DataLoader)


@pytest.mark.parametrize("loader_kind", ["gpu", "cpu"])
@pytest.mark.parametrize("augment", AUGMENT_CONFIGS)
def test_every_augment_config_runs_on_both_loaders(synthetic_cifar100, loader_kind, augment):
    dm = CIFARDataModule(
        "cifar100", str(synthetic_cifar100), val_size=64, batch_size=32, loader=loader_kind,
        augment=augment_config(augment),
    )  # fmt: skip
    dm.setup("fit")
    x, y = next(iter(dm.train_dataloader()))
    assert x.shape == (32, 3, 32, 32) and x.dtype == torch.float32 and torch.isfinite(x).all()
    if dm.augment.mixes:
        assert y.shape == (32, 100)
        torch.testing.assert_close(y.sum(1), torch.ones(32))
    else:
        assert y.shape == (32,) and y.dtype == torch.int64
    xv, yv = next(iter(dm.val_dataloader()))
    assert xv.shape == (64, 3, 32, 32) and yv.dtype == torch.int64


def test_both_loaders_agree_on_eval_batches(synthetic_cifar10):
    out = {}
    for kind in ("gpu", "cpu"):
        dm = CIFARDataModule("cifar10", str(synthetic_cifar10), val_size=0, eval_batch_size=100, loader=kind)
        dm.setup("test")
        out[kind] = next(iter(dm.test_dataloader()))
    torch.testing.assert_close(out["gpu"][0], out["cpu"][0], rtol=1e-5, atol=1e-5)
    assert torch.equal(out["gpu"][1], out["cpu"][1])


@pytest.mark.parametrize("name", ["cifar10", "cifar100"])
def test_data_configs_instantiate(name, synthetic_cifar10, synthetic_cifar100):
    from hydra.utils import instantiate
    from omegaconf import OmegaConf

    root = synthetic_cifar10 if name == "cifar10" else synthetic_cifar100
    cfg = OmegaConf.load(CONF / "data" / f"{name}.yaml")
    cfg.root, cfg.seed, cfg.val_size = str(root), 0, 12
    dm = instantiate(cfg, augment=augment_config("standard"))
    dm.setup("fit")
    assert dm.num_classes == (10 if name == "cifar10" else 100)


def test_augment_configs_have_the_same_keys():
    keys = {name: set(augment_config(name)) for name in AUGMENT_CONFIGS}
    assert {"none", "standard", "strong"} <= set(keys)
    assert all(k == keys["standard"] for k in keys.values())
    for name in AUGMENT_CONFIGS:
        AugmentSpec.from_config(augment_config(name))


@pytest.mark.parametrize("loader_kind", ["gpu", "cpu"])
def test_lightning_fit_learns_synthetic_data(synthetic_cifar10, loader_kind):
    import lightning as L
    import torch.nn.functional as F

    class Tiny(L.LightningModule):
        def __init__(self):
            super().__init__()
            self.net = torch.nn.Sequential(
                torch.nn.Conv2d(3, 8, 3, 2, 1), torch.nn.ReLU(), torch.nn.AdaptiveAvgPool2d(1),
                torch.nn.Flatten(), torch.nn.Linear(8, 10),
            )  # fmt: skip
            self.epochs_seen = []

        def on_train_epoch_start(self):
            self.epochs_seen.append(self.trainer.train_dataloader.epoch if loader_kind == "gpu" else -1)

        def training_step(self, batch, _):
            return F.cross_entropy(self.net(batch[0]), batch[1])

        def validation_step(self, batch, _):
            self.log("val_acc", (self.net(batch[0]).argmax(1) == batch[1]).float().mean())

        def configure_optimizers(self):
            return torch.optim.Adam(self.parameters(), 3e-2)

    dm = CIFARDataModule("cifar10", str(synthetic_cifar10), val_size=128, batch_size=32, loader=loader_kind)
    model = Tiny()
    trainer = L.Trainer(max_epochs=3, accelerator="cpu", logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False)  # fmt: skip
    trainer.fit(model, dm)
    assert trainer.global_step == 3 * dm.steps_per_epoch == 3 * 12
    assert trainer.callback_metrics["val_acc"] > 0.5
    if loader_kind == "gpu":
        assert model.epochs_seen == [0, 1, 2]  # Lightning drove set_epoch through loader.sampler


@pytest.mark.slow
def test_real_cifar10_copy_reads(real_cifar10):
    arrays = load_cifar(real_cifar10, "cifar10")
    assert arrays.train_images.shape == (10000, 3, 32, 32) and arrays.test_images.shape == (10000, 3, 32, 32)
    assert np.bincount(arrays.test_labels).tolist() == [1000] * 10
    mean = arrays.train_images.reshape(10000, 3, -1).mean(axis=(0, 2)) / 255
    np.testing.assert_allclose(mean, (0.4914, 0.4822, 0.4465), atol=0.02)


def test_gpu_loader_batches_skip_lightnings_device_transfer(synthetic_cifar10):
    """GPU-loader batches are built on the training device: the hook hands them on untouched."""
    device = torch.device("cpu")
    gpu = CIFARDataModule(root=str(synthetic_cifar10), val_size=0, batch_size=16, loader="gpu")
    gpu.setup("fit")
    batch = next(iter(gpu.train_dataloader()))
    assert gpu.transfer_batch_to_device(batch, device, 0) is batch
    cpu = CIFARDataModule(root=str(synthetic_cifar10), val_size=0, batch_size=16, loader="cpu")
    cpu.setup("fit")
    x, y = next(iter(cpu.train_dataloader()))
    moved = cpu.transfer_batch_to_device([x, y], device, 0)
    assert moved is not None and torch.equal(moved[0], x) and torch.equal(moved[1], y)
