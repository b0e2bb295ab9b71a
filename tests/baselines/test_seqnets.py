from __future__ import annotations

from dataclasses import dataclass

import pytest
import torch
from safetensors.torch import save_file

from micronbert.baselines.seqnets import (
    ATNET_PUBLISHED,
    ELRCN,
    ELRCN_SE_CARD,
    ELRCN_TE_CARD,
    FUSENET_CARD,
    FUSENET_LATE_CARD,
    SEQUENCE_CARDS,
    STCNN_CARD,
    VGG16,
    ATNet,
    ELRCNConfig,
    MicroExpFuseNet,
    MicroExpSTCNN,
    SingleBiasLSTM,
    atnet_card,
    build_atnet,
    build_fusenet,
    build_stcnn,
    count_parameters,
    elrcn_streams,
    load_pretrained_vgg16,
    stcnn_kernel_depth,
)
from micronbert.data.inputs.spec import InputSpec

META = torch.device("meta")
FLOW4 = ("u", "v", "magnitude", "strain")
TINY_ELRCN = ELRCNConfig(conv_widths=(4, 4, 8, 8, 8), fc_width=16, lstm_units=12, hidden_units=8)


def _millions(count: int, decimals: int) -> float:
    return round(count / 1e6, decimals)


def _on_meta(card, inputs=None) -> torch.nn.Module:
    with META:
        return card.build(card.classes, inputs or card.inputs)


def _train_once(model: torch.nn.Module, loss: torch.Tensor, parameters) -> None:
    optimiser = torch.optim.SGD(list(parameters), lr=0.1)
    optimiser.zero_grad()
    loss.backward()
    optimiser.step()


