"""`python run.py task=eval`: a checkpoint's top-1/top-5 through the recipe's evaluation pipeline, with weights in
our, timm's and torchvision's formats, on an image folder the tests write; bad weights fail with one line before
any image is read."""

from __future__ import annotations

import csv
import json

import pytest
import torch

from modernize import compose
from modernize.training.cli import run_task
from modernize.data.datasets import MEAN_STD
from helpers import photo

CLASSES = ("cat", "dog", "fox")


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    """Real-size images (landscape and portrait), three per class in train/ and val/."""
    root = tmp_path_factory.mktemp("imagefolder")
    for split in ("train", "val"):
        for c, name in enumerate(CLASSES):
            (root / split / name).mkdir(parents=True)
            for i in range(3):
                size = (320, 240) if i % 2 else (240, 320)
                photo(*size, seed=100 * c + 10 * i + (split == "val")).save(root / split / name / f"{i}.jpg")
    return root


def evaluate(tmp_path, folder, weights, *overrides):
    cfg = compose(["task=eval", "data=imagefolder", f"data.root={folder}", f"eval.weights={weights}",
                   f"eval.out={tmp_path / 'out'}", "eval.batch_size=4", "train.device=cpu", "train.workers=0",
                   *overrides])
    result = run_task(cfg, tmp_path / "run", multirun=False)
    written = json.loads((tmp_path / "out" / "eval.json").read_text())
    with open(tmp_path / "out" / "predictions.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    return result, written, rows


def reference_predictions(model, transform, folder) -> list[list[int]]:
    from torchvision.datasets import ImageFolder

    model.eval()
    dataset = ImageFolder(str(folder / "val"), transform=transform)
    with torch.no_grad():
        logits = model(torch.stack([dataset[i][0] for i in range(len(dataset))]))
    return logits.topk(3, dim=1).indices.tolist()


def check(result, written, rows, expected_top, folder):
    from torchvision.datasets import ImageFolder

    samples = ImageFolder(str(folder / "val")).samples
    assert result == written and result["images"] == len(samples) == len(rows)
    assert [r["path"] for r in rows] == [path for path, _ in samples]
    assert [int(r["label"]) for r in rows] == [label for _, label in samples]
    assert [[int(i) for i in r["top5"].split()] for r in rows] == expected_top
    top1 = 100 * sum(top[0] == label for top, (_, label) in zip(expected_top, samples)) / len(samples)
    assert result["top1"] == pytest.approx(top1) and result["top5"] == 100.0  # 3 classes: the top 3 hold all


@pytest.mark.slow  # a paper-scale model, seconds
def test_timm_convnext_weights_give_timms_predictions(tmp_path, folder):
    import timm
    from timm.data import create_transform

    torch.manual_seed(0)
    reference = timm.create_model("convnext_tiny", num_classes=len(CLASSES))
    torch.save(reference.state_dict(), tmp_path / "convnext_tiny_timm.pth")
    result, written, rows = evaluate(tmp_path, folder, tmp_path / "convnext_tiny_timm.pth",
                                     "+step=separate_downsampling", "profile=imagenet")
    transform = create_transform(224, is_training=False, crop_pct=0.875, interpolation="bicubic",
                                 mean=MEAN_STD["imagefolder"][0], std=MEAN_STD["imagefolder"][1])
    check(result, written, rows, reference_predictions(reference, transform, folder), folder)
    assert result["weights_used"] == "model" and result["interpolation"] == "bicubic"


@pytest.mark.slow  # a paper-scale model, seconds
def test_official_convnext_checkpoint_layout_is_read(tmp_path, folder):
    """The official convnext_tiny_1k_224_ema.pth stores {"model": state_dict} with the official names."""
    import timm
    from timm.data import create_transform

    from modernize.design.export import timm_to_official

    torch.manual_seed(1)
    reference = timm.create_model("convnext_tiny", num_classes=len(CLASSES))
    torch.save({"model": timm_to_official(reference.state_dict()), "epoch": 299}, tmp_path / "official.pth")
    result, written, rows = evaluate(tmp_path, folder, tmp_path / "official.pth", "+step=separate_downsampling",
                                     "profile=imagenet")
    transform = create_transform(224, is_training=False, crop_pct=0.875, interpolation="bicubic",
                                 mean=MEAN_STD["imagefolder"][0], std=MEAN_STD["imagefolder"][1])
    check(result, written, rows, reference_predictions(reference, transform, folder), folder)


@pytest.mark.slow  # a paper-scale model, seconds
def test_torchvision_resnet50_weights_give_torchvisions_predictions(tmp_path, folder):
    import torchvision
    from torchvision.transforms import v2

    torch.manual_seed(0)
    reference = torchvision.models.resnet50(num_classes=len(CLASSES))
    torch.save(reference.state_dict(), tmp_path / "resnet50.pth")
    result, written, rows = evaluate(tmp_path, folder, tmp_path / "resnet50.pth", "+step=resnet50",
                                     "profile=imagenet")
    transform = v2.Compose([v2.PILToTensor(), v2.Resize(256, antialias=True), v2.CenterCrop(224),
                            v2.ToDtype(torch.float, scale=True), v2.Normalize(*MEAN_STD["imagefolder"])])
    check(result, written, rows, reference_predictions(reference, transform, folder), folder)
    assert result["interpolation"] == "bilinear"


WNIDS = ("n01443537", "n02085620", "n04592741")  # goldfish, Chihuahua, wing: three of ImageNet's 1000 classes


@pytest.fixture(scope="module")
def wnid_folder(tmp_path_factory):
    """An ImageNet subset as Imagenette or ImageNet-R ship it: class folders named by wnid, fewer than 1000."""
    root = tmp_path_factory.mktemp("wnids")
    for c, wnid in enumerate(WNIDS):
        (root / "val" / wnid).mkdir(parents=True)
        for i in range(3):
            photo(320, 240, seed=1000 + 10 * c + i).save(root / "val" / wnid / f"{i}.jpg")
    return root


@pytest.mark.slow  # a paper-scale model, seconds
def test_a_1000_class_checkpoint_scores_a_folder_of_imagenet_wnids_through_their_imagenet_indices(tmp_path,
                                                                                                   wnid_folder):
    """The folder's labels become ImageNet indices (timm's ImageNetInfo order); top-1/top-5 are over the 1000
    outputs, and restricted_top1 over the folder's 3 classes only, as ImageNet-R / -A are scored."""
    import timm
    from timm.data import ImageNetInfo, create_transform
    from torchvision.datasets import ImageFolder

    torch.manual_seed(2)
    reference = timm.create_model("convnext_tiny", num_classes=1000).eval()
    torch.save(reference.state_dict(), tmp_path / "convnext_tiny_1k.pth")
    result, written, rows = evaluate(tmp_path, wnid_folder, tmp_path / "convnext_tiny_1k.pth",
                                     "+step=separate_downsampling", "profile=imagenet")
    indices = [ImageNetInfo().label_names().index(w) for w in WNIDS]
    transform = create_transform(224, is_training=False, crop_pct=0.875, interpolation="bicubic",
                                 mean=MEAN_STD["imagefolder"][0], std=MEAN_STD["imagefolder"][1])
    dataset = ImageFolder(str(wnid_folder / "val"), transform=transform)
    with torch.no_grad():
        logits = reference(torch.stack([dataset[i][0] for i in range(len(dataset))]))
    labels = torch.tensor([indices[label] for _, label in dataset.samples])
    top5 = logits.topk(5, dim=1).indices
    restricted = torch.tensor(indices)[logits[:, indices].argmax(dim=1)]
    assert [int(r["label"]) for r in rows] == labels.tolist()  # ImageNet indices, not 0..2
    assert [[int(i) for i in r["top5"].split()] for r in rows] == top5.tolist()
    assert result == written and result["imagenet_subset_classes"] == 3
    assert result["top1"] == pytest.approx(100 * (top5[:, 0] == labels).float().mean().item())
    assert result["top5"] == pytest.approx(100 * (top5 == labels[:, None]).any(dim=1).float().mean().item())
    assert result["restricted_top1"] == pytest.approx(100 * (restricted == labels).float().mean().item())


def test_our_checkpoint_evaluates_to_its_runs_own_top1(tmp_path, folder):
    """A run's last.pt: by default its EMA's weights (the paper's ConvNeXt-T number is an EMA's), the model's with
    eval.ema=false; each gives the top-1 the run itself reported for them."""
    from modernize.training.train import train

    run = ["+step=separate_downsampling", "profile=smoke", "profile.batch_size=3", "profile.epochs=1",
           "profile.train_subset=null", "profile.val_subset=null",
           "recipe.ema_decay=0.9", "data=imagefolder", f"data.root={folder}", "train.device=cpu", "train.workers=0",
           "train.threads=1", "logger.wandb.mode=disabled"]
    summary = train(compose(run), tmp_path / "trained")
    weights = tmp_path / "trained" / "last.pt"
    same = [o for o in run if not o.startswith(("logger", "train.threads"))]
    ema, _, _ = evaluate(tmp_path, folder, weights, *same)
    assert ema["weights_used"] == "ema" and ema["top1"] == pytest.approx(summary["ema_final_top1"])
    model, _, _ = evaluate(tmp_path, folder, weights, *same, "eval.ema=false")
    assert model["weights_used"] == "model" and model["top1"] == pytest.approx(summary["final_top1"])


def _unreadable_images(root):
    """A data set whose every image is garbage: reading one would fail with DataError naming it."""
    for split in ("train", "val"):
        for name in CLASSES:
            (root / split / name).mkdir(parents=True)
            (root / split / name / "0.jpg").write_bytes(b"not an image")
    return root


@pytest.mark.parametrize("make_weights, expected", [
    (lambda d: d / "missing.pth", "does not exist or is not a file"),
    (lambda d: _truncated(d), "is not a readable PyTorch checkpoint"),
    (lambda d: _resnet(d), "does not fit separate_downsampling at profile=imagenet"),
    (lambda d: _not_a_state_dict(d), "checkpoint is not a state dict"),
])
def test_bad_weights_fail_with_one_line_before_any_image_is_read(tmp_path, capsys, make_weights, expected):
    root = _unreadable_images(tmp_path / "data")
    weights = make_weights(tmp_path)
    cfg = compose(["task=eval", "+step=separate_downsampling", "profile=imagenet", "data=imagefolder",
                   f"data.root={root}", f"eval.weights={weights}", "train.device=cpu", "train.workers=0"])
    with pytest.raises(SystemExit) as info:
        run_task(cfg, tmp_path / "run", multirun=False)
    err = capsys.readouterr().err
    assert info.value.code == 2 and expected in err and "not a readable image" not in err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert not (tmp_path / "eval.json").exists()


def _truncated(d):
    import torchvision

    torch.save(torchvision.models.resnet50(num_classes=3).state_dict(), d / "full.pth")
    data = (d / "full.pth").read_bytes()
    (d / "truncated.pth").write_bytes(data[: len(data) // 2])
    return d / "truncated.pth"


def _resnet(d):
    import torchvision

    torch.save(torchvision.models.resnet50(num_classes=3).state_dict(), d / "resnet50.pth")
    return d / "resnet50.pth"


def _not_a_state_dict(d):
    torch.save({"epoch": 3, "args": [1, 2]}, d / "odd.pth")
    return d / "odd.pth"


@pytest.mark.parametrize("overrides, expected", [
    ([], "task=eval needs eval.weights=<a run folder, its last.pt, an exported file or a checkpoint>"),
    (["eval.weights=WEIGHTS", "eval.preprocessing=imagenet"], "eval.preprocessing must be one of run, data"),
    (["eval.weights=WEIGHTS", "eval.images=0"], "eval.images must be a positive integer or null, got 0"),
    (["eval.weights=WEIGHTS", "eval.batch_size=0"], "eval.batch_size must be a positive integer, got 0"),
    (["eval.weights=WEIGHTS", "eval.ema=maybe"], "eval.ema must be one of auto, true, false; got 'maybe'"),
    (["eval.weights=WEIGHTS", "eval.out=/proc/no-such/folder"], "cannot write the results into /proc/no-such"),
])
def test_bad_eval_settings_fail_with_one_line(tmp_path, capsys, overrides, expected):
    from modernize.training.proxy import run_spec
    from modernize.design.model import build

    cfg = compose(["+step=resnet50", "profile=smoke", "data=synthetic"])
    torch.save(build(run_spec(cfg, num_classes=10)).state_dict(), tmp_path / "w.pth")
    overrides = [o.replace("WEIGHTS", str(tmp_path / "w.pth")) for o in overrides]
    cfg = compose(["task=eval", "+step=resnet50", "profile=smoke", "data=synthetic", "train.device=cpu", *overrides])
    with pytest.raises(SystemExit) as info:
        run_task(cfg, tmp_path / "run", multirun=False)
    err = capsys.readouterr().err
    assert info.value.code == 2 and expected in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "eval.json").exists()


def test_a_folder_with_only_val_is_enough(tmp_path, folder):
    """Checking weights needs the validation images only: data.root may lack train/."""
    import shutil

    from modernize.training.proxy import run_spec
    from modernize.design.model import build

    root = tmp_path / "val-only"
    shutil.copytree(folder / "val", root / "val")
    cfg = compose(["+step=resnet50", "profile=smoke", "data=imagefolder", f"data.root={root}"])
    torch.save(build(run_spec(cfg, num_classes=len(CLASSES))).state_dict(), tmp_path / "ours.pth")
    result, _, rows = evaluate(tmp_path, root, tmp_path / "ours.pth", "+step=resnet50", "profile=smoke",
                               "profile.val_subset=null")
    assert result["images"] == len(rows) == 9


# --------------------------------------------------------------------------------------------------
# The weights are enough: the run's record builds the model and says how to preprocess
# --------------------------------------------------------------------------------------------------

FASHION_IMAGES = 400  # Fashion-MNIST test images written as PNG files


@pytest.fixture(scope="module")
def fashion_run(tmp_path_factory):
    """A short separate_downsampling run on Fashion-MNIST (the smoke profile's width, 32 px), and its first test
    images as an image folder of grayscale PNGs, one folder per class."""
    from PIL import Image

    from modernize.data.datasets import load_data
    from modernize.training.train import train

    root = tmp_path_factory.mktemp("fashion")
    train(compose(["+step=separate_downsampling", "profile=smoke", "profile.epochs=1", "profile.train_subset=2000",
                   "train.device=cpu", "train.threads=1", "logger.wandb.mode=disabled"]), root / "run")
    val = load_data("fashion_mnist", None, resolution=32).val
    for i in range(FASHION_IMAGES):
        label = int(val.labels[i])
        (root / "folder" / "val" / f"{label}").mkdir(parents=True, exist_ok=True)
        Image.fromarray(val.images[i, 0].numpy(), mode="L").save(root / "folder" / "val" / f"{label}" / f"{i:05d}.png")
    return root


def eval_run(out, *overrides):
    cfg = compose(["task=eval", f"eval.out={out}", "train.device=cpu", "train.workers=0", *overrides])
    return run_task(cfg, out / "run", multirun=False)


@pytest.mark.slow
def test_a_fashion_mnist_model_scores_a_folder_of_its_own_test_images_as_it_does_in_memory(tmp_path, fashion_run):
    """Issue 38's silent wrong number: the folder path normalised with ImageNet's statistics whatever the model was
    trained on. The run's folder alone now builds its model and preprocessing, in memory and from the folder."""
    import numpy as np

    run = fashion_run / "run"
    in_memory = eval_run(tmp_path / "memory", f"eval.weights={run}", "eval.ema=false")  # the EMA of 1 epoch: ~init
    assert in_memory["data"] == "fashion_mnist" and in_memory["images"] == 10_000  # the whole split, not 64
    assert in_memory["preprocessing"] == json.loads((run / "summary.json").read_text())["preprocessing"]
    folder = eval_run(tmp_path / "folder", f"eval.weights={run / 'last.pt'}", "data=imagefolder",
                      f"data.root={fashion_run / 'folder'}", "eval.ema=false")
    assert folder["images"] == FASHION_IMAGES and folder["preprocessing"] == in_memory["preprocessing"]
    with open(tmp_path / "folder" / "predictions.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    index = [int(row["path"].rsplit("/", 1)[1].removesuffix(".png")) for row in rows]
    memory_top1 = np.load(tmp_path / "memory" / "probabilities.npy")[index].argmax(axis=1)
    folder_top1 = np.load(tmp_path / "folder" / "probabilities.npy").argmax(axis=1)
    assert (memory_top1 == folder_top1).mean() >= 0.98  # PNG round trip and PIL's resize: resampling noise only
    labels = np.array([int(row["label"]) for row in rows])
    assert abs((memory_top1 == labels).mean() - folder["top1"] / 100) <= 0.02 and folder["top1"] > 20
    # the data set's own statistics (ImageNet's for a folder) only when asked for, and said so
    asked = eval_run(tmp_path / "asked", f"eval.weights={run}", "data=imagefolder",
                     f"data.root={fashion_run / 'folder'}", "eval.preprocessing=data")
    assert asked["preprocessing_from"] == "data" and asked["preprocessing"]["mean"] == [0.485, 0.456, 0.406]


@pytest.mark.slow
@pytest.mark.parametrize("overrides, expected", [
    (["+step=gelu"], "is a run of separate_downsampling (", ),
    (["profile=gpu"], "profile=gpu contradicts the record of eval.weights="),
])
def test_typed_settings_that_contradict_the_record_are_refused_naming_both(tmp_path, capsys, fashion_run, overrides,
                                                                            expected):
    with pytest.raises(SystemExit) as info:
        eval_run(tmp_path, f"eval.weights={fashion_run / 'run'}", *overrides)
    err = capsys.readouterr().err
    assert info.value.code == 2 and expected in err and len(err.strip().splitlines()) == 1
    assert ("block.activation=gelu (layer" not in err) and ("vs" in err or "(" in err)
    assert not (tmp_path / "eval.json").exists()


@pytest.mark.slow
def test_settings_that_agree_with_the_record_are_accepted(tmp_path, fashion_run):
    result = eval_run(tmp_path, f"eval.weights={fashion_run / 'run' / 'last.pt'}", "+step=separate_downsampling",
                      "profile=smoke", "eval.images=500")
    assert result["images"] == 500 and result["images_in_split"] == 10_000
    assert result["label"] == "separate_downsampling"


@pytest.mark.slow
def test_eval_json_has_nll_and_calibration_error_of_the_per_image_probabilities(tmp_path, fashion_run):
    import numpy as np

    result = eval_run(tmp_path, f"eval.weights={fashion_run / 'run'}", "eval.images=1000")
    probabilities = torch.from_numpy(np.load(tmp_path / "probabilities.npy"))
    with open(tmp_path / "predictions.csv", newline="") as f:
        labels = torch.tensor([int(row["label"]) for row in csv.DictReader(f)])
    assert probabilities.shape == (1000, 10) and torch.allclose(probabilities.sum(dim=1), torch.ones(1000))
    assert result["nll"] == pytest.approx(-probabilities[torch.arange(1000), labels].log().mean().item(), rel=1e-4)
    assert result["top1"] == pytest.approx(100 * (probabilities.argmax(dim=1) == labels).float().mean().item())
    assert 0 <= result["ece"] <= 1 and "15 equal-width" in result["ece_binning"]


def test_the_expected_calibration_error_of_a_hand_worked_example():
    """Two bins used of 15: confidence 0.9 (bin 14) right 1 of 2 -> |0.5 - 0.9| = 0.4; confidence 0.5 (bin 7) right
    1 of 2 -> 0. Each holds half the images: ECE 0.2."""
    from modernize.training.evaluation import expected_calibration_error

    probabilities = torch.tensor([[0.9, 0.1], [0.9, 0.1], [0.5, 0.5], [0.5, 0.5]])
    assert expected_calibration_error(probabilities, torch.tensor([0, 1, 0, 1])) == pytest.approx(0.2)


def test_a_flat_folder_of_class_folders_is_read_as_the_validation_set(tmp_path, folder):
    """ImageNet-R's and -A's layout: the class folders themselves, no val/."""
    import shutil

    from modernize.training.proxy import run_spec
    from modernize.design.model import build

    root = tmp_path / "flat"
    shutil.copytree(folder / "val", root)
    cfg = compose(["+step=resnet50", "profile=smoke", "data=imagefolder", f"data.root={root}"])
    torch.save(build(run_spec(cfg, num_classes=len(CLASSES))).state_dict(), tmp_path / "ours.pth")
    result, _, rows = evaluate(tmp_path, root, tmp_path / "ours.pth", "+step=resnet50", "profile=smoke")
    assert result["images"] == len(rows) == 9 and result["images_in_split"] == 9
