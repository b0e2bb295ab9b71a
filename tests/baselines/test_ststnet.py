from __future__ import annotations

import copy
from collections import OrderedDict

import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file

from micronbert.baselines import STSTNet, flow_images_to_tensor

PUBLISHED_SHAPES = OrderedDict(
    [
        ("conv1.weight", (3, 3, 3, 3)), ("conv1.bias", (3,)),
        ("conv2.weight", (5, 3, 3, 3)), ("conv2.bias", (5,)),
        ("conv3.weight", (8, 3, 3, 3)), ("conv3.bias", (8,)),
        ("bn1.weight", (3,)), ("bn1.bias", (3,)), ("bn1.running_mean", (3,)), ("bn1.running_var", (3,)),
        ("bn1.num_batches_tracked", ()),
        ("bn2.weight", (5,)), ("bn2.bias", (5,)), ("bn2.running_mean", (5,)), ("bn2.running_var", (5,)),
        ("bn2.num_batches_tracked", ()),
        ("bn3.weight", (8,)), ("bn3.bias", (8,)), ("bn3.running_mean", (8,)), ("bn3.running_var", (8,)),
        ("bn3.num_batches_tracked", ()),
        ("fc.weight", (3, 400)), ("fc.bias", (3,)),
    ]
)


def _published_state_dict(seed: int = 0) -> OrderedDict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    state = OrderedDict()
    for name, shape in PUBLISHED_SHAPES.items():
        if name.endswith("num_batches_tracked"):
            state[name] = torch.tensor(123)
        elif name.endswith("running_var"):
            state[name] = torch.rand(shape, generator=generator) + 0.5
        else:
            state[name] = torch.randn(shape, generator=generator)
    return state


def test_output_shape_for_default_and_other_class_counts():
    assert STSTNet()(torch.rand(4, 3, 28, 28) * 255).shape == (4, 3)
    assert STSTNet(num_classes=5).eval()(torch.rand(2, 3, 28, 28)).shape == (2, 5)


def test_parameter_count_matches_the_hand_computed_number():
    # three 3×3 convolutions on 3 channels with 3, 5, 8 filters: (27 + 1)·16 = 448 weights and biases;
    # BatchNorm: 2·16 = 32; fc: 400·3 + 3 = 1203
    assert sum(parameter.numel() for parameter in STSTNet(num_classes=3).parameters()) == 448 + 32 + 1203


def test_state_dict_has_exactly_the_published_names_and_shapes():
    state = STSTNet().state_dict()
    assert {name: tuple(tensor.shape) for name, tensor in state.items()} == dict(PUBLISHED_SHAPES)


def test_a_published_state_dict_loads_strictly_and_is_used():
    published = _published_state_dict()
    model = STSTNet()
    model.load_state_dict(published, strict=True)
    for name, tensor in model.state_dict().items():
        assert torch.equal(tensor, published[name]), name
    inputs = torch.rand(3, 3, 28, 28) * 255
    other = STSTNet()
    other.load_state_dict(_published_state_dict(seed=1), strict=True)
    assert not torch.allclose(model.eval()(inputs), other.eval()(inputs))


def test_a_state_dict_with_a_foreign_name_does_not_load_strictly():
    renamed = _published_state_dict()
    renamed["classifier.weight"] = renamed.pop("fc.weight")
    with pytest.raises(RuntimeError, match="fc.weight"):
        STSTNet().load_state_dict(renamed, strict=True)


def test_intermediate_shapes_follow_the_published_layout():
    model = STSTNet().eval()
    shapes: dict[str, tuple[int, ...]] = {}

    def record(name: str):
        def hook(module, args, output) -> None:
            shapes.setdefault(name, tuple(output.shape))

        return hook

    for name in ("conv", "maxpool", "avgpool"):
        getattr(model, name).register_forward_hook(record(name))
    model(torch.rand(1, 3, 28, 28))
    # the three streams (3 + 5 + 8 channels) are computed by one fused 16-channel convolution
    assert shapes == {"conv": (1, 16, 30, 30), "maxpool": (1, 16, 10, 10), "avgpool": (1, 16, 5, 5)}


def test_eval_mode_is_deterministic_and_train_mode_applies_dropout():
    torch.manual_seed(0)
    model = STSTNet()
    inputs = torch.rand(2, 3, 28, 28) * 255
    model.eval()
    assert torch.equal(model(inputs), model(inputs))
    model.train()
    assert not torch.equal(model(inputs), model(inputs))


def test_wrong_input_shape_is_rejected():
    with pytest.raises(ValueError, match=r"\(N, 3, 28, 28\)"):
        STSTNet()(torch.rand(1, 3, 32, 32))
    with pytest.raises(ValueError, match="num_classes"):
        STSTNet(num_classes=0)


