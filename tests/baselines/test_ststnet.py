from __future__ import annotations

from collections import OrderedDict

import numpy as np
import pytest
import torch

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

    for name in ("conv1", "maxpool", "avgpool"):
        getattr(model, name).register_forward_hook(record(name))
    model(torch.rand(1, 3, 28, 28))
    assert shapes == {"conv1": (1, 3, 30, 30), "maxpool": (1, 3, 10, 10), "avgpool": (1, 16, 5, 5)}


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
