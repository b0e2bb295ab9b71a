from __future__ import annotations

from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from micronbert.baselines.apexnets import (
    APEX_CARDS,
    MICRO_ATTENTION_CARD,
    MicroAttentionNet,
    MicroAttentionUnit,
    load_pretrained_resnet10,
)
from micronbert.data.inputs.spec import InputSpec

# docs/BASELINES.md [COMPUTED]: ResNet-10 convolutions 4.894 M + attention 1×1 convolutions (3C·C per stage)
# 1.044 M ≈ 5.94 M; exactly 4,893,760 + 1,044,480, plus BatchNorm γ/β 3,970 and the 3-class FC 512·3 + 3
CONVOLUTIONS, ATTENTION, BATCHNORM, HEAD = 4_893_760, 1_044_480, 3_970, 1_539
MICRO_ATTENTION_PARAMETERS = 5_943_749
STAGE_WIDTHS = (64, 128, 256, 512)


def _small(classes: int = 3, size: int = 32) -> MicroAttentionNet:
    return MICRO_ATTENTION_CARD.build(classes, (MICRO_ATTENTION_CARD.inputs[0].resized(size),))


def test_parameter_count_at_the_published_input_is_the_cards_and_baselines_md():
    model = MICRO_ATTENTION_CARD.build(MICRO_ATTENTION_CARD.classes, MICRO_ATTENTION_CARD.inputs)
    parameters = dict(model.named_parameters())
    convolutions = sum(p.numel() for name, p in parameters.items() if p.ndim == 4 and ".attention." not in name)
    attention = sum(p.numel() for name, p in parameters.items() if ".attention." in name)
    batchnorm = sum(p.numel() for name, p in parameters.items() if p.ndim == 1 and not name.startswith("fc."))
    head = sum(p.numel() for name, p in parameters.items() if name.startswith("fc."))
    assert (convolutions, attention, batchnorm, head) == (CONVOLUTIONS, ATTENTION, BATCHNORM, HEAD)
    assert round(convolutions / 1e6, 3) == 4.894 and round(attention / 1e6, 3) == 1.044
    assert round((convolutions + attention) / 1e6, 2) == 5.94
    assert sum(parameters[name].numel() for name in parameters) == MICRO_ATTENTION_CARD.parameters
    assert MICRO_ATTENTION_CARD.parameters == MICRO_ATTENTION_PARAMETERS == CONVOLUTIONS + ATTENTION + BATCHNORM + HEAD


def test_card_declares_the_grey_apex_the_pretraining_and_both_recipes():
    assert APEX_CARDS == (MICRO_ATTENTION_CARD,)
    assert MICRO_ATTENTION_CARD.inputs == (InputSpec("apex", 224, ("grey",)),)
    assert "macro" in MICRO_ATTENTION_CARD.pretrained_from
    published = MICRO_ATTENTION_CARD.recipes["published"]  # docs/BASELINES.md, in epochs
    assert (published.optimiser, published.lr, published.momentum, published.weight_decay, published.batch_size) == (
        "sgd", 0.01, 0.9, 5e-6, 16)
    assert published.epochs == 100 and published.lr_steps == (20, 40, 60, 80) and published.lr_gamma == 0.1
    assert "[PROPOSED]" in MICRO_ATTENTION_CARD.recipes["default"].source
    assert "[PROPOSED]" in MICRO_ATTENTION_CARD.notes


def test_stages_halve_the_map_from_56_to_7_at_224():
    model = MICRO_ATTENTION_CARD.build(3, MICRO_ATTENTION_CARD.inputs).eval()
    shapes: list[tuple[int, ...]] = []

    def record(module, args, output) -> None:
        shapes.append(tuple(output.shape))

    for stage in model.stages:
        stage.register_forward_hook(record)
    with torch.no_grad():
        assert model(torch.rand(1, 1, 224, 224) * 255).shape == (1, 3)
    assert shapes == [(1, width, side, side) for width, side in zip(STAGE_WIDTHS, (56, 28, 14, 7))]


def test_the_unit_scales_the_sum_by_one_plus_the_sigmoid_mask():
    unit = MicroAttentionUnit(4)
    summed, shortcut, first, second = (torch.randn(2, 4, 5, 5) for _ in range(4))
    with torch.no_grad():
        unit.mix.weight.zero_()  # mask logits 0: mask 0.5 everywhere
        torch.testing.assert_close(unit(summed, shortcut, first, second), 1.5 * summed)
        unit.mix.weight.fill_(50.0)  # large positive logits where the inputs' channel sum is positive
        positive = torch.ones(2, 4, 5, 5)
        torch.testing.assert_close(unit(summed, positive, positive, positive), 2.0 * summed)
    assert sum(p.numel() for p in unit.parameters()) == 3 * 4 * 4  # the channel mean is fixed, not a parameter


def test_forward_at_a_small_resized_input_gives_logits():
    logits = _small(classes=5).eval()(torch.rand(3, 1, 32, 32) * 255)
    assert logits.shape == (3, 5) and torch.isfinite(logits).all()
    assert _small(size=16).eval()(torch.rand(2, 1, 16, 16)).shape == (2, 3)


