"""ONNX export: the parity gate (float32 and int8), the sidecar, the recognizer against the eager predictor, the
optional-extra error, and the strided apex search against the exhaustive one."""
from __future__ import annotations

import copy
import json
import sys

import numpy as np
import pytest
import torch

pytest.importorskip("onnxruntime")
pytest.importorskip("onnxscript")

import onnx  # noqa: E402

import micronbert.export as export_module  # noqa: E402
from micronbert.data.synthetic import CLASSES, SyntheticFace, make_pair, sample_expression  # noqa: E402
from micronbert.data.transforms import to_model_input  # noqa: E402
from micronbert.export import (  # noqa: E402
    FLOAT32_TOLERANCE,
    INT8_TOLERANCE,
    SIDECAR,
    EagerScorer,
    OnnxExportInfo,
    OnnxRecognizer,
    ParityError,
    apex_search,
    check_parity,
    export_onnx,
    quantise_export,
    read_sidecar,
)
from micronbert.model import MicronBERT, create_model  # noqa: E402
from micronbert.predict import Predictor, apex_scores  # noqa: E402

NAMES = list(CLASSES)


@pytest.fixture(scope="module")
def model() -> MicronBERT:
    """tiny at seed 0, with a volatility head (so the surprise output is exported too). Its smallest gap between the
    two best logits on the 12 parity pairs is 0.011, about 4× int8's logit error here (0.0025)."""
    torch.manual_seed(0)
    return create_model("tiny", num_classes=len(NAMES), volatility_weight=1.0, agreement="off").eval()


@pytest.fixture(scope="module")
def exports(model: MicronBERT, tmp_path_factory: pytest.TempPathFactory) -> dict[str, export_module.ExportReport]:
    """The model exported in float32 (the slow part of this module) and its int8 variant."""
    root = tmp_path_factory.mktemp("onnx")
    float32 = export_onnx(model, root / "float32", class_names=NAMES, parity_pairs=12)
    return {"float32": float32, "int8": quantise_export(model, float32.folder, root / "int8", parity_pairs=12)}


def _pair(seed: int, size: int = 64) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng([seed, 3])
    expression = sample_expression(rng, CLASSES[seed % len(CLASSES)], 200, onset_frame=5, amplitude=(0.05, 0.08))
    timing = expression.frame_timing(200)
    pair = make_pair(SyntheticFace.sample(50 + seed), expression, timing.onset, timing.apex, 200, size)
    return pair.frame_a, pair.frame_b


def _clip_with_one_apex(seed: int, n_frames: int = 40) -> tuple[list[np.ndarray], int]:
    """Frames blending the onset into a strong expression and back: the change rises to frame ``apex`` alone."""
    onset, peak = (frame.astype(np.float32) for frame in _pair(seed))
    apex = int(np.random.default_rng(seed).integers(3, n_frames - 3))
    steps = np.arange(n_frames)
    weights = np.where(steps <= apex, steps / apex, (n_frames - 1 - steps) / (n_frames - 1 - apex))
    return [np.round(onset + w * (peak - onset)).astype(np.uint8) for w in weights], apex


def test_a_float32_export_passes_its_gate_and_its_sidecar_reads_back(model, exports):
    report = exports["float32"]
    parity = report.parity
    assert parity.passed and parity.tolerance == FLOAT32_TOLERANCE and parity.same_class == parity.pairs == 12
    assert parity.logits <= FLOAT32_TOLERANCE.logits
    for figure in ("change", "relative_change", "spotter_change"):
        assert getattr(parity, figure) <= FLOAT32_TOLERANCE.change
    info = read_sidecar(report.folder)
    assert info.model == model.config and info.class_names == NAMES and info.parity == parity
    assert (info.int8, info.quantised_layers, info.input_size) == (False, 0, 64)
    assert info.outputs["recognition"] == ["logits", "dma_diagonal", "saliency", "relative_change", "surprise"]
    assert OnnxExportInfo.from_dict(json.loads(json.dumps(info.to_dict()))) == info
    assert sorted(p.name for p in report.folder.iterdir()) == sorted([SIDECAR, *info.files.values()])


def test_an_int8_export_quantises_the_encoder_linears_only_and_passes_its_gate(model, exports):
    report = exports["int8"]
    linears_per_graph = 4 * model.config.depth  # qkv, proj, fc1, fc2 of each block
    assert report.int8 and report.quantised_layers == 2 * linears_per_graph
    assert report.parity.passed and report.parity.tolerance == INT8_TOLERANCE
    assert report.parity.same_class == report.parity.pairs
    assert report.parity.logits > exports["float32"].parity.logits  # the weights did change precision
    graph = onnx.load(str(report.folder / "recognition.onnx")).graph
    assert sum(node.op_type == "MatMulInteger" for node in graph.node) == linears_per_graph
    float_matmuls = [node for node in graph.node if node.op_type == "MatMul"]
    dma_scope = [node for node in float_matmuls if ".att" in export_module._name_scopes(node)]
    assert len(dma_scope) >= 4  # to_q, to_k, to_v, proj and the score product stay float32
    change_graph = onnx.load(str(report.folder / "change.onnx")).graph
    assert not any(node.op_type == "MatMulInteger" for node in change_graph.node)


