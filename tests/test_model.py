"""One model definition: build, freeze policies, artifacts round trip, weights offline."""

import json

import pytest
import torch

from dogbreed.errors import ConfigError, WeightsUnavailableError
from dogbreed.training import model as M


def cfg(**kw):
    base = dict(num_classes=5, arch="resnet18", image_size=48, classes=tuple(f"{i:03d}.Breed_{i}" for i in range(1, 6)))
    return M.ModelConfig(**{**base, **kw})


@pytest.mark.parametrize("freeze,trainable_prefixes", [
    ("head", {"head"}), ("layer4", {"head", "backbone.layer4"}), ("none", {"head", "backbone"})])
def test_freeze_policies(freeze, trainable_prefixes):
    net = M.build_model(cfg(freeze=freeze))
    trainable = {n for n, p in net.named_parameters() if p.requires_grad}
    assert trainable and all(any(n.startswith(p) for p in trainable_prefixes) for n in trainable)
    if freeze == "head":
        assert all(n.startswith("head") for n in trainable)
    net.train()
    assert net.backbone.training is (freeze == "none")  # frozen BatchNorm keeps its statistics
    if freeze == "layer4":
        assert net.backbone.layer4.training


@pytest.mark.parametrize("head,n_linear", [("linear", 1), ("mlp", 2)])
def test_heads(head, n_linear):
    net = M.build_model(cfg(head=head, hidden_units=32))
    assert sum(isinstance(m, torch.nn.Linear) for m in net.head) == n_linear
    assert net(torch.randn(2, 3, 48, 48)).shape == (2, 5)


def test_bad_config_is_a_config_error():
    with pytest.raises(ConfigError, match="unknown arch"):
        cfg(arch="vgg16")
    with pytest.raises(ConfigError, match="freeze"):
        cfg(freeze="everything")


def test_artifacts_round_trip_exactly(tmp_path):
    net = M.build_model(cfg(head="mlp", hidden_units=64)).eval()
    M.save_artifacts(net, tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["labels.json", "model.pth", "model_config.json"]
    labels = json.loads((tmp_path / "labels.json").read_text())
    assert labels[0] == {"index": 0, "class": "001.Breed_1", "breed": "Breed 1"}
    loaded = M.load_model(tmp_path)
    x = torch.randn(3, 3, 48, 48)
    assert torch.equal(net(x), loaded(x))
    assert loaded.config == net.config


def test_state_dict_loads_with_weights_only(tmp_path):
    M.save_artifacts(M.build_model(cfg()), tmp_path)
    state = torch.load(tmp_path / "model.pth", weights_only=True)
    assert all(isinstance(v, torch.Tensor) for v in state.values())


def test_weights_from_a_path(tmp_path):
    src = M.build_model(cfg())
    M.save_artifacts(src, tmp_path)
    net = M.build_model(cfg(num_classes=3, classes=("a", "b", "c")), weights=str(tmp_path / "model.pth"))
    assert torch.equal(net.backbone.conv1.weight, src.backbone.conv1.weight)
    with pytest.raises(ConfigError, match="does not exist"):
        M.build_model(cfg(), weights=str(tmp_path / "missing.pth"))


def test_imagenet_weights_offline_fail_fast(monkeypatch, tmp_path):
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))
    monkeypatch.setattr(M, "_online", lambda host, timeout=3.0: False)
    with pytest.raises(WeightsUnavailableError) as err:
        M.build_model(cfg(), weights="imagenet")
    msg = str(err.value)
    assert str(tmp_path / "hub" / "checkpoints") in msg and "--weights none" in msg


def test_breed_names():
    assert M.breed_name("001.Affenpinscher") == "Affenpinscher"
    assert M.breed_name("042.German_shepherd_dog") == "German shepherd dog"
    assert M.breed_name("plain") == "plain"


def test_random_backbone_is_the_same_in_every_build_the_head_follows_the_seed():
    torch.manual_seed(1)
    a = M.build_model(cfg())
    torch.manual_seed(2)
    b = M.build_model(cfg())
    assert torch.equal(a.backbone.conv1.weight, b.backbone.conv1.weight)
    assert not torch.equal(a.head[0].weight, b.head[0].weight)


@pytest.mark.parametrize("freeze", ["head", "layer4"])
def test_model_around_a_saved_backbone_is_the_model_build_model_gives(freeze):
    torch.manual_seed(3)
    built = M.build_model(cfg(freeze=freeze))
    torch.manual_seed(3)  # the same trial seed draws the same fresh head
    rebuilt = M.build_model_with_backbone(cfg(freeze=freeze), built.backbone.state_dict())
    assert built.state_dict().keys() == rebuilt.state_dict().keys()
    for name, tensor in built.state_dict().items():
        assert torch.equal(rebuilt.state_dict()[name], tensor), name
    assert ([n for n, p in built.named_parameters() if p.requires_grad]
            == [n for n, p in rebuilt.named_parameters() if p.requires_grad])


def test_the_cli_and_the_scripts_share_one_set_of_choices_and_defaults():
    from dogbreed.commands import options
    from dogbreed.training import choices
    from dogbreed.training.args import get_args_parser

    args = get_args_parser().parse_args([])
    config = M.ModelConfig(num_classes=2)
    for name in ("arch", "head", "hidden_units", "dropout", "freeze", "image_size"):
        assert getattr(args, name) == getattr(config, name) == getattr(choices, f"DEFAULT_{name.upper()}"), name
    assert args.weights == choices.DEFAULT_WEIGHTS
    assert tuple(options.ARCH_CHOICES) == tuple(M.ARCHS) and tuple(options.FREEZE_CHOICES) == choices.FREEZE_CHOICES


@pytest.mark.parametrize("head", ["linear", "mlp"])
def test_a_frozen_network_stores_its_low_precision_weights_and_answers_as_autocast_does(head):
    from dogbreed.training.device import Precision

    bf16 = Precision("cpu", "bfloat16", True)
    model = M.fold_batchnorm(M.build_model(cfg(arch="resnet18", head=head, image_size=32), "none").eval())
    for p in model.parameters():
        p.requires_grad_(False)
    x = torch.randn(3, 3, 32, 32)
    with torch.inference_mode(), bf16.autocast():
        as_autocast = bf16.prepare_model(model)(bf16.prepare_input(x))
        frozen_model = bf16.prepare_frozen(model)
        frozen = frozen_model(bf16.prepare_input(x))
    assert torch.equal(as_autocast, frozen)
    layers = [m for m in frozen_model.modules() if isinstance(m, (torch.nn.Conv2d, torch.nn.Linear))]
    assert layers and all(p.dtype == torch.bfloat16 for m in layers for p in m.parameters())
    assert all(p.dtype == torch.float32 for m in frozen_model.modules()
               if not isinstance(m, (torch.nn.Conv2d, torch.nn.Linear)) for p in m.parameters(recurse=False))

    fp32 = Precision("cpu", None, False)
    plain = M.build_model(cfg(arch="resnet18", image_size=32), "none").eval()
    assert all(p.dtype == torch.float32 for p in fp32.prepare_frozen(plain).parameters())
