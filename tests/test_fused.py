"""The fused CPU forward (dogbreed.training.fused): the same features as eager PyTorch, eager
whenever the fused graph cannot be trusted, and off on request."""

import pytest
import torch

from dogbreed.training.device import select_precision
from dogbreed.training.features import build_backbone_model, inference_backbone
from dogbreed.training.fused import ENV_SWITCH, cpu_forward, eager_forward
from dogbreed.training.model import ModelConfig


def relative_error(a, b) -> float:
    return ((a.float() - b.float()).norm() / b.float().norm()).item()


@pytest.fixture(scope="module")
def backbone():
    torch.manual_seed(0)
    model = build_backbone_model(ModelConfig(num_classes=5, arch="resnet18", image_size=64), "none")
    return model.backbone


@pytest.mark.parametrize("mixed", ["off", "auto"])
def test_the_fused_forward_computes_what_eager_computes_at_any_batch_size(backbone, mixed):
    precision = select_precision("cpu", mixed)
    net = inference_backbone(backbone, precision)
    x = precision.prepare_input(torch.rand(4, 3, 64, 64))
    forward, eager = cpu_forward(net, precision, x), eager_forward(net, precision)
    assert forward.fused, f"{precision.describe()}: the fused graph fell back to eager"
    fp32 = backbone.eval()
    with torch.inference_mode():
        for batch in (x, x[:1], x[:3], x):  # new shapes are profiled and fused again
            got, want, exact = forward(batch), eager(batch), fp32(batch.float())
            assert got.shape == want.shape and got.dtype == want.dtype
            # as close to the fp32 network as eager is: bf16 rounds in another order, no worse
            assert relative_error(got, exact) <= max(2 * relative_error(want, exact), 1e-4)


def test_a_graph_that_disagrees_with_eager_is_not_used():
    class Counter(torch.nn.Module):  # tracing bakes in the count: the traced graph is wrong
        calls = 0

        def forward(self, x):
            self.calls += 1
            return x * self.calls

    precision = select_precision("cpu", "off")
    forward = cpu_forward(Counter().eval(), precision, torch.ones(2, 3))
    assert not forward.fused


def test_a_module_that_cannot_be_traced_runs_eager():
    class Untraceable(torch.nn.Module):
        def forward(self, x):
            return {"not": "a tensor"}

    precision = select_precision("cpu", "off")
    assert not cpu_forward(Untraceable().eval(), precision, torch.ones(2, 3)).fused


def test_switched_off_by_the_environment(backbone, monkeypatch):
    monkeypatch.setenv(ENV_SWITCH, "off")
    precision = select_precision("cpu", "off")
    net = inference_backbone(backbone, precision)
    assert not cpu_forward(net, precision, torch.rand(2, 3, 64, 64)).fused