def test_a_model_changed_after_export_fails_the_parity_check(model, exports):
    changed = copy.deepcopy(model)
    with torch.no_grad():
        changed.head.fc.weight.add_(0.05 * torch.randn_like(changed.head.fc.weight))
    with pytest.raises(ParityError, match="logits: max"):
        check_parity(changed, exports["float32"].folder, n_pairs=4)
    encoder_changed = copy.deepcopy(model)
    with torch.no_grad():
        encoder_changed.att.to_k.weight.mul_(1.01)
    with pytest.raises(ParityError, match="change: max"):
        check_parity(encoder_changed, exports["float32"].folder, n_pairs=4)


def test_export_refuses_a_changed_model_and_replaces_only_its_own_folders(model, exports, tmp_path, monkeypatch):
    source = exports["float32"].folder

    def reuse_graphs(model, folder, opset, class_names):  # the exported graphs, without tracing again
        for path in source.iterdir():
            (folder / path.name).write_bytes(path.read_bytes())
        return read_sidecar(folder)

    monkeypatch.setattr(export_module, "_write_graphs", reuse_graphs)
    changed = copy.deepcopy(model)
    with torch.no_grad():
        changed.head.fc.bias.add_(1.0)
    with pytest.raises(ParityError, match=r"logits: max \|Δ\|"):
        export_onnx(changed, tmp_path / "refused", parity_pairs=2)
    assert list(tmp_path.iterdir()) == []  # neither the folder nor its staging copy
    earlier = tmp_path / "earlier"
    export_onnx(model, earlier, parity_pairs=2)
    replaced = export_onnx(model, earlier, int8=True, parity_pairs=2)
    assert read_sidecar(earlier).parity == replaced.parity and read_sidecar(earlier).int8
    assert replaced.quantised_layers == exports["int8"].quantised_layers
    with pytest.raises(ValueError, match="already an int8 export"):
        quantise_export(model, earlier, tmp_path / "twice")
    with pytest.raises(ValueError, match="head='motion'"):
        export_onnx(create_model("tiny", num_classes=2, head="motion"), tmp_path / "motion")
    with pytest.raises(ValueError, match="no recognition head"):
        export_onnx(create_model("tiny"), tmp_path / "headless")
    assert list(tmp_path.iterdir()) == [earlier]
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "notes.txt").write_text("mine")
    with pytest.raises(ValueError, match="other: exists and is not an ONNX export"):
        export_onnx(model, tmp_path / "other")


def test_the_recognizer_gives_the_predictors_outputs(model, exports):
    predictor = Predictor(model, NAMES)
    recognizer = OnnxRecognizer(exports["float32"].folder)
    assert (recognizer.class_names, recognizer.size, recognizer.patch_size) == (NAMES, 64, 8)
    for seed in range(3):
        onset, apex = _pair(seed, size=96)  # resized to the model's size like the predictor does
        eager, exported = predictor.pair(onset, apex), recognizer.pair(onset, apex)
        assert exported.keys() == eager.keys() == {"probabilities", "change", "relative_change", "saliency",
                                                   "surprise"}
        for key in eager:
            np.testing.assert_allclose(exported[key], eager[key], atol=1e-4, err_msg=key)
        int8 = OnnxRecognizer(exports["int8"].folder).pair(onset, apex)
        assert np.argmax(int8["probabilities"]) == np.argmax(eager["probabilities"])
    with pytest.raises(ValueError, match="onset: expected a float32"):
        recognizer.recognize(np.zeros((1, 3, 64, 64), np.float64), np.zeros((1, 3, 64, 64), np.float32))


def test_the_change_graph_compares_each_frame_with_its_own_reference(model, exports):
    recognizer = OnnxRecognizer(exports["float32"].folder)
    frames = np.stack(_clip_with_one_apex(1)[0][:8])
    tokens = recognizer.encode(frames)
    later, earlier = tokens[2:], tokens[:-2]  # frame t against frame t - 2, as the spotter compares them
    out = recognizer.compare(later, earlier)
    with torch.no_grad():
        eager = model.encode(to_model_input(frames))
        relative = model.relative_change(apex_tokens=eager[2:], onset_tokens=eager[:-2]).numpy()
        diagonal = model.dma(eager[2:], eager[:-2])[1].numpy()
    np.testing.assert_allclose(out["relative_change"], relative, atol=1e-4)
    np.testing.assert_allclose(out["dma_diagonal"], diagonal, rtol=1e-4, atol=1e-7)
    assert relative.max() > 0.01  # the frames do differ
    with pytest.raises(ValueError, match="differ in shape"):
        recognizer.compare(later, earlier[:1])


