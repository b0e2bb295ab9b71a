from __future__ import annotations

import pickle
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from micronbert.baselines.card import NetworkCard, Recipe
from micronbert.baselines.flownets import (
    DSSN,
    DSSN_CARD,
    DUAL_INCEPTION_CARD,
    FLOW_CARDS,
    OFFAPEXNET_CARD,
    SSSN,
    SSSN_CARD,
    STSTNET_CARD,
    DualInception,
    OffApexNet,
    load_pretrained_alexnet,
    read_weights_file,
)
from micronbert.data.inputs.spec import InputSpec

PUBLISHED_PARAMETERS = {
    # docs/BASELINES.md: 1,651 [COMPUTED] for the paper's Table I layout; the release's three BatchNorms add 2·16
    "ststnet": 1_651 + 32,
    # docs/BASELINES.md: 2,664,475 [COMPUTED] (ECNU two-stream layout)
    "offapexnet": 2_664_475,
    # docs/BASELINES.md: 6.45 M [COMPUTED]; exactly 2·11,620 (two Inception streams) + 6,423,552 + 3,075
    "dual-inception": 6_449_867,
    # docs/BASELINES.md: 342,400 per stream; SSSN 0.63 M at 5 classes = 342,400 + 57,600·5 + 5
    "sssn": 630_405,
    # docs/BASELINES.md: DSSN (mul/add) at 5 classes 684,800 + 288,005 = 0.973 M
    "dssn": 972_805,
    "dssn-add": 972_805,
    # docs/BASELINES.md: 1.26 M (concat) at 5 classes = 684,800 + 115,200·5 + 5
    "dssn-cat": 1_260_805,
}
# the figures as docs/BASELINES.md rounds them, in millions
ROUNDED_FIGURES = {"offapexnet": (2.66, 2), "dual-inception": (6.45, 2), "sssn": (0.63, 2), "dssn": (0.973, 3),
                   "dssn-add": (0.973, 3), "dssn-cat": (1.26, 2)}
SMALL_SIZE = {"ststnet": 16, "offapexnet": 16, "dual-inception": 16, "sssn": 40, "dssn": 40, "dssn-add": 40,
              "dssn-cat": 40}
CARDS = {card.name: card for card in FLOW_CARDS}


def _count(module: torch.nn.Module) -> int:
    return sum(parameter.numel() for parameter in module.parameters())


def _small(card: NetworkCard, classes: int = 3) -> tuple[torch.nn.Module, tuple[InputSpec, ...]]:
    specs = tuple(spec.resized(SMALL_SIZE[card.name]) for spec in card.inputs)
    return card.build(classes, specs), specs


