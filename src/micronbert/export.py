"""Fast CPU inference through ONNX Runtime: export, parity gate, a recognizer, and a strided apex search.

Needs the optional extra ``pip install 'micronbert[export]'`` (onnx, onnxscript, onnxruntime); nothing else in the
package does, and the imports happen on first use. :func:`export_onnx` writes a folder with three graphs of a
fine-tuned model and a JSON sidecar (:data:`SIDECAR`):

- ``recognition.onnx``: encoder + DMA + PoI + recognition head. Inputs ``onset`` and ``apex``, normalised float32
  (B, 3, S, S) (:func:`micronbert.data.transforms.to_model_input`); outputs ``logits`` (B, K), ``dma_diagonal``
  (B, heads, N), ``saliency`` (B, N), ``relative_change`` (B, N) and, for a model with a volatility head,
  ``surprise`` (B, N): everything :meth:`micronbert.predict.Predictor.pair` shows, from one call.
- ``encoder.onnx``: ``images`` (B, 3, S, S) → ``tokens`` (B, 1 + N, dim).
- ``change.onnx``: the change signal of the apex search and of the spotter. ``tokens`` and ``reference_tokens``
  (B, 1 + N, dim), row b a frame and the frame it is compared with (a clip's onset, or frame t − k) →
  ``relative_change`` (B, N) (:meth:`MicronBERT.relative_change`) and ``dma_diagonal`` (B, heads, N), whose
  :func:`~micronbert.model.change_map` is the DMA change map. With the encoder graph, every frame (the onset
  included) is encoded once and its tokens are reused for every comparison.

With ``int8=True`` ONNX Runtime quantises the encoder's linear layers dynamically (int8 weights per output
channel, activations quantised per call) in ``recognition.onnx`` and ``encoder.onnx``; the patch embedding, DMA,
PoI saliency and head stay float32, and ``change.onnx`` is all float32.

Every export is gated on parity (:func:`check_parity`): on held-out synthetic pairs the ONNX graphs must give the
eager model's predicted class for every pair, and logits and change maps within :data:`FLOAT32_TOLERANCE` (or
:data:`INT8_TOLERANCE`); otherwise the export is refused with :class:`ParityError` naming the figure.

:class:`OnnxRecognizer` reads such a folder and answers like :class:`micronbert.predict.Predictor` (``pair``,
``apex_scores``, ``find_apex``). :func:`apex_search` finds a clip's apex from the onset's tokens, encoded once,
scoring every ``stride``-th frame first and then the frames around the best; :class:`EagerScorer` runs it on
the PyTorch model.
"""
from __future__ import annotations

import dataclasses
import importlib
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch
from torch import nn

from .config import Config
from .data.synthetic import CLASSES, SyntheticFace, make_pair, sample_expression
from .data.transforms import IMAGENET_MEAN, IMAGENET_STD, resize_square, to_model_input
from .io import check_positive_int, read_json_mapping, write_json_atomically
from .model import MicronBERT, ModelConfig, change_map, relative_change_map, surprise_map

SIDECAR = "micronbert_onnx.json"
FORMAT_NAME = "micronbert-onnx"
FORMAT_VERSION = 1
DEFAULT_OPSET = 18
EXTRA = "micronbert[export]"
RECOGNITION_FILE, ENCODER_FILE, CHANGE_FILE = "recognition.onnx", "encoder.onnx", "change.onnx"
# Scope of the encoder's linear layers in the exporter's node metadata (``pkg.torch.onnx.name_scopes``).
ENCODER_LINEAR = "backbone.blocks."
PARITY_FPS = 200.0
PARITY_SEED_TAG = 0x0E1  # held out: no other generator of the package draws faces from this stream


# ------------------------------------------------------------------------------------------ optional imports
def _require(module: str, purpose: str) -> Any:
    try:
        return importlib.import_module(module)
    except ImportError as err:
        raise ImportError(f"{purpose} needs the optional package {module!r}: pip install '{EXTRA}'") from err


def _onnxruntime() -> Any:
    return _require("onnxruntime", "ONNX inference")