def _separable_flow_images(per_class: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Class c has a bright square in channel c on a noisy background (uint8 flow-image layout)."""
    rng = np.random.default_rng(seed)
    images, labels = [], []
    for label in range(3):
        for _ in range(per_class):
            image = rng.integers(0, 60, size=(28, 28, 3), dtype=np.uint8)
            image[6:22, 6:22, label] = 230
            images.append(image)
            labels.append(label)
    return np.stack(images), np.array(labels)


def test_flow_images_to_tensor_keeps_values_and_reorders_axes():
    images, _ = _separable_flow_images(1, seed=0)
    tensor = flow_images_to_tensor(images)
    assert tensor.shape == (3, 3, 28, 28)
    assert tensor.dtype == torch.float32
    assert tensor[1, 1, 10, 10].item() == 230.0
    assert flow_images_to_tensor(images[0]).shape == (1, 3, 28, 28)
    with pytest.raises(ValueError, match="shape"):
        flow_images_to_tensor(images[..., :2])


def test_trains_on_a_tiny_separable_problem():
    torch.manual_seed(0)
    images, labels = _separable_flow_images(8, seed=1)
    inputs, targets = flow_images_to_tensor(images), torch.from_numpy(labels)
    model = STSTNet(num_classes=3)
    optimiser = torch.optim.Adam(model.parameters(), lr=5e-3)
    losses = []
    for _ in range(40):
        optimiser.zero_grad()
        loss = torch.nn.functional.cross_entropy(model(inputs), targets)
        loss.backward()
        optimiser.step()
        losses.append(loss.item())
    assert losses[-1] < 0.5 * losses[0]
    test_images, test_labels = _separable_flow_images(4, seed=2)
    with torch.no_grad():
        predictions = model.eval()(flow_images_to_tensor(test_images)).argmax(dim=1).numpy()
    np.testing.assert_array_equal(predictions, test_labels)


class ThreeBranchSTSTNet(torch.nn.Module):
    """The published three-branch form, written plainly: the reference the fused STSTNet must equal."""

    def __init__(self, dropout: float = 0.5) -> None:
        super().__init__()
        self.conv1 = torch.nn.Conv2d(3, 3, kernel_size=3, padding=2)
        self.conv2 = torch.nn.Conv2d(3, 5, kernel_size=3, padding=2)
        self.conv3 = torch.nn.Conv2d(3, 8, kernel_size=3, padding=2)
        self.bn1 = torch.nn.BatchNorm2d(3)
        self.bn2 = torch.nn.BatchNorm2d(5)
        self.bn3 = torch.nn.BatchNorm2d(8)
        self.maxpool = torch.nn.MaxPool2d(kernel_size=3, stride=3, padding=1)
        self.avgpool = torch.nn.AvgPool2d(kernel_size=2, stride=2)
        self.dropout = torch.nn.Dropout(p=dropout)
        self.fc = torch.nn.Linear(400, 3)

    def forward(self, x: torch.Tensor, masks: list[torch.Tensor] | None = None) -> torch.Tensor:
        streams = []
        for index, (conv, bn) in enumerate([(self.conv1, self.bn1), (self.conv2, self.bn2), (self.conv3, self.bn3)]):
            pooled = self.maxpool(bn(torch.relu(conv(x))))
            streams.append(pooled * masks[index] if masks is not None and self.training else self.dropout(pooled))
        return self.fc(self.avgpool(torch.cat(streams, dim=1)).flatten(1))


def _fused_and_reference() -> tuple[STSTNet, ThreeBranchSTSTNet]:
    published = _published_state_dict(seed=3)
    fused, reference = STSTNet(), ThreeBranchSTSTNet()
    fused.load_state_dict(published, strict=True)
    reference.load_state_dict(published, strict=True)
    return fused, reference


def _dropout_masks(model: STSTNet) -> list[torch.Tensor]:
    """Capture the masks the fused model's dropout draws, one per stream (3, 5, 8 channels)."""
    captured: list[torch.Tensor] = []

    def hook(module, args, output) -> None:
        captured.append((output != 0).to(output.dtype) / (1 - module.p))

    model.dropout.register_forward_hook(hook)
    return captured


def _sgd_step(model: torch.nn.Module, outputs: torch.Tensor, targets: torch.Tensor) -> dict[str, torch.Tensor]:
    """One plain SGD step of learning rate 1: parameter before − after = its gradient, under published names."""
    before = {name: tensor.clone() for name, tensor in model.state_dict().items()}
    torch.nn.functional.cross_entropy(outputs, targets).backward()
    torch.optim.SGD(model.parameters(), lr=1.0).step()
    after = model.state_dict()
    return {name: before[name] - after[name] for name in before if before[name].is_floating_point()}


@pytest.mark.parametrize("mode", ["train", "eval"])
def test_fused_branches_equal_the_plain_three_branch_network(mode: str):
    fused, reference = _fused_and_reference()
    fused.train(mode == "train")
    reference.train(mode == "train")
    captured = _dropout_masks(fused)
    inputs, targets = torch.rand(6, 3, 28, 28) * 255, torch.tensor([0, 1, 2, 0, 1, 2])
    fused_out = fused(inputs)
    masks = captured if mode == "train" else None
    assert masks is None or [mask.shape[1] for mask in masks] == [3, 5, 8]
    reference_out = reference(inputs, masks)
    torch.testing.assert_close(fused_out, reference_out, rtol=1e-6, atol=1e-6)
    fused_steps = _sgd_step(fused, fused_out, targets)
    reference_steps = _sgd_step(reference, reference_out, targets)
    assert fused_steps.keys() == reference_steps.keys()
    for name, step in reference_steps.items():  # the gradients
        torch.testing.assert_close(fused_steps[name], step, rtol=1e-6, atol=1e-6, msg=name)
    assert any(step.abs().sum() > 0 for step in fused_steps.values())
    for name, tensor in reference.state_dict().items():  # after the step; in train mode also the running stats
        torch.testing.assert_close(fused.state_dict()[name], tensor, rtol=1e-6, atol=1e-6, msg=name)


def test_a_seeded_run_trains_exactly_as_the_three_branch_release():
    """Same seed, same initial weights and dropout masks as the plain three-branch network: equal training."""
    inputs, targets = torch.rand(24, 3, 28, 28) * 255, torch.arange(24) % 3
    outputs = []
    for build in (STSTNet, ThreeBranchSTSTNet):
        torch.manual_seed(0)
        model = build()
        optimiser = torch.optim.Adam(model.parameters(), lr=5e-4)
        for _ in range(5):
            loss = torch.nn.functional.cross_entropy(model(inputs), targets)
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
        outputs.append(model.eval()(inputs))
    torch.testing.assert_close(outputs[0], outputs[1], rtol=1e-5, atol=1e-5)


def test_training_dropout_zeroes_about_half_of_the_pooled_features():
    torch.manual_seed(0)
    model = STSTNet().train()
    captured = _dropout_masks(model)
    model(torch.rand(8, 3, 28, 28) * 255)
    assert 0.4 < (torch.cat(captured, dim=1) == 0).float().mean().item() < 0.6


def test_a_partial_published_state_dict_reports_the_missing_branch_and_keeps_its_values():
    model = STSTNet()
    untouched = model.state_dict()
    published = _published_state_dict()
    partial = {name: tensor for name, tensor in published.items() if not name.startswith("conv2.")}
    result = model.load_state_dict(partial, strict=False)
    assert sorted(result.missing_keys) == ["conv2.bias", "conv2.weight"] and not result.unexpected_keys
    state = model.state_dict()
    assert torch.equal(state["conv1.weight"], published["conv1.weight"])
    assert torch.equal(state["conv3.bias"], published["conv3.bias"])
    assert torch.equal(state["conv2.weight"], untouched["conv2.weight"])
    with pytest.raises(RuntimeError, match="conv2.weight"):
        STSTNet().load_state_dict(partial, strict=True)


def test_a_published_entry_of_the_wrong_shape_is_named():
    published = _published_state_dict()
    published["bn2.running_mean"] = torch.zeros(4)
    with pytest.raises(RuntimeError, match=r"bn2\.running_mean.*\(4,\).*\(5,\)"):
        STSTNet().load_state_dict(published, strict=True)


def test_state_dict_keeps_the_published_order_inside_a_parent_and_after_a_copy():
    parent = torch.nn.Sequential(STSTNet(), torch.nn.Identity())
    keys = list(parent.state_dict())
    assert keys == [f"0.{name}" for name in PUBLISHED_SHAPES]
    copied = copy.deepcopy(parent)
    copied.load_state_dict(parent.state_dict(), strict=True)
    assert list(copied.state_dict()) == keys


def test_state_dict_entries_are_copies_that_safetensors_can_save(tmp_path):
    model = STSTNet()
    state = model.state_dict()
    state["conv1.weight"].zero_()
    assert model.state_dict()["conv1.weight"].abs().sum() > 0
    save_file(state, str(tmp_path / "ststnet.safetensors"))
    restored = STSTNet()
    restored.load_state_dict(load_file(str(tmp_path / "ststnet.safetensors")), strict=True)
    assert torch.equal(restored.state_dict()["conv1.weight"], torch.zeros(3, 3, 3, 3))


def test_other_input_sizes_build_and_keep_the_layout():
    model = STSTNet(input_size=16).eval()
    assert model(torch.rand(2, 3, 16, 16)).shape == (2, 3)
    assert model.fc.in_features == 16 * 3 * 3
    with pytest.raises(ValueError, match=r"\(N, 3, 16, 16\)"):
        model(torch.rand(2, 3, 28, 28))