def test_one_step_of_the_default_recipe_reduces_the_loss_on_its_batch():
    torch.manual_seed(0)
    model = _small().train()
    recipe = MICRO_ATTENTION_CARD.recipes["default"]
    optimiser = torch.optim.SGD(model.parameters(), lr=recipe.lr, momentum=recipe.momentum,
                                weight_decay=recipe.weight_decay)
    inputs, targets = torch.rand(6, 1, 32, 32) * 255, torch.tensor([0, 1, 2, 0, 1, 2])
    before = torch.nn.functional.cross_entropy(model(inputs), targets)
    before.backward()
    optimiser.step()
    with torch.no_grad():
        assert torch.nn.functional.cross_entropy(model(inputs), targets).item() < before.item()


def test_a_wrong_input_shape_is_refused_naming_the_expected_shape():
    model = _small()
    with pytest.raises(ValueError, match=r"\(N, 1, 32, 32\)"):
        model(torch.rand(2, 3, 32, 32))
    with pytest.raises(ValueError, match=r"\(N, 1, 32, 32\)"):
        model(torch.rand(2, 1, 224, 224))
    with pytest.raises(ValueError, match="input"):
        MICRO_ATTENTION_CARD.build(3, MICRO_ATTENTION_CARD.inputs * 2)


# ----------------------------------------------------------------------------------------- user weights
def _resnet10_state(model: MicroAttentionNet) -> dict[str, torch.Tensor]:
    """A macro-expression ResNet-10 in micronbert's names: no attention units, a 7-class head."""
    state = {key: value.clone() for key, value in model.state_dict().items() if ".attention." not in key}
    state["fc.weight"], state["fc.bias"] = torch.randn(7, 512), torch.randn(7)
    return state


def test_a_resnet10_in_micronberts_names_loads_all_but_attention_and_head(tmp_path: Path):
    torch.manual_seed(0)
    source = _small()
    for stage in source.stages:
        stage.bn1.running_mean.uniform_(-1, 1)
    path = tmp_path / "macro.safetensors"
    save_file(_resnet10_state(source), str(path))
    torch.manual_seed(1)
    target = _small()
    attention_before = target.stages[2].attention.mix.weight.clone()
    head_before = target.fc.weight.clone()
    loaded = load_pretrained_resnet10(target, path)
    assert "stages.3.shortcut.weight" in loaded and "input_bn.running_var" in loaded
    assert not any(".attention." in key or key.startswith("fc.") for key in loaded)
    for key in loaded:
        assert torch.equal(target.state_dict()[key], source.state_dict()[key]), key
    assert torch.equal(target.stages[2].attention.mix.weight, attention_before)
    assert torch.equal(target.fc.weight, head_before)


def _torchvision_resnet18_state(seed: int = 0) -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)

    def tensor(*shape: int) -> torch.Tensor:
        return torch.randn(shape, generator=generator)

    def batchnorm(prefix: str, channels: int) -> dict[str, torch.Tensor]:
        return {f"{prefix}.{entry}": tensor(channels) for entry in ("weight", "bias", "running_mean", "running_var")}

    state = {"conv1.weight": tensor(64, 3, 7, 7), **batchnorm("bn1", 64), "fc.weight": tensor(1000, 512)}
    widths = (64, *STAGE_WIDTHS)
    for index in range(4):
        before, width = widths[index], widths[index + 1]
        for block in (0, 1):
            layer = f"layer{index + 1}.{block}"
            state[f"{layer}.conv1.weight"] = tensor(width, before if block == 0 else width, 3, 3)
            state[f"{layer}.conv2.weight"] = tensor(width, width, 3, 3)
            state.update(batchnorm(f"{layer}.bn1", width) | batchnorm(f"{layer}.bn2", width))
        if index > 0:
            state[f"layer{index + 1}.0.downsample.0.weight"] = tensor(width, before, 1, 1)
    return state


def test_a_torchvision_named_resnet_loads_its_first_blocks_with_a_grey_stem(tmp_path: Path):
    state = _torchvision_resnet18_state()
    path = tmp_path / "resnet18.pth"
    torch.save(state, path)
    model = _small()
    pre_bn_before = model.stages[1].pre_bn.weight.clone()
    loaded = load_pretrained_resnet10(model, path)
    assert len(loaded) == 1 + 4 + 4 * (2 + 4) + 3
    torch.testing.assert_close(model.conv1.weight, state["conv1.weight"].sum(dim=1, keepdim=True))
    assert torch.equal(model.stages[0].conv2.weight, state["layer1.0.conv2.weight"])
    assert torch.equal(model.stages[3].bn1.running_var, state["layer4.0.bn1.running_var"])
    assert torch.equal(model.stages[2].shortcut.weight, state["layer3.0.downsample.0.weight"])
    assert torch.equal(model.stages[1].pre_bn.weight, pre_bn_before)


def test_resnet_weights_of_the_wrong_shape_or_missing_are_named(tmp_path: Path):
    state = _torchvision_resnet18_state()
    state["layer3.0.conv2.weight"] = torch.zeros(256, 256, 1, 1)
    path = tmp_path / "bottleneck.pth"
    torch.save(state, path)
    with pytest.raises(ValueError, match=r"bottleneck\.pth.*'layer3\.0\.conv2\.weight'.*\(256, 256, 1, 1\)"):
        load_pretrained_resnet10(_small(), path)
    incomplete = _resnet10_state(_small())
    del incomplete["stages.1.pre_bn.bias"]
    path = tmp_path / "incomplete.pth"
    torch.save({"model": incomplete}, path)
    with pytest.raises(ValueError, match=r"incomplete\.pth.*'stages\.1\.pre_bn\.bias' missing"):
        load_pretrained_resnet10(_small(), path)