# --------------------------------------------------------------------------------------------- the graphs
class RecognitionGraph(nn.Module):
    """What ``recognition.onnx`` computes, as a module: (onset, apex) → logits, DMA diagonal, saliency, relative
    change (and surprise with a volatility head), the work of :meth:`Predictor.pair` in one call. Running it
    eagerly gives the eager side of a like-for-like timing."""

    def __init__(self, model: MicronBERT) -> None:
        super().__init__()
        self.model = model

    @property
    def output_names(self) -> list[str]:
        names = ["logits", "dma_diagonal", "saliency", "relative_change"]
        return names + ["surprise"] if self.model.volatility_head is not None else names

    def forward(self, onset: torch.Tensor, apex: torch.Tensor) -> tuple[torch.Tensor, ...]:
        # The inputs are not checked here (check_frames hashes shapes, which would fix the batch size in the
        # graph); OnnxRecognizer and ONNX Runtime check them at the boundary.
        batch = onset.shape[0]
        tokens = self.model.encode(torch.cat([apex, onset]))
        apex_tokens, onset_tokens = tokens[:batch], tokens[batch:]
        out = self.model.recognize_tokens(onset_tokens=onset_tokens, apex_tokens=apex_tokens)
        relative = self.model.relative_change(apex_tokens=apex_tokens, onset_tokens=onset_tokens,
                                              diagonal=out["dma_map"])
        outputs = (out["logits"], out["dma_map"], out["saliency"], relative)
        if self.model.volatility_head is None:
            return outputs
        return (*outputs, surprise_map(relative, self.model.volatility(apex_tokens)))


class EncoderGraph(nn.Module):
    """What ``encoder.onnx`` computes: images → encoder tokens."""

    def __init__(self, model: MicronBERT) -> None:
        super().__init__()
        self.model = model

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.model.encode(images)