def _snapshot(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {name: value.detach().clone() for name, value in module.named_parameters()}


def _changed(before: dict[str, torch.Tensor], module: torch.nn.Module) -> set[str]:
    return {name for name, value in module.named_parameters() if not torch.equal(before[name], value)}


# ------------------------------------------------------------------------------------------------ parameter counts
def test_every_card_states_the_exact_count_of_the_network_it_builds():
    for card in SEQUENCE_CARDS:
        assert count_parameters(_on_meta(card)) == card.parameters, card.name


def test_stcnn_matches_the_published_44_24_m_at_96_frames_and_1_64_m_at_18():
    conv = 32 * (15 * 3 * 3) + 32
    at_96 = conv + (32 * 20 * 20 * 27) * 128 + 128 + 128 * 3 + 3
    at_18 = conv + (32 * 20 * 20 * 1) * 128 + 128 + 128 * 3 + 3
    assert STCNN_CARD.parameters == at_96 and _millions(at_96, 2) == 44.24
    with META:
        smic = build_stcnn(3, (InputSpec("sequence", 64, ("grey",), length=18),))
    assert count_parameters(smic) == at_18 and _millions(at_18, 2) == 1.64


def test_fusenet_intermediate_and_late_are_about_177_m():
    conv = 32 * (15 * 3 * 3) + 32
    branch = 32 * 10 * 10 * 27
    intermediate = 2 * conv + (2 * branch * 1024 + 1024) + (1024 * 128 + 128) + (128 * 3 + 3)
    late = 2 * (conv + branch * 1024 + 1024 + 1024 * 128 + 128) + 256 * 3 + 3
    assert (FUSENET_CARD.parameters, FUSENET_LATE_CARD.parameters) == (intermediate, late)
    assert _millions(intermediate, 0) == _millions(late, 0) == 177


def test_elrcn_se_is_about_220_m_from_a_134_3_m_vgg16_and_an_85_2_m_lstm():
    model = _on_meta(ELRCN_SE_CARD)
    assert _millions(count_parameters(model), 0) == 220
    with META:
        rgb_vgg = VGG16(3, 224, 3)
    assert _millions(count_parameters(rgb_vgg) - count_parameters(rgb_vgg.head), 1) == 134.3
    assert _millions(count_parameters(model.lstm), 1) == 85.2
    assert model.feature_size == 4096 and model.lstm.hidden_size == 3000


def test_elrcn_te_is_about_403_m_with_two_vgg16_streams():
    model = _on_meta(ELRCN_TE_CARD)
    assert len(model.streams) == 2 and model.feature_size == 8192
    assert _millions(count_parameters(model), 0) == 403


def test_atnet_is_8_31_m_from_resnet10_convolutions_of_4_894_m_and_lstms_of_3_41_m():
    with META:
        model = ATNet()
    convolutions = sum(layer.weight.numel() for layer in model.spatial.modules()
                       if isinstance(layer, torch.nn.Conv2d))
    lstms = count_parameters(model.lstm1) + count_parameters(model.lstm2)
    assert _millions(convolutions, 3) == 4.894
    assert _millions(lstms, 2) == 3.41
    assert _millions(count_parameters(model), 2) == 8.31
    assert count_parameters(model) == 8_312_773


# ------------------------------------------------------------------------------------------------ small sizes
def test_stcnn_and_fusenet_build_from_cards_at_small_sizes_and_return_logits():
    clip = InputSpec("sequence", 16, ("grey",), length=8)
    assert STCNN_CARD.build(4, (clip,)).eval()(torch.rand(2, 1, 8, 16, 16)).shape == (2, 4)
    regions = (InputSpec("regions", 16, ("grey",), length=8, region="eyes"),
               InputSpec("regions", 16, ("grey",), length=8, region="mouth"))
    for card in (FUSENET_CARD, FUSENET_LATE_CARD):
        model = card.build(3, regions).eval()
        assert model(torch.rand(2, 1, 8, 16, 16), torch.rand(2, 1, 8, 16, 16)).shape == (2, 3)


def test_cards_resized_to_32_pixels_build_and_give_logits_of_the_right_shape_on_meta():
    for card in SEQUENCE_CARDS:
        inputs = tuple(spec.resized(32) for spec in card.inputs)
        model = _on_meta(card, inputs)
        tensors = [torch.empty(2, spec.length, len(spec.channels), 32, 32, device=META)
                   if spec.kind == "flow_sequence" else torch.empty(2, 1, spec.length, 32, 32, device=META)
                   for spec in inputs]
        assert model(*tensors).shape == (2, card.classes), card.name


@pytest.mark.parametrize("enrichment", ["spatial", "temporal"])
def test_a_cpu_sized_elrcn_gives_logits_for_a_flow_sequence(enrichment):
    torch.manual_seed(0)
    model = ELRCN(3, FLOW4, 32, 4, enrichment, TINY_ELRCN).eval()
    assert model(torch.rand(2, 4, 4, 32, 32) * 255).shape == (2, 3)
    assert model.features(torch.rand(2, 4, 4, 32, 32)).shape == (2, 4, 16 * len(model.streams))


def test_stcnn_kernel_depth_is_15_from_18_frames_and_about_t_over_6_below():
    assert [stcnn_kernel_depth(t) for t in (96, 32, 18, 17, 12, 8, 3)] == [15, 15, 15, 3, 2, 1, 1]
    assert MicroExpSTCNN(3, 16, 12).branch.conv.kernel_size == (2, 3, 3)
    with pytest.raises(ValueError, match="too small"):
        MicroExpSTCNN(3, 16, 2)
    with pytest.raises(ValueError, match="too small"):
        MicroExpSTCNN(3, 4, 18)


def test_elrcn_streams_split_flow_from_the_other_channels():
    assert elrcn_streams(FLOW4, "spatial") == ((0, 1, 2, 3),)
    assert elrcn_streams(FLOW4, "temporal") == ((0, 1, 2), (3, 3, 3))
    assert elrcn_streams((*FLOW4, "grey"), "temporal") == ((0, 1, 2), (3, 3, 3), (4, 4, 4))
    with pytest.raises(ValueError, match="two feature streams"):
        elrcn_streams(("u", "v", "magnitude"), "temporal")
    with pytest.raises(ValueError, match="enrichment"):
        elrcn_streams(FLOW4, "both")


# ------------------------------------------------------------------------------------------------ training
def test_one_step_trains_stcnn_and_fusenet():
    torch.manual_seed(0)
    labels = torch.tensor([0, 1, 2, 1])
    stcnn = MicroExpSTCNN(3, 16, 8)
    before = _snapshot(stcnn)
    _train_once(stcnn, torch.nn.functional.cross_entropy(stcnn(torch.rand(4, 1, 8, 16, 16)), labels),
                stcnn.parameters())
    assert _changed(before, stcnn) == set(before)
    fusenet = MicroExpFuseNet(3, 16, 8, fusion="late")
    before = _snapshot(fusenet)
    logits = fusenet(torch.rand(4, 1, 8, 16, 16), torch.rand(4, 1, 8, 16, 16))
    _train_once(fusenet, torch.nn.functional.cross_entropy(logits, labels), fusenet.parameters())
    assert _changed(before, fusenet) == set(before)


def test_elrcn_stage_one_trains_the_cnns_and_stage_two_the_recurrent_classifier():
    torch.manual_seed(0)
    model = ELRCN(3, FLOW4, 32, 4, "temporal", TINY_ELRCN)
    clips, labels = torch.rand(3, 4, 4, 32, 32), torch.tensor([0, 1, 2])
    spatial = {name for name, _ in model.named_parameters() if name.startswith("streams.")}
    before = _snapshot(model)
    _train_once(model, model.spatial_loss(clips, labels), model.spatial_parameters())
    assert _changed(before, model) == spatial

    before = _snapshot(model)
    features = model.extract_features(clips)
    assert not features.requires_grad and model.training and all(stream.training for stream in model.streams)
    _train_once(model, torch.nn.functional.cross_entropy(model.classify_features(features), labels),
                model.temporal_parameters())
    assert _changed(before, model) == set(before) - spatial


def test_extracted_features_are_the_evaluation_mode_features():
    torch.manual_seed(0)
    model = ELRCN(3, FLOW4, 32, 4, "spatial", TINY_ELRCN)
    clips = torch.rand(2, 4, 4, 32, 32)
    extracted = model.extract_features(clips)
    with torch.no_grad():
        assert torch.equal(extracted, model.eval().features(clips))


def test_one_step_trains_atnet():
    torch.manual_seed(0)
    model = ATNet(3, apex_size=32, steps=6)
    before = _snapshot(model)
    logits = model(torch.rand(4, 1, 32, 32), torch.randn(4, 6, 2, 8, 8))
    assert logits.shape == (4, 3)
    _train_once(model, torch.nn.functional.cross_entropy(logits, torch.tensor([0, 1, 2, 0])), model.parameters())
    # the stem's BatchNorm cancels any scale of the one-channel input BatchNorm, whose weight gets no gradient
    assert _changed(before, model) == set(before) - {"spatial.input_norm.weight"}


def test_atnet_reads_both_the_apex_and_the_flow_cells():
    torch.manual_seed(0)
    model = ATNet(3, apex_size=32, steps=6).eval()
    apex, cells = torch.rand(2, 1, 32, 32), torch.randn(2, 6, 2, 8, 8)
    reference = model(apex, cells)
    assert not torch.allclose(model(apex.flip(-1), cells), reference)
    assert not torch.allclose(model(apex, cells.flip(1)), reference)


# ------------------------------------------------------------------------------------------------ LSTM layout
def test_single_bias_lstm_equals_torch_lstm_with_the_bias_on_one_side():
    torch.manual_seed(0)
    layer = SingleBiasLSTM(5, 7)
    reference = torch.nn.LSTM(5, 7, batch_first=True)
    with torch.no_grad():
        reference.weight_ih_l0.copy_(layer.weight_ih)
        reference.weight_hh_l0.copy_(layer.weight_hh)
        reference.bias_ih_l0.copy_(layer.bias)
        reference.bias_hh_l0.zero_()
    inputs = torch.randn(3, 4, 5)
    torch.testing.assert_close(layer(inputs), reference(inputs)[0])
    assert count_parameters(layer) == count_parameters(reference) - 4 * 7


def test_keras_lstm_starts_with_forget_bias_one_and_uses_the_hard_sigmoid():
    layer = SingleBiasLSTM(2, 3, hard_sigmoid=True)
    assert layer.bias.tolist() == [0.0] * 3 + [1.0] * 3 + [0.0] * 6
    with torch.no_grad():
        layer.weight_ih.zero_()
        layer.weight_hh.zero_()
        layer.bias.copy_(torch.tensor([1.0] * 3 + [0.0] * 3 + [2.0] * 3 + [-1.0] * 3))
    # one step from zero state: c = hs(1)·tanh(2) = 0.7·tanh(2); h = hs(-1)·tanh(c) = 0.3·tanh(c)
    expected = 0.3 * torch.tanh(torch.tensor(0.7) * torch.tanh(torch.tensor(2.0)))
    torch.testing.assert_close(layer(torch.zeros(1, 1, 2))[0, 0], expected.repeat(3))


# ------------------------------------------------------------------------------------------------ bad inputs
def test_wrong_shapes_raise_value_errors_naming_the_expected_shape():
    with pytest.raises(ValueError, match=r"\(B, 1, 8, 16, 16\)"):
        MicroExpSTCNN(3, 16, 8)(torch.rand(2, 1, 9, 16, 16))
    with pytest.raises(ValueError, match=r"\(B, 1, 8, 16, 16\)"):
        MicroExpFuseNet(3, 16, 8)(torch.rand(2, 1, 8, 16, 16), torch.rand(2, 8, 1, 16, 16))
    with pytest.raises(ValueError, match=r"\(B, 4, 4, 32, 32\)"):
        ELRCN(3, FLOW4, 32, 4, "spatial", TINY_ELRCN)(torch.rand(2, 4, 4, 64, 64))
    with pytest.raises(ValueError, match=r"\(B, 4, 16\)"):
        ELRCN(3, FLOW4, 32, 4, "spatial", TINY_ELRCN).classify_features(torch.rand(2, 4, 15))
    with pytest.raises(ValueError, match=r"\(B, 6, 2, 8, 8\)"):
        ATNet(3, apex_size=32, steps=6)(torch.rand(2, 1, 32, 32), torch.rand(2, 6, 128))
    with pytest.raises(ValueError, match=r"\(B, 1, 32, 32\)"):
        ATNet(3, apex_size=32, steps=6)(torch.rand(2, 3, 32, 32), torch.rand(2, 6, 2, 8, 8))


def test_builders_reject_inputs_of_the_wrong_kind():
    with pytest.raises(ValueError, match="sequence"):
        build_stcnn(3, (InputSpec("apex", 64),))
    mouth_first = (InputSpec("regions", 32, length=8, region="mouth"), InputSpec("regions", 32, length=8,
                                                                                region="eyes"))
    with pytest.raises(ValueError, match="eyes region then the mouth"):
        build_fusenet(3, mouth_first)
    with pytest.raises(ValueError, match="flow_sequence"):
        ELRCN_SE_CARD.build(3, (InputSpec("sequence", 32, length=9),))
    with pytest.raises(ValueError, match="at least 32"):
        VGG16(3, 16, 3)


# ------------------------------------------------------------------------------------------------ ATNet's input
@dataclass(frozen=True)
class ProposedSpec:
    """The proposed ``flow_cells`` InputSpec, standing in until spec.py knows the kind."""

    kind: str
    size: int
    channels: tuple[str, ...] = ("grey",)
    length: int = 0
    region: str = ""


def test_build_atnet_reads_the_grid_channels_and_steps_of_the_flow_cells_input():
    inputs = (ProposedSpec("apex", 32), ProposedSpec("flow_cells", 4, ("angle", "magnitude"), 5))
    model = build_atnet(3, inputs)
    assert model.lstm1.weight_ih.shape == (4 * 512, 2 * 4 * 4)
    assert model(torch.rand(2, 1, 32, 32), torch.randn(2, 5, 2, 4, 4)).shape == (2, 3)
    with pytest.raises(ValueError, match="flow_cells"):
        build_atnet(3, (ProposedSpec("apex", 32), ProposedSpec("flow_sequence", 8, ("u", "v"), 5)))


def test_atnet_card_counts_8_31_m():
    card = atnet_card()
    assert count_parameters(_on_meta(card)) == card.parameters


# ------------------------------------------------------------------------------------------------ pretrained VGG-16
TINY_VGG_WIDTHS = (4, 4, 8, 8, 8)
TORCHVISION_CONVS = (0, 2, 5, 7, 10, 12, 14, 17, 19, 21, 24, 26, 28)


def _vgg_file_tensors(naming: str, seed: int = 0) -> dict[str, torch.Tensor]:
    """A tiny VGG-16 state dict as a user's file would hold it (three input channels, a 10-way fc8)."""
    generator = torch.Generator().manual_seed(seed)
    shapes, channels = [], 3
    for depth, width in zip((2, 2, 3, 3, 3), TINY_VGG_WIDTHS):
        for _ in range(depth):
            shapes.append(((width, channels, 3, 3), (width,)))
            channels = width
    fc = [((16, 8), (16,)), ((16, 16), (16,)), ((10, 16), (10,))]
    if naming == "torchvision":
        names = [f"features.{index}" for index in TORCHVISION_CONVS] + ["classifier.0", "classifier.3",
                                                                        "classifier.6"]
    else:
        names = [f"module.{name}" for name in ("conv1_1", "conv1_2", "conv2_1", "conv2_2", "conv3_1", "conv3_2",
                                               "conv3_3", "conv4_1", "conv4_2", "conv4_3", "conv5_1", "conv5_2",
                                               "conv5_3", "fc6", "fc7", "fc8")]
        fc[0] = ((16, 8, 1, 1), (16,))
    state = {}
    for name, (weight, bias) in zip(names, shapes + fc):
        state[f"{name}.weight"] = torch.randn(weight, generator=generator)
        state[f"{name}.bias"] = torch.randn(bias, generator=generator)
    return state


def test_a_torchvision_numbered_file_loads_and_fills_the_strain_channel_with_the_rgb_mean(tmp_path):
    path = tmp_path / "vgg16.pth"
    state = _vgg_file_tensors("torchvision")
    torch.save(state, path)
    model = VGG16(4, 32, 3, TINY_VGG_WIDTHS, fc_width=16)
    head = model.head.weight.detach().clone()
    load_pretrained_vgg16(model, path)
    torch.testing.assert_close(model.conv1_1.weight[:, :3], state["features.0.weight"])
    torch.testing.assert_close(model.conv1_1.weight[:, 3], state["features.0.weight"].mean(dim=1))
    torch.testing.assert_close(model.conv5_3.bias, state["features.28.bias"])
    torch.testing.assert_close(model.fc7.weight, state["classifier.3.weight"])
    assert torch.equal(model.head.weight, head)


def test_a_caffe_named_safetensors_file_loads_into_every_elrcn_stream(tmp_path):
    path = tmp_path / "vgg_face.safetensors"
    state = _vgg_file_tensors("caffe")
    save_file(state, str(path))
    model = ELRCN(3, FLOW4, 32, 4, "temporal", ELRCNConfig(TINY_VGG_WIDTHS, fc_width=16, lstm_units=4))
    load_pretrained_vgg16(model, path)
    for stream in model.streams:
        torch.testing.assert_close(stream.conv1_1.weight, state["module.conv1_1.weight"])
        torch.testing.assert_close(stream.fc6.weight, state["module.fc6.weight"].flatten(1))
        torch.testing.assert_close(stream.conv4_2.weight, state["module.conv4_2.weight"])


def test_the_loader_names_the_file_and_key_at_fault(tmp_path):
    model = VGG16(3, 32, 3, TINY_VGG_WIDTHS, fc_width=16)
    incomplete = _vgg_file_tensors("torchvision")
    del incomplete["features.12.weight"]
    torch.save(incomplete, tmp_path / "incomplete.pt")
    with pytest.raises(ValueError, match=r"incomplete\.pt.*conv3_2\.weight"):
        load_pretrained_vgg16(model, tmp_path / "incomplete.pt")
    misshapen = _vgg_file_tensors("torchvision")
    misshapen["classifier.0.weight"] = torch.zeros(16, 9)
    torch.save(misshapen, tmp_path / "misshapen.pt")
    with pytest.raises(ValueError, match=r"misshapen\.pt.*'classifier\.0\.weight'.*\(16, 9\)"):
        load_pretrained_vgg16(model, tmp_path / "misshapen.pt")
    with pytest.raises(FileNotFoundError, match="absent.pt"):
        load_pretrained_vgg16(model, tmp_path / "absent.pt")


class _Payload:
    """Not a tensor: weights_only loading must refuse it."""


def test_the_loader_refuses_objects_other_than_tensors_and_unreadable_files(tmp_path):
    path = tmp_path / "pickled.pt"
    torch.save({"conv1_1.weight": _Payload()}, path)
    with pytest.raises(ValueError, match=r"pickled\.pt: refused"):
        load_pretrained_vgg16(VGG16(3, 32, 3, TINY_VGG_WIDTHS, fc_width=16), path)
    (tmp_path / "garbage.pt").write_bytes(b"not a torch file")
    with pytest.raises(ValueError, match=r"garbage\.pt: not a readable PyTorch weights file"):
        load_pretrained_vgg16(VGG16(3, 32, 3, TINY_VGG_WIDTHS, fc_width=16), tmp_path / "garbage.pt")
    (tmp_path / "broken.safetensors").write_bytes(b"not a safetensors file")
    with pytest.raises(ValueError, match=r"broken\.safetensors"):
        load_pretrained_vgg16(VGG16(3, 32, 3, TINY_VGG_WIDTHS, fc_width=16), tmp_path / "broken.safetensors")


# ------------------------------------------------------------------------------------------------ recipes and notes
def test_published_recipes_are_the_papers_and_defaults_are_marked_proposed():
    elrcn = ELRCN_SE_CARD.recipes["published"]
    assert (elrcn.optimiser, elrcn.lr, elrcn.epochs, elrcn.batch_size) == ("adam", 1e-5, 100, 1)
    reddy = STCNN_CARD.recipes["published"]
    assert (reddy.optimiser, reddy.lr, reddy.momentum, reddy.epochs, reddy.batch_size) == ("sgd", 0.01, 0.0, 100, 8)
    assert FUSENET_CARD.recipes["published"] == reddy
    assert (ATNET_PUBLISHED.optimiser, ATNET_PUBLISHED.lr, ATNET_PUBLISHED.momentum, ATNET_PUBLISHED.weight_decay,
            ATNET_PUBLISHED.batch_size) == ("sgd", 0.01, 0.9, 5e-6, 16)
    for card in SEQUENCE_CARDS:
        assert card.recipes["default"].source.startswith("[PROPOSED]"), card.name
        assert "[PROPOSED]" in card.notes, card.name
    assert "VGG-Face" in ELRCN_SE_CARD.pretrained_from and STCNN_CARD.pretrained_from == ""