def test_missing_onnxruntime_names_the_extra(exports, monkeypatch, model, tmp_path):
    monkeypatch.setitem(sys.modules, "onnxruntime", None)
    with pytest.raises(ImportError, match=r"pip install 'micronbert\[export\]'"):
        OnnxRecognizer(exports["float32"].folder)
    monkeypatch.setitem(sys.modules, "onnxscript", None)
    with pytest.raises(ImportError, match=r"'onnxscript'.*micronbert\[export\]"):
        export_onnx(model, tmp_path / "out")


def test_a_bad_sidecar_is_named(exports, tmp_path):
    with pytest.raises(FileNotFoundError, match=SIDECAR):
        read_sidecar(tmp_path)
    (tmp_path / SIDECAR).write_text(json.dumps({"format": "micronbert-onnx", "version": 1, "input_size": "big"}))
    with pytest.raises(ValueError, match=f"{SIDECAR}: .*input_size"):
        read_sidecar(tmp_path)
    outside = read_sidecar(exports["float32"].folder).to_dict()
    outside["files"]["encoder"] = "../encoder.onnx"
    (tmp_path / SIDECAR).write_text(json.dumps(outside))
    with pytest.raises(ValueError, match="'files' must name"):
        read_sidecar(tmp_path)


def test_the_strided_apex_search_finds_the_exhaustive_apex_with_fewer_frames(model, exports):
    scorer, recognizer = EagerScorer(model), OnnxRecognizer(exports["float32"].folder)
    for seed in range(4):
        frames, apex = _clip_with_one_apex(seed)
        exhaustive = apex_scores(model, frames)
        found, scores = apex_search(scorer, frames, stride=4)
        assert found == int(np.argmax(exhaustive[1:]) + 1) == apex
        scored = ~np.isnan(scores)
        assert scored.sum() <= len(frames) // 4 + 2 * 4
        np.testing.assert_allclose(scores[scored], exhaustive[scored], atol=1e-5)
        assert recognizer.find_apex(frames)[0] == apex
        np.testing.assert_allclose(recognizer.apex_scores(frames), exhaustive, atol=1e-4)


def test_the_apex_search_checks_its_clip(model):
    scorer = EagerScorer(model)
    frame = np.zeros((64, 64, 3), np.uint8)
    with pytest.raises(ValueError, match="at least two frames"):
        apex_search(scorer, [frame])
    with pytest.raises(ValueError, match="differ in size"):
        apex_search(scorer, [frame, np.zeros((32, 32, 3), np.uint8)])
    with pytest.raises(ValueError, match="stride must be a positive integer"):
        apex_search(scorer, [frame, frame], stride=0)
    assert apex_search(scorer, [frame, frame], stride=8)[0] == 1



def test_the_export_command_writes_a_folder_that_predict_reads(model, tmp_path, capsys):
    from micronbert.cli import main
    from micronbert.model import save
    from micronbert.predict import load_predictor, predict_pair

    finetuned = tmp_path / "finetuned"
    save(model, finetuned / "model")
    (finetuned / "classes.json").write_text(json.dumps({"classes": NAMES}))
    onset, apex = _pair(5)
    import cv2

    for name, image in (("onset.png", onset), ("apex.png", apex)):
        cv2.imwrite(str(tmp_path / name), image[..., ::-1])

    assert main(["export", str(finetuned), str(tmp_path / "onnx")]) == 0
    assert "same class" in capsys.readouterr().out
    assert main(["predict", "--model", str(tmp_path / "onnx"), "--onset", str(tmp_path / "onset.png"),
                 "--apex", str(tmp_path / "apex.png"), "--json", "--no-pictures"]) == 0
    exported = json.loads(capsys.readouterr().out)["predictions"][0]["probabilities"]
    eager = predict_pair(load_predictor(finetuned), tmp_path / "onset.png", tmp_path / "apex.png").probabilities
    assert exported.keys() == eager.keys()
    np.testing.assert_allclose([exported[c] for c in NAMES], [eager[c] for c in NAMES], atol=1e-4)
    assert main(["export", str(tmp_path / "onnx"), str(tmp_path / "again")]) == 2
    assert "is an ONNX export already" in capsys.readouterr().err


def test_the_micronbert_spotter_runs_on_an_export_with_the_eager_signal(model, exports):
    from micronbert.export import OnnxChangeModel
    from micronbert.spotting import MicronBertSignalConfig, micronbert_signal

    frames, _ = _clip_with_one_apex(7, n_frames=24)
    crops = [frames[i] if i != 9 else None for i in range(len(frames))]  # a frame without a face on the way
    config = MicronBertSignalConfig(batch_size=5)

    eager = micronbert_signal(model, crops, [2, 4], fps=30, config=config)
    exported = micronbert_signal(OnnxChangeModel(exports["float32"].folder), crops, [2, 4], fps=30, config=config)

    assert exported.values.shape == eager.values.shape == (24, 2)
    np.testing.assert_array_equal(np.isnan(exported.values), np.isnan(eager.values))
    np.testing.assert_allclose(exported.values, eager.values, atol=1e-4, equal_nan=True)