class ChangeGraph(nn.Module):
    """What ``change.onnx`` computes: the relative change map and DMA diagonal of each frame's tokens against the
    reference frame's tokens of the same row."""

    def __init__(self, model: MicronBERT) -> None:
        super().__init__()
        self.model = model

    def forward(self, tokens: torch.Tensor, reference_tokens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        diagonal = self.model.dma(tokens, reference_tokens)[1]
        relative = self.model.relative_change(apex_tokens=tokens, onset_tokens=reference_tokens, diagonal=diagonal)
        return relative, diagonal


# --------------------------------------------------------------------------------------- parity figures
@dataclass(frozen=True)
class ParityTolerance(Config):
    """Largest differences an export may show against the eager model.

    ``logits``: max |Δ logit| / max(1, max |eager logit|), so that the bound follows the logits' scale;
    ``change``: max |Δ| over the change maps (1 − a/max a) and relative change maps, both in [0, 1].
    """

    logits: float
    change: float


# float32: the same arithmetic with other kernels and summation orders; measured ≤ 3e-6 on `tiny` and
# `official-small` (logits and maps), so 1e-4 leaves ~30× room and still catches any changed weight or graph.
FLOAT32_TOLERANCE = ParityTolerance(logits=1e-4, change=1e-4)
# int8 (dynamic, encoder linears only): measured in two runs on 24 pairs with `official-small` at 224 (random
# weights) 0.0043-0.0047 (logits) and 0.047-0.070 (maps: the largest of 24 × 784 patches; mean 0.005), with `tiny`
# 0.0025 and 0.031; the bounds leave ~10× and ~2× room. The predicted class must still agree on every pair.
INT8_TOLERANCE = ParityTolerance(logits=0.05, change=0.15)


@dataclass(frozen=True)
class ParityReport(Config):
    """Figures of an export against the eager model on ``pairs`` held-out synthetic pairs (see
    :class:`ParityTolerance` for ``logits`` and the maps). ``spotter_change`` compares the relative change that
    ``encoder.onnx`` + ``change.onnx`` give; ``saliency`` (max |Δ|, saliency has mean 1), ``mean_change`` and
    ``min_margin`` (the eager model's smallest gap between its two best logits) are recorded, not gated."""

    pairs: int
    same_class: int
    logits: float
    change: float
    relative_change: float
    spotter_change: float
    saliency: float
    mean_change: float
    min_margin: float
    tolerance: ParityTolerance

    def failures(self) -> list[str]:
        """One line per figure out of tolerance (empty when the export passes)."""
        found = []
        if self.same_class != self.pairs:
            found.append(f"predicted class: {self.same_class} of {self.pairs} pairs agree with the eager model")
        if not self.logits <= self.tolerance.logits:
            found.append(f"logits: max |Δ| / max(1, max |logit|) = {self.logits:.3g} > {self.tolerance.logits:g}")
        for name in ("change", "relative_change", "spotter_change"):
            value = getattr(self, name)
            if not value <= self.tolerance.change:
                found.append(f"{name}: max |Δ| = {value:.3g} > {self.tolerance.change:g}")
        return found

    @property
    def passed(self) -> bool:
        return not self.failures()


class ParityError(ValueError):
    """An export whose outputs differ from the eager model's beyond the tolerance."""


# ------------------------------------------------------------------------------------------------ sidecar
@dataclass(frozen=True)
class OnnxExportInfo(Config):
    """The sidecar of an export folder (:data:`SIDECAR`): what the graphs need and what they were checked
    against. Inputs are RGB images resized to ``input_size``², scaled to [0, 1] and normalised with ``mean`` and
    ``std`` per channel, laid out (B, 3, S, S)."""

    model: ModelConfig
    input_size: int
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    class_names: list[str] | None
    opset: int
    int8: bool
    quantised_layers: int
    files: dict[str, str]
    outputs: dict[str, list[str]]
    parity: ParityReport | None
    versions: dict[str, str]
    format: str = FORMAT_NAME
    version: int = FORMAT_VERSION


def read_sidecar(folder: str | os.PathLike[str]) -> OnnxExportInfo:
    """The :class:`OnnxExportInfo` of an export folder; a missing or malformed sidecar raises
    ``FileNotFoundError`` or ``ValueError`` naming the file."""
    path = Path(folder) / SIDECAR
    if not path.is_file():
        raise FileNotFoundError(f"{path}: missing (not a micronbert ONNX export folder)")
    data = read_json_mapping(path, "ONNX export sidecar")
    if data.get("format") != FORMAT_NAME or data.get("version") != FORMAT_VERSION:
        raise ValueError(f"{path}: not a {FORMAT_NAME} sidecar of version {FORMAT_VERSION}")
    try:
        info = OnnxExportInfo.from_dict(data)
    except ValueError as err:
        raise ValueError(f"{path}: {err}") from None
    roles = {"recognition", "encoder", "change"}
    if set(info.files) != roles or any(Path(name).name != name for name in info.files.values()):
        raise ValueError(f"{path}: 'files' must name the {', '.join(sorted(roles))} graphs inside the folder, "
                         f"got {info.files}")
    return info


def is_onnx_export(folder: str | os.PathLike[str]) -> bool:
    """Whether ``folder`` holds an export written by :func:`export_onnx`."""
    return (Path(folder) / SIDECAR).is_file()


# ------------------------------------------------------------------------------------------------- export
@dataclass(frozen=True)
class ExportReport:
    """What :func:`export_onnx` wrote: the folder, its files by role, and the parity figures that let it pass."""

    folder: Path
    files: dict[str, str]
    int8: bool
    opset: int
    quantised_layers: int
    parity: ParityReport
    seconds: float


def export_onnx(model: MicronBERT, out_dir: str | os.PathLike[str], int8: bool = False, opset: int = DEFAULT_OPSET,
                class_names: Sequence[str] | None = None, parity_pairs: int = 24, seed: int = 0,
                tolerance: ParityTolerance | None = None, threads: int | None = None) -> ExportReport:
    """Write the ONNX graphs of ``model`` (a CPU model with a recognition head; set to eval mode) and the sidecar
    to ``out_dir`` (see the module doc), after checking parity on ``parity_pairs`` held-out synthetic pairs
    (``tolerance`` by default :data:`FLOAT32_TOLERANCE` or :data:`INT8_TOLERANCE`; ``threads`` for ONNX Runtime).

    Raises :class:`ParityError` naming the failing figure, leaving ``out_dir`` as it was; the folder is replaced
    in one step, so it never holds half an export. ``out_dir`` may be new, empty or an earlier export."""
    _require("onnxscript", "ONNX export")
    _check_exportable(model, class_names)
    check_positive_int("opset", opset)

    def write(staging: Path) -> OnnxExportInfo:
        info = _write_graphs(model, staging, opset, class_names)
        return _quantise_folder(staging, info) if int8 else info

    return _gated_export(model, Path(out_dir), write, parity_pairs, seed, tolerance, threads)


def quantise_export(model: MicronBERT, float_dir: str | os.PathLike[str], out_dir: str | os.PathLike[str],
                    parity_pairs: int = 24, seed: int = 0, tolerance: ParityTolerance | None = None,
                    threads: int | None = None) -> ExportReport:
    """The int8 variant of ``float_dir``, a float32 export of ``model``, in ``out_dir``: what
    ``export_onnx(model, out_dir, int8=True)`` writes, without tracing the model again (gated the same way)."""
    source = read_sidecar(float_dir)
    if source.int8:
        raise ValueError(f"{float_dir}: already an int8 export; quantise a float32 one")
    _check_exportable(model, source.class_names)

    def write(staging: Path) -> OnnxExportInfo:
        for name in [*source.files.values(), SIDECAR]:
            shutil.copyfile(Path(float_dir) / name, staging / name)
        return _quantise_folder(staging, dataclasses.replace(source, parity=None))

    return _gated_export(model, Path(out_dir), write, parity_pairs, seed, tolerance, threads)


def _gated_export(model: MicronBERT, out_dir: Path, write: Callable[[Path], OnnxExportInfo], parity_pairs: int,
                  seed: int, tolerance: ParityTolerance | None, threads: int | None) -> ExportReport:
    """Run ``write`` into a staging folder beside ``out_dir``, check parity, record it and put the folder in
    place; on any failure remove the staging folder."""
    _check_target(out_dir)
    start = time.perf_counter()
    model.eval()
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", dir=out_dir.parent))
    try:
        info = write(staging)
        parity = check_parity(model, staging, n_pairs=parity_pairs, seed=seed, tolerance=tolerance, threads=threads)
        info = dataclasses.replace(info, parity=parity)
        write_json_atomically(staging / SIDECAR, info.to_dict())
        _publish(staging, out_dir)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return ExportReport(out_dir, info.files, info.int8, info.opset, info.quantised_layers, parity,
                        time.perf_counter() - start)


def _check_exportable(model: MicronBERT, class_names: Sequence[str] | None) -> None:
    if model.head is None:
        raise ValueError("the model has no recognition head: fine-tune it first (micronbert finetune)")
    if model.config.head == "motion":
        raise ValueError("ONNX export covers the DMA head (head='dma'); head='motion' takes a median over the "
                         "patches that the ONNX exporter cannot translate (aten.median.dim)")
    if model.device.type != "cpu":
        raise ValueError(f"export a model on the CPU (this one is on {model.device}): model.cpu()")
    if class_names is not None and len(class_names) != model.config.num_classes:
        raise ValueError(f"{len(class_names)} class names for a head of {model.config.num_classes} classes")


def _check_target(out_dir: Path) -> None:
    if out_dir.exists() and not (out_dir.is_dir() and (is_onnx_export(out_dir) or not any(out_dir.iterdir()))):
        raise ValueError(f"{out_dir}: exists and is not an ONNX export folder; choose another output folder")


def _publish(staging: Path, out_dir: Path) -> None:
    if not out_dir.exists():
        os.replace(staging, out_dir)
        return
    backup = out_dir.with_name(f".{out_dir.name}.old")
    shutil.rmtree(backup, ignore_errors=True)
    os.replace(out_dir, backup)
    os.replace(staging, out_dir)
    shutil.rmtree(backup, ignore_errors=True)


def _write_graphs(model: MicronBERT, folder: Path, opset: int,
                  class_names: Sequence[str] | None) -> OnnxExportInfo:
    """Export the three float32 graphs into ``folder`` and write a sidecar without parity figures; returns it."""
    c = model.config
    size, batch = c.img_size, torch.export.Dim("batch", min=1)
    generator = torch.Generator().manual_seed(0)
    images = [torch.randn(2, c.in_chans, size, size, generator=generator) for _ in range(2)]
    recognition = RecognitionGraph(model)
    with torch.no_grad():
        tokens = [model.encode(image) for image in images]
    graphs = {
        "recognition": (recognition, tuple(images), ["onset", "apex"], recognition.output_names,
                        {"onset": {0: batch}, "apex": {0: batch}}),
        "encoder": (EncoderGraph(model), images[:1], ["images"], ["tokens"], {"images": {0: batch}}),
        "change": (ChangeGraph(model), tuple(tokens), ["tokens", "reference_tokens"],
                   ["relative_change", "dma_diagonal"], {"tokens": {0: batch}, "reference_tokens": {0: batch}}),
    }
    files = {"recognition": RECOGNITION_FILE, "encoder": ENCODER_FILE, "change": CHANGE_FILE}
    for role, (module, example, inputs, outputs, dynamic) in graphs.items():
        _export_graph(module, tuple(example), inputs, outputs, dynamic, opset, folder / files[role])
    onnx, onnxruntime = _require("onnx", "ONNX export"), _onnxruntime()
    info = OnnxExportInfo(
        model=c, input_size=size, mean=IMAGENET_MEAN, std=IMAGENET_STD,
        class_names=list(class_names) if class_names is not None else None, opset=opset, int8=False,
        quantised_layers=0, files=files, outputs={role: graph[3] for role, graph in graphs.items()},
        parity=None, versions={"torch": torch.__version__, "onnx": onnx.__version__,
                               "onnxruntime": onnxruntime.__version__})
    write_json_atomically(folder / SIDECAR, info.to_dict())
    return info


def _export_graph(module: nn.Module, example: tuple[torch.Tensor, ...], inputs: list[str], outputs: list[str],
                  dynamic: dict[str, Any], opset: int, path: Path) -> None:
    # Distinct example tensors: torch.export would merge an input passed twice into one graph input.
    with torch.no_grad():
        program = torch.export.export(module, example, dynamic_shapes=dynamic, strict=False)
        onnx_program = torch.onnx.export(program, dynamo=True, opset_version=opset, input_names=inputs,
                                         output_names=outputs, verbose=False)
    onnx_program.save(str(path), external_data=False)


def _quantise_folder(folder: Path, info: OnnxExportInfo) -> OnnxExportInfo:
    """Quantise the encoder linears of the recognition and encoder graphs in ``folder`` (``change.onnx``, DMA
    alone, stays float32); returns ``info`` updated and written."""
    layers = sum(quantise_encoder_linears(folder / info.files[role]) for role in ("recognition", "encoder"))
    info = dataclasses.replace(info, int8=True, quantised_layers=layers)
    write_json_atomically(folder / SIDECAR, info.to_dict())
    return info


def quantise_encoder_linears(path: Path) -> int:
    """Replace the ONNX model at ``path`` by one whose encoder linear layers (MatMul nodes of
    ``backbone.blocks.*`` with constant weights) ONNX Runtime has quantised dynamically, int8 weights per output
    channel; the rest (patch embedding, attention products, DMA, saliency, head) stays float32. Returns the number
    of layers quantised."""
    onnx = _require("onnx", "int8 export")
    _onnxruntime()
    from onnxruntime.quantization import QuantType, quantize_dynamic

    graph = onnx.load(str(path)).graph
    constants = {initializer.name for initializer in graph.initializer}
    nodes = [node.name for node in graph.node
             if node.op_type == "MatMul" and node.input[1] in constants and ENCODER_LINEAR in _name_scopes(node)]
    if not nodes:
        raise RuntimeError(f"{path}: no encoder linear layer found to quantise (has the exporter's node metadata "
                           "changed?)")
    quantised = path.with_name(path.stem + ".int8.onnx")
    quantize_dynamic(path, quantised, op_types_to_quantize=["MatMul"], nodes_to_quantize=nodes,
                     per_channel=True, weight_type=QuantType.QInt8)
    os.replace(quantised, path)
    return len(nodes)


def _name_scopes(node: Any) -> str:
    return next((prop.value for prop in node.metadata_props if prop.key == "pkg.torch.onnx.name_scopes"), "")


# ------------------------------------------------------------------------------------------------- parity
def parity_pairs(size: int, n_pairs: int = 24, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Held-out synthetic (onset, apex) pairs at ``size``: two (n_pairs, size, size, 3) uint8 stacks, the classes
    in turn, each pair from its own face and expression drawn from a seed stream no dataset generator uses."""
    check_positive_int("n_pairs", n_pairs)
    onsets, apexes = [], []
    for index in range(n_pairs):
        rng = np.random.default_rng([seed, PARITY_SEED_TAG, index])
        face = SyntheticFace.sample(int(rng.integers(2**31)))
        expression = sample_expression(rng, CLASSES[index % len(CLASSES)], PARITY_FPS, onset_frame=5)
        timing = expression.frame_timing(PARITY_FPS)
        pair = make_pair(face, expression, timing.onset, timing.apex, PARITY_FPS, size)
        onsets.append(pair.frame_a)
        apexes.append(pair.frame_b)
    return np.stack(onsets), np.stack(apexes)


def check_parity(model: MicronBERT, folder: str | os.PathLike[str], n_pairs: int = 24, seed: int = 0,
                 tolerance: ParityTolerance | None = None, threads: int | None = None) -> ParityReport:
    """Compare the export in ``folder`` with ``model`` on :func:`parity_pairs`; return the figures, or raise
    :class:`ParityError` naming every figure out of ``tolerance`` (by default the one for the folder's
    precision)."""
    recognizer = OnnxRecognizer(folder, threads=threads)
    tolerance = tolerance or (INT8_TOLERANCE if recognizer.info.int8 else FLOAT32_TOLERANCE)
    onset, apex = (to_model_input(images) for images in parity_pairs(recognizer.size, n_pairs, seed))
    report = _parity_figures(_eager_outputs(model.eval(), onset, apex),
                             _exported_outputs(recognizer, onset.numpy(), apex.numpy()), tolerance)
    if not report.passed:
        raise ParityError(f"{folder}: the ONNX export differs from the eager model on {n_pairs} held-out synthetic "
                          "pairs: " + "; ".join(report.failures()))
    return report


@torch.no_grad()
def _eager_outputs(model: MicronBERT, onset: torch.Tensor, apex: torch.Tensor, chunk: int = 8) -> dict[str, np.ndarray]:
    parts: dict[str, list[torch.Tensor]] = {"logits": [], "dma_diagonal": [], "saliency": [], "relative_change": []}
    for start in range(0, len(onset), chunk):
        onset_tokens, apex_tokens = model.encode(onset[start:start + chunk]), model.encode(apex[start:start + chunk])
        out = model.recognize_tokens(onset_tokens=onset_tokens, apex_tokens=apex_tokens)
        parts["logits"].append(out["logits"])
        parts["dma_diagonal"].append(out["dma_map"])
        parts["saliency"].append(out["saliency"])
        parts["relative_change"].append(model.relative_change(apex_tokens=apex_tokens, onset_tokens=onset_tokens))
    return {name: torch.cat(values).numpy() for name, values in parts.items()}


def _exported_outputs(recognizer: OnnxRecognizer, onset: np.ndarray, apex: np.ndarray,
                      chunk: int = 8) -> dict[str, np.ndarray]:
    """The recognition graph's outputs and, as ``spotter_change``, the relative change through the encoder and
    change graphs, each pair's onset as the reference."""
    parts: dict[str, list[np.ndarray]] = {"spotter_change": []}
    for start in range(0, len(onset), chunk):
        onset_part, apex_part = onset[start:start + chunk], apex[start:start + chunk]
        for name, value in recognizer.recognize(onset_part, apex_part).items():
            parts.setdefault(name, []).append(value)
        parts["spotter_change"].append(recognizer.relative_change(recognizer.encode_inputs(apex_part),
                                                                  recognizer.encode_inputs(onset_part)))
    return {name: np.concatenate(values) for name, values in parts.items()}


def _parity_figures(eager: dict[str, np.ndarray], exported: dict[str, np.ndarray],
                    tolerance: ParityTolerance) -> ParityReport:
    def largest(a: np.ndarray, b: np.ndarray) -> float:
        return float(np.max(np.abs(a - b)))

    logits = eager["logits"]
    top_two = np.sort(logits, axis=1)[:, -2:] if logits.shape[1] > 1 else np.zeros((len(logits), 2))
    change_eager, change_exported = (_change(outputs["dma_diagonal"]) for outputs in (eager, exported))
    return ParityReport(
        pairs=len(logits), same_class=int(np.sum(logits.argmax(1) == exported["logits"].argmax(1))),
        logits=largest(logits, exported["logits"]) / max(1.0, float(np.abs(logits).max())),
        change=largest(change_eager, change_exported),
        relative_change=largest(eager["relative_change"], exported["relative_change"]),
        spotter_change=largest(eager["relative_change"], exported["spotter_change"]),
        saliency=largest(eager["saliency"], exported["saliency"]),
        mean_change=float(np.mean(np.abs(change_eager - change_exported))),
        min_margin=float(np.min(top_two[:, 1] - top_two[:, 0])), tolerance=tolerance)


def _change(diagonal: np.ndarray) -> np.ndarray:
    return change_map(torch.from_numpy(diagonal)).numpy()


# ------------------------------------------------------------------------------------------- apex search
class FrameScorer(Protocol):
    """What :func:`apex_search` needs: the input size, frames → tokens, and each frame's change against the
    onset from their tokens."""

    size: int

    def encode(self, frames: np.ndarray) -> Any:
        """(B, size, size, 3) uint8 RGB frames → their tokens."""

    def change_scores(self, tokens: Any, onset_tokens: Any) -> np.ndarray:
        """Mean relative change (B,) of each frame's tokens against the onset's (one frame)."""


class EagerScorer:
    """:class:`FrameScorer` on the PyTorch model (what :func:`micronbert.predict.apex_scores` computes)."""

    def __init__(self, model: MicronBERT) -> None:
        self.model = model.eval()
        self.size = model.config.img_size

    @torch.no_grad()
    def encode(self, frames: np.ndarray) -> torch.Tensor:
        return self.model.encode(to_model_input(frames))

    @torch.no_grad()
    def change_scores(self, tokens: torch.Tensor, onset_tokens: torch.Tensor) -> np.ndarray:
        diagonal = self.model.dma(tokens, onset_tokens.expand(len(tokens), -1, -1))[1]
        self_diagonal = self.model.dma(onset_tokens, onset_tokens)[1]
        return relative_change_map(diagonal, self_diagonal.expand_as(diagonal)).mean(dim=1).numpy()


def apex_search(scorer: FrameScorer, frames: Sequence[np.ndarray], stride: int = 4,
                batch_size: int = 16) -> tuple[int, np.ndarray]:
    """The apex of a clip (uint8 RGB frames, the first the onset) and each frame's score, the mean relative change
    against the onset (0 for the onset; NaN for frames not scored).

    The onset is encoded once. Every ``stride``-th frame (and the last) is scored first, then every frame within
    ``stride - 1`` of the best of those; for a clip whose change rises to one peak and falls, this finds the frame
    an exhaustive search finds (``stride=1`` is that search), encoding about n/stride + 2·stride frames."""
    check_positive_int("stride", stride)
    check_positive_int("batch_size", batch_size)
    _check_clip(frames)
    resized = [resize_square(frame, scorer.size) for frame in frames]
    onset_tokens = scorer.encode(resized[0][None])
    scores = np.full(len(frames), np.nan)
    scores[0] = 0.0

    def score(indices: list[int]) -> None:
        for start in range(0, len(indices), batch_size):
            chosen = indices[start:start + batch_size]
            scores[chosen] = scorer.change_scores(scorer.encode(np.stack([resized[i] for i in chosen])), onset_tokens)

    coarse = list(range(1, len(frames), stride))
    score(coarse if coarse[-1] == len(frames) - 1 else [*coarse, len(frames) - 1])
    best = _best_frame(scores)
    score([i for i in range(max(1, best - stride + 1), min(len(frames), best + stride)) if np.isnan(scores[i])])
    return _best_frame(scores), scores


def _best_frame(scores: np.ndarray) -> int:
    return int(np.nanargmax(scores[1:]) + 1)


def _check_clip(frames: Sequence[np.ndarray]) -> None:
    if len(frames) < 2:
        raise ValueError(f"a clip needs at least two frames to find an apex, got {len(frames)}")
    shapes = {frame.shape for frame in frames}
    if len(shapes) > 1:
        raise ValueError(f"the clip's frames differ in size: {sorted(shapes)}")


# -------------------------------------------------------------------------------------------- recognizer
class OnnxRecognizer:
    """An export folder run by ONNX Runtime on the CPU, answering like :class:`micronbert.predict.Predictor`:
    :meth:`pair`, :meth:`apex_scores`, :meth:`find_apex`, with ``class_names``, ``size`` and ``patch_size``.

    ``class_names`` defaults to the sidecar's (else "0", "1", …); ``threads`` sets ONNX Runtime's intra-op threads
    (None: its default, one per physical core)."""

    def __init__(self, folder: str | os.PathLike[str], class_names: Sequence[str] | None = None,
                 threads: int | None = None) -> None:
        onnxruntime = _onnxruntime()
        self.folder = Path(folder)
        self.info = read_sidecar(self.folder)
        self.config = self.info.model
        self.size = self.info.input_size
        self.patch_size = self.config.patch_size
        names = class_names if class_names is not None else self.info.class_names
        self.class_names = list(names) if names is not None else [str(i) for i in range(self.config.num_classes)]
        if len(self.class_names) != self.config.num_classes:
            raise ValueError(f"{len(self.class_names)} class names for a head of {self.config.num_classes} classes")
        options = onnxruntime.SessionOptions()
        if threads is not None:
            check_positive_int("threads", threads)
            options.intra_op_num_threads = threads
        self.sessions = {role: self._session(onnxruntime, options, role) for role in ("recognition", "encoder",
                                                                                         "change")}

    def _session(self, onnxruntime: Any, options: Any, role: str) -> Any:
        path = self.folder / self.info.files[role]
        if not path.is_file():
            raise FileNotFoundError(f"{path}: missing from the export folder")
        return onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])

    # -------------------------------------------------------------------------------- graphs on arrays
    def recognize(self, onset: np.ndarray, apex: np.ndarray) -> dict[str, np.ndarray]:
        """``recognition.onnx`` on normalised float32 (B, 3, S, S) batches: its outputs by name."""
        for name, images in (("onset", onset), ("apex", apex)):
            self._check_input(name, images)
        if onset.shape != apex.shape:
            raise ValueError(f"onset and apex batches differ in shape: {onset.shape} vs {apex.shape}")
        values = self.sessions["recognition"].run(None, {"onset": onset, "apex": apex})
        return dict(zip(self.info.outputs["recognition"], values))

    def encode_inputs(self, images: np.ndarray) -> np.ndarray:
        """``encoder.onnx`` on a normalised float32 (B, 3, S, S) batch: tokens (B, 1 + N, dim)."""
        self._check_input("images", images)
        return self.sessions["encoder"].run(None, {"images": images})[0]

    def relative_change(self, tokens: np.ndarray, reference_tokens: np.ndarray) -> np.ndarray:
        """``change.onnx``: the relative change maps (B, N) of frames' tokens (B, 1 + N, dim) against their
        reference frames' tokens (B, 1 + N, dim)."""
        return self.compare(tokens, reference_tokens)["relative_change"]

    def compare(self, tokens: np.ndarray, reference_tokens: np.ndarray) -> dict[str, np.ndarray]:
        """``change.onnx``'s outputs by name (``relative_change`` (B, N), ``dma_diagonal`` (B, heads, N)) for frames'
        tokens against their reference frames' tokens, both (B, 1 + N, dim) (the spotter's t against t − k)."""
        if tokens.shape != reference_tokens.shape:
            raise ValueError(f"tokens and reference_tokens differ in shape: {tokens.shape} vs {reference_tokens.shape}")
        values = self.sessions["change"].run(None, {"tokens": tokens, "reference_tokens": reference_tokens})
        return dict(zip(self.info.outputs["change"], values))

    def _check_input(self, name: str, images: np.ndarray) -> None:
        expected = (self.config.in_chans, self.size, self.size)
        if not isinstance(images, np.ndarray) or images.dtype != np.float32 or images.ndim != 4 \
                or images.shape[1:] != expected:
            raise ValueError(f"{name}: expected a float32 (B, {', '.join(map(str, expected))}) array, got "
                             f"{getattr(images, 'dtype', type(images).__name__)} {getattr(images, 'shape', '')}")

    # ------------------------------------------------------------------------------ FrameScorer, Predictor
    def encode(self, frames: np.ndarray) -> np.ndarray:
        """(B, S, S, 3) uint8 RGB frames → tokens (:class:`FrameScorer`)."""
        return self.encode_inputs(to_model_input(frames).numpy())

    def change_scores(self, tokens: np.ndarray, onset_tokens: np.ndarray) -> np.ndarray:
        """Mean relative change (B,) against the onset (:class:`FrameScorer`)."""
        return self.relative_change(tokens, np.repeat(onset_tokens, len(tokens), axis=0)).mean(axis=1)

    def pair(self, onset: np.ndarray, apex: np.ndarray) -> dict[str, np.ndarray]:
        """Like :meth:`Predictor.pair`: probabilities (classes,), DMA change map (N,), relative change map (N,),
        saliency (N,) and, with a volatility head, surprise map (N,) of one uint8 RGB pair."""
        if onset.shape != apex.shape:
            raise ValueError(f"onset and apex images differ in size: {onset.shape[:2]} vs {apex.shape[:2]}")
        onset_input, apex_input = (to_model_input(resize_square(image, self.size)).numpy() for image in (onset, apex))
        out = self.recognize(onset_input, apex_input)
        maps = {"probabilities": _softmax(out["logits"][0]), "change": _change(out["dma_diagonal"])[0],
                "relative_change": out["relative_change"][0], "saliency": out["saliency"][0]}
        if "surprise" in out:
            maps["surprise"] = out["surprise"][0]
        return maps

    def apex_scores(self, frames: Sequence[np.ndarray], batch_size: int = 16) -> np.ndarray:
        """Every frame's mean relative change against the first (:func:`micronbert.predict.apex_scores`)."""
        return apex_search(self, frames, stride=1, batch_size=batch_size)[1]

    def find_apex(self, frames: Sequence[np.ndarray], batch_size: int = 16, stride: int = 4) -> tuple[int, np.ndarray]:
        """The apex frame's index and the scores (NaN where not scored) by :func:`apex_search`."""
        return apex_search(self, frames, stride=stride, batch_size=batch_size)