def _batch(specs: tuple[InputSpec, ...], size: int, seed: int = 0) -> list[torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    return [torch.rand(size, len(spec.channels), spec.size, spec.size, generator=generator) * 255 for spec in specs]


def _optimiser(recipe: Recipe, parameters) -> torch.optim.Optimizer:
    if recipe.optimiser == "sgd":
        return torch.optim.SGD(parameters, lr=recipe.lr, momentum=recipe.momentum, weight_decay=recipe.weight_decay)
    return torch.optim.Adam(parameters, lr=recipe.lr, weight_decay=recipe.weight_decay)


def test_every_flow_network_has_a_card_and_a_checked_count():
    assert set(CARDS) == set(PUBLISHED_PARAMETERS) == set(SMALL_SIZE)


@pytest.mark.parametrize("name", sorted(PUBLISHED_PARAMETERS))
def test_parameter_count_at_the_published_input_is_the_cards_and_baselines_md(name: str):
    card = CARDS[name]
    assert _count(card.build(card.classes, card.inputs)) == card.parameters == PUBLISHED_PARAMETERS[name]


@pytest.mark.parametrize("name", sorted(ROUNDED_FIGURES))
def test_exact_counts_round_to_the_figures_baselines_md_prints(name: str):
    figure, digits = ROUNDED_FIGURES[name]
    assert round(PUBLISHED_PARAMETERS[name] / 1e6, digits) == figure


def test_cards_declare_the_published_inputs():
    assert STSTNET_CARD.inputs == (InputSpec("flow", 28, ("u", "v", "strain")),)
    assert OFFAPEXNET_CARD.inputs == DUAL_INCEPTION_CARD.inputs == (InputSpec("flow", 28, ("u", "v")),)
    assert SSSN_CARD.inputs == (InputSpec("flow", 227, ("u", "v", "magnitude")),)
    for name in ("dssn", "dssn-add", "dssn-cat"):
        assert CARDS[name].inputs == (InputSpec("flow", 227, ("u", "v", "magnitude")),
                                      InputSpec("flow", 227, ("u", "v", "strain")))
        assert CARDS[name].classes == 5 and "AlexNet" in CARDS[name].pretrained_from
    assert STSTNET_CARD.pretrained_from == OFFAPEXNET_CARD.pretrained_from == DUAL_INCEPTION_CARD.pretrained_from == ""


@pytest.mark.parametrize(("name", "optimiser", "lr", "epochs", "batch"), [
    ("ststnet", "adam", 5e-5, 500, 256),  # docs/BASELINES.md
    ("offapexnet", "adam", 1e-4, 3000, 256),  # the paper's (batch unpublished)
    ("dual-inception", "adam", 1e-3, 501, 256),  # §4.2 (batch unpublished)
    ("sssn", "adam", 1e-4, 100, 32),  # §3.3
    ("dssn", "adam", 1e-4, 100, 32),
    ("dssn-cat", "adam", 1e-4, 100, 32),
])
def test_published_recipes_are_the_sources_and_defaults_are_marked_proposed(name, optimiser, lr, epochs, batch):
    card = CARDS[name]
    published = card.recipes["published"]
    assert (published.optimiser, published.lr, published.epochs, published.batch_size) == (optimiser, lr, epochs, batch)
    assert not published.class_weighted  # the sources train with plain cross-entropy
    assert "[PROPOSED]" in card.recipes["default"].source and "[PROPOSED]" in card.notes


@pytest.mark.parametrize("name", sorted(PUBLISHED_PARAMETERS))
def test_forward_at_a_small_resized_input_gives_logits(name: str):
    model, specs = _small(CARDS[name], classes=4)
    logits = model.eval()(*_batch(specs, 3))
    assert logits.shape == (3, 4) and torch.isfinite(logits).all()


@pytest.mark.parametrize("name", sorted(PUBLISHED_PARAMETERS))
def test_a_few_steps_of_the_default_recipe_reduce_the_loss_on_their_batch(name: str):
    card = CARDS[name]
    torch.manual_seed(0)
    model, specs = _small(card)
    inputs, targets = _batch(specs, 6), torch.tensor([0, 1, 2, 0, 1, 2])
    optimiser = _optimiser(card.recipes["default"], model.parameters())
    model.train()

    def loss() -> torch.Tensor:
        torch.manual_seed(1)  # the same dropout masks before and after the step
        return torch.nn.functional.cross_entropy(model(*inputs), targets)

    before = loss().item()
    for _ in range(6):  # Adam's first steps move every weight by about lr, which can overshoot at 1e-3
        optimiser.zero_grad()
        loss().backward()
        optimiser.step()
    with torch.no_grad():
        assert loss().item() < before


@pytest.mark.parametrize("name", sorted(PUBLISHED_PARAMETERS))
def test_a_wrong_input_shape_is_refused_naming_the_expected_shape(name: str):
    model, specs = _small(CARDS[name])
    good = _batch(specs, 2)
    size, channels = specs[0].size, len(specs[0].channels)
    with pytest.raises(ValueError, match=rf"\(N, {channels}, {size}, {size}\)"):
        model(torch.rand(2, channels, size + 1, size + 1), *good[1:])
    with pytest.raises(ValueError, match=rf"\(N, {channels}, {size}, {size}\)"):
        model(torch.rand(2, channels + 1, size, size), *good[1:])
    with pytest.raises(ValueError, match="input"):
        CARDS[name].build(3, specs + specs)


def test_sizes_below_the_layouts_minimum_are_refused_naming_it():
    with pytest.raises(ValueError, match="at least 35 pixels"):
        DSSN_CARD.build(5, tuple(spec.resized(32) for spec in DSSN_CARD.inputs))
    with pytest.raises(ValueError, match="at least 4 pixels"):
        OffApexNet(input_size=3)
    with pytest.raises(ValueError, match="one size"):
        DSSN_CARD.build(5, (DSSN_CARD.inputs[0], DSSN_CARD.inputs[1].resized(64)))
    with pytest.raises(ValueError, match="3 channels"):
        SSSN_CARD.build(5, (InputSpec("flow", 64, ("u", "v")),))
    with pytest.raises(ValueError, match="merge"):
        DSSN(merge="max")


def test_offapexnet_streams_see_only_their_own_channel_and_reach_7x7():
    model = OffApexNet().eval()
    flow = torch.rand(2, 2, 28, 28) * 255
    changed = flow.clone()
    changed[:, 1] = torch.rand(2, 28, 28) * 255
    features, other = model.streams(flow), model.streams(changed)
    assert features.shape == (2, 32, 7, 7)
    torch.testing.assert_close(features[:, :16], other[:, :16])
    assert not torch.allclose(features[:, 16:], other[:, 16:])


def test_dual_inception_streams_reach_64_channels_at_7x7():
    model = DualInception().eval()
    u_stream = model.streams[0](torch.rand(1, 1, 28, 28))
    assert u_stream.shape == (1, 64, 7, 7)
    assert model.head[0].in_features == 2 * 64 * 7 * 7


def test_alexnet_streams_give_256x15x15_at_227_and_the_merges_differ():
    torch.manual_seed(0)
    model = DSSN(num_classes=5, merge="mul").eval()
    inputs = [torch.rand(1, 3, 227, 227) * 255, torch.rand(1, 3, 227, 227) * 255]
    assert model.streams[0](inputs[0]).shape == (1, 256, 15, 15)
    merged = {}
    for merge in ("mul", "add", "cat"):
        other = DSSN(num_classes=5, merge=merge, input_size=40).eval()
        other.streams.load_state_dict(DSSN(num_classes=5, input_size=40).streams.state_dict())
        merged[merge] = other.fc.in_features
    assert merged == {"mul": 256 * 3 * 3, "add": 256 * 3 * 3, "cat": 2 * 256 * 3 * 3}
    assert SSSN(input_size=227).fc.in_features == 57_600


# ----------------------------------------------------------------------------------------- user weights
def _alexnet_state(seed: int = 0) -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    shapes = {"conv1.weight": (96, 3, 11, 11), "conv1.bias": (96,), "conv2.weight": (256, 48, 5, 5),
              "conv2.bias": (256,), "conv3.weight": (384, 256, 3, 3), "fc8.bias": (1000,)}
    return {name: torch.randn(shape, generator=generator) for name, shape in shapes.items()}


@pytest.mark.parametrize("suffix", [".pth", ".safetensors"])
def test_alexnet_weights_from_a_users_file_load_into_both_streams(tmp_path: Path, suffix: str):
    state = _alexnet_state()
    path = tmp_path / f"alexnet{suffix}"
    if suffix == ".pth":
        torch.save({"state_dict": {f"module.{key}": value for key, value in state.items()}}, path)
    else:
        save_file(state, str(path))
    model = DSSN(input_size=40)
    fc_before = model.fc.weight.clone()
    loaded = load_pretrained_alexnet(model, path)
    assert sorted(loaded) == sorted(f"streams.{i}.{layer}.{kind}" for i in (0, 1) for layer in ("conv1", "conv2")
                                    for kind in ("weight", "bias"))
    for stream in model.streams:
        torch.testing.assert_close(stream.conv1.weight, state["conv1.weight"], rtol=0, atol=0)
        torch.testing.assert_close(stream.conv2.bias, state["conv2.bias"], rtol=0, atol=0)
    assert torch.equal(model.fc.weight, fc_before)
    single = SSSN(input_size=40)
    assert len(load_pretrained_alexnet(single, path)) == 4
    assert torch.equal(single.stream.conv2.weight, state["conv2.weight"])


def test_alexnet_weights_of_the_wrong_layout_or_missing_are_named(tmp_path: Path):
    torchvision_like = _alexnet_state()
    torchvision_like["conv1.weight"] = torch.zeros(64, 3, 11, 11)
    path = tmp_path / "torchvision.pth"
    torch.save(torchvision_like, path)
    with pytest.raises(ValueError, match=r"torchvision\.pth.*'conv1\.weight'.*\(64, 3, 11, 11\)"):
        load_pretrained_alexnet(DSSN(input_size=40), path)
    incomplete = _alexnet_state()
    del incomplete["conv2.bias"]
    path = tmp_path / "incomplete.safetensors"
    save_file(incomplete, str(path))
    with pytest.raises(ValueError, match=r"incomplete\.safetensors.*'conv2\.bias' missing"):
        load_pretrained_alexnet(DSSN(input_size=40), path)


class _NotATensor:
    pass


def test_weights_files_that_are_not_plain_state_dicts_are_refused(tmp_path: Path):
    unsafe = tmp_path / "unsafe.pth"
    with unsafe.open("wb") as handle:
        pickle.dump({"conv1.weight": _NotATensor()}, handle, protocol=2)
    with pytest.raises(ValueError, match="unsafe.pth"):
        read_weights_file(unsafe)
    mixed = tmp_path / "mixed.pt"
    torch.save({"conv1.weight": torch.zeros(1), "epoch": 3}, mixed)
    with pytest.raises(ValueError, match=r"mixed\.pt.*'epoch'"):
        read_weights_file(mixed)
    garbage = tmp_path / "garbage.safetensors"
    garbage.write_bytes(b"not a safetensors file")
    with pytest.raises(ValueError, match="garbage.safetensors"):
        read_weights_file(garbage)
    other = tmp_path / "weights.h5"
    other.write_bytes(b"")
    with pytest.raises(ValueError, match=r"weights\.h5.*unknown weights format"):
        read_weights_file(other)
    with pytest.raises(FileNotFoundError, match="absent.pth"):
        read_weights_file(tmp_path / "absent.pth")