class OnnxChangeModel(nn.Module):
    """An export folder standing in for the model of the μ-BERT spotter (``micronbert spot --spotter micronbert
    --weights EXPORT``): the calls its change signal makes (``encode``, ``relative_change``, ``dma``, ``config``,
    ``device``) answered by ONNX Runtime's encoder and change graphs on the CPU. It has no parameters."""

    def __init__(self, folder: str | os.PathLike[str], threads: int | None = None) -> None:
        super().__init__()
        self.recognizer = OnnxRecognizer(folder, threads=threads)
        self.config = self.recognizer.config

    @property
    def device(self) -> torch.device:
        return torch.device("cpu")

    def encode(self, images: torch.Tensor) -> torch.Tensor:
        """Normalised (B, 3, S, S) images → tokens (B, 1 + N, dim)."""
        return torch.from_numpy(self.recognizer.encode_inputs(images.detach().float().cpu().numpy()))

    def relative_change(self, apex_tokens: torch.Tensor, onset_tokens: torch.Tensor) -> torch.Tensor:
        """Relative change maps (B, N) of ``apex_tokens`` against ``onset_tokens``."""
        return torch.from_numpy(self.recognizer.relative_change(apex_tokens.numpy(), onset_tokens.numpy()))

    def dma(self, tokens: torch.Tensor, reference_tokens: torch.Tensor) -> tuple[None, torch.Tensor]:
        """(None, the DMA diagonal (B, heads, N)) of ``tokens`` against ``reference_tokens``, as
        :meth:`MicronBERT.dma`'s second output."""
        diagonal = self.recognizer.compare(tokens.numpy(), reference_tokens.numpy())["dma_diagonal"]
        return None, torch.from_numpy(diagonal)


def _softmax(logits: np.ndarray) -> np.ndarray:
    shifted = np.exp(logits - logits.max())
    return shifted / shifted.sum()


def describe(report: ExportReport) -> str:
    """One paragraph for the command line: files, precision, parity figures."""
    p = report.parity
    return (f"wrote {report.folder} ({', '.join(report.files.values())}, {SIDECAR}); "
            f"{'int8 encoder linears (' + str(report.quantised_layers) + ' layers)' if report.int8 else 'float32'}, "
            f"opset {report.opset}, {report.seconds:.0f} s. Parity on {p.pairs} held-out synthetic pairs: "
            f"{p.same_class}/{p.pairs} same class, logits {p.logits:.2g} (≤ {p.tolerance.logits:g}), change maps "
            f"{max(p.change, p.relative_change, p.spotter_change):.2g} (≤ {p.tolerance.change:g})")
