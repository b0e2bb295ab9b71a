"""Sequence-family baselines, written on torch alone from the layer tables of docs/BASELINES.md.

- ``elrcn-se`` / ``elrcn-te``: ELRCN (Khor et al., FG 2018). A VGG-16 frame CNN encodes every flow image of a
  ``flow_sequence`` (B, T, C, H, W) into its 4096-d fc7 output; an LSTM of 3000 units reads the T vectors, its
  last state goes through Dense 128 (ReLU) to the classes. Spatial enrichment (SE) stacks all channels into one
  CNN (flow u, v, magnitude ⊕ strain: 4 channels); temporal enrichment (TE) gives the flow channels and every other
  channel (strain, replicated to three) a VGG-16 each and concatenates their fc7 features per frame. Training has
  two stages (:meth:`ELRCN.spatial_loss` frame-wise, then :meth:`ELRCN.extract_features` and
  :meth:`ELRCN.classify_features`); :func:`load_pretrained_vgg16` loads a user's VGG-16 / VGG-Face file.
- ``stcnn``: MicroExpSTCNN (Reddy et al., IJCNN 2019): Conv3D 32@3×3×15 on a grey ``sequence`` (B, 1, T, 64, 64),
  max-pool 3×3×3, Dense 128, classes.
- ``fusenet`` / ``fusenet-late``: MicroExpFuseNet with intermediate or late fusion of the eye and nose–mouth
  ``regions`` clips (B, 1, T, 32, 32).
- ``atnet``: ATNet (Peng et al., ACII 2019): pre-activation ResNet-10 on the grey apex (B, 1, 224, 224) and two
  512-unit LSTMs on 64 steps of per-cell polar flow, each L2-normalised, concatenated, dropout, FC. Its temporal
  input is the proposed ``flow_cells`` kind (B, T, C, G, G): per step, the mean flow direction and magnitude in each
  cell of a G×G grid (G = 8, C = 2: 128 values), consecutive-frame flow from onset to offset, right-aligned and
  zero-padded to T = 64 steps at the front (see :func:`atnet_card`).

Recurrent layers use one bias per gate (:class:`SingleBiasLSTM`), the layout of Keras (ELRCN) and Caffe (ATNet),
so that parameter counts equal the published ones. Weights start as the originals did: Keras' Glorot-uniform
kernels and zero biases (ELRCN, STCNN, FuseNet; STCNN's Dense 128 N(0, 0.05) as its "normal" init; Keras' LSTM
with an orthogonal recurrent kernel and forget-gate bias 1), Caffe's MSRA convolutions and N(0, 0.1) LSTMs (ATNet).

[PROPOSED] choices (also in the cards' notes):

- ELRCN's LSTM head ends in softmax (cross-entropy on logits) instead of the code's sigmoid (docs/BASELINES.md);
  SE feeds fc7 features to the LSTM, as its dimensions imply (the released SE/TE extraction was broken);
  VGG-Face weights, when supplied, fill the extra input channels of conv1_1 with the mean of the RGB filters.
- ELRCN-TE streams: the channels among (u, v, magnitude) form one stream; every other channel is a stream of its
  own, replicated to three channels (as the code did for strain).
- STCNN/FuseNet: below T = 18 frames the temporal kernel depth is max(1, round(T / 6)) (docs/BASELINES.md);
  FuseNet's Dense layers get a ReLU (the code's are linear; ``dense_relu=False`` restores them).
- ATNet: the ``flow_cells`` input kind; the stem max-pool rounds up as Caffe does; LSTM biases start at zero;
  its solver's 2500 iterations (step every 500) become 100 epochs (step every 20) as docs/BASELINES.md equates
  them, and its per-class oversampling becomes class-weighted cross-entropy.
- Recipes: ELRCN's epochs count per stage; every ``default`` recipe is an untuned cheap CPU budget.
"""
from __future__ import annotations

import math
import pickle
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType

import torch
import torch.nn.functional as F
from safetensors import SafetensorError
from safetensors.torch import load_file
from torch import nn

from micronbert.baselines.card import NetworkCard, Recipe
from micronbert.data.inputs.spec import InputSpec

VGG16_DEPTHS = (2, 2, 3, 3, 3)
VGG16_WIDTHS = (64, 128, 256, 512, 512)
FLOW_STREAM_CHANNELS = ("u", "v", "magnitude")
ELRCN_ENRICHMENTS = ("spatial", "temporal")
STCNN_FILTERS = 32
STCNN_KERNEL_DEPTH = 15
STCNN_FULL_KERNEL_FROM = 18
FUSENET_FUSIONS = ("intermediate", "late")
RESNET10_WIDTHS = (64, 128, 256, 512)
ATNET_LSTM_UNITS = 512


def _check_shape(network: str, tensor: torch.Tensor, expected: tuple[int | None, ...], axes: str) -> None:
    """Raise ``ValueError`` naming the expected shape unless ``tensor`` has it (``None``: any size, shown as B)."""
    if tensor.ndim != len(expected) or any(e is not None and s != e for s, e in zip(tensor.shape, expected)):
        shown = ", ".join("B" if size is None else str(size) for size in expected)
        raise ValueError(f"{network} expects {axes} of shape ({shown}), got {tuple(tensor.shape)}")


def _keras_init(module: nn.Module) -> None:
    """Keras 2 defaults: Glorot-uniform kernels, zero biases."""
    for layer in module.modules():
        if isinstance(layer, (nn.Linear, nn.Conv2d, nn.Conv3d)):
            nn.init.xavier_uniform_(layer.weight)
            nn.init.zeros_(layer.bias)


def count_parameters(module: nn.Module) -> int:
    """The number of trainable values in ``module``."""
    return sum(parameter.numel() for parameter in module.parameters())


# ------------------------------------------------------------------------------------------------ recurrent layer
class SingleBiasLSTM(nn.Module):
    """An LSTM layer with one bias per gate (Keras and Caffe; torch's ``nn.LSTM`` has two).

    forward: (B, T, input_size) → every step's hidden state (B, T, hidden_size), starting from zeros. Gates in the
    order input, forget, cell, output. ``hard_sigmoid``: Keras' clip(0.2·x + 0.5, 0, 1) as the gate activation.
    """

    def __init__(self, input_size: int, hidden_size: int, hard_sigmoid: bool = False) -> None:
        super().__init__()
        self.hidden_size = hidden_size
        self.hard_sigmoid = hard_sigmoid
        self.weight_ih = nn.Parameter(torch.empty(4 * hidden_size, input_size))
        self.weight_hh = nn.Parameter(torch.empty(4 * hidden_size, hidden_size))
        self.bias = nn.Parameter(torch.zeros(4 * hidden_size))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Keras 2 defaults: Glorot-uniform input kernel, orthogonal recurrent kernel, forget-gate bias 1."""
        nn.init.xavier_uniform_(self.weight_ih)
        nn.init.orthogonal_(self.weight_hh)
        with torch.no_grad():
            self.bias.zero_()
            self.bias[self.hidden_size:2 * self.hidden_size] = 1.0

    def _gate(self, x: torch.Tensor) -> torch.Tensor:
        return torch.clamp(0.2 * x + 0.5, 0.0, 1.0) if self.hard_sigmoid else torch.sigmoid(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        projected = F.linear(x, self.weight_ih, self.bias)
        hidden = x.new_zeros(x.shape[0], self.hidden_size)
        cell = x.new_zeros(x.shape[0], self.hidden_size)
        outputs = []
        for step in range(x.shape[1]):
            gates = projected[:, step] + hidden @ self.weight_hh.t()
            input_gate, forget_gate, candidate, output_gate = gates.chunk(4, dim=1)
            cell = self._gate(forget_gate) * cell + self._gate(input_gate) * torch.tanh(candidate)
            hidden = self._gate(output_gate) * torch.tanh(cell)
            outputs.append(hidden)
        return torch.stack(outputs, dim=1)


# ------------------------------------------------------------------------------------------------ ELRCN
class VGG16(nn.Module):
    """VGG-16 frame CNN: conv1_1 … conv5_3 (3×3, padding 1, ReLU; 2×2 max-pool after each block), fc6 and fc7
    (ReLU, dropout), and ``head``, the frame-wise classifier of ELRCN's first training stage.

    input_size: side of the square input (at least 32; fc6 reads 512 × (input_size // 32)² values).
    """

    def __init__(self, in_channels: int, input_size: int, num_classes: int,
                 widths: tuple[int, ...] = VGG16_WIDTHS, fc_width: int = 4096, dropout: float = 0.5) -> None:
        super().__init__()
        if input_size < 32:
            raise ValueError(f"VGG-16 needs an input of at least 32×32 (five 2×2 poolings), got {input_size}")
        if len(widths) != len(VGG16_DEPTHS):
            raise ValueError(f"VGG-16 needs {len(VGG16_DEPTHS)} block widths, got {widths}")
        self.in_channels = in_channels
        self.blocks = tuple(tuple(f"conv{block}_{layer}" for layer in range(1, depth + 1))
                            for block, depth in enumerate(VGG16_DEPTHS, start=1))
        channels = in_channels
        for names, width in zip(self.blocks, widths):
            for name in names:
                self.add_module(name, nn.Conv2d(channels, width, kernel_size=3, padding=1))
                channels = width
        side = input_size // 32
        self.fc6 = nn.Linear(channels * side * side, fc_width)
        self.fc7 = nn.Linear(fc_width, fc_width)
        self.head = nn.Linear(fc_width, num_classes)
        self.dropout = nn.Dropout(dropout)
        _keras_init(self)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """fc7's output after its dropout (the feature ELRCN's LSTM reads), (N, fc_width)."""
        for names in self.blocks:
            for name in names:
                x = F.relu(getattr(self, name)(x))
            x = F.max_pool2d(x, 2)
        x = self.dropout(F.relu(self.fc6(x.flatten(1))))
        return self.dropout(F.relu(self.fc7(x)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


@dataclass(frozen=True)
class ELRCNConfig:
    """Widths of ELRCN; the defaults are the published layout (docs/BASELINES.md). Smaller widths give a CPU-sized
    model with the same structure (not the published network)."""

    conv_widths: tuple[int, ...] = VGG16_WIDTHS
    fc_width: int = 4096
    lstm_units: int = 3000
    hidden_units: int = 128
    dropout: float = 0.5
    hard_sigmoid: bool = True


def elrcn_streams(channels: Sequence[str], enrichment: str) -> tuple[tuple[int, ...], ...]:
    """Input channel indices of each VGG-16 stream: all channels in one (``spatial``), or the flow channels
    (u, v, magnitude) in one and every other channel, replicated to three, in its own (``temporal``)."""
    if enrichment not in ELRCN_ENRICHMENTS:
        raise ValueError(f"ELRCN enrichment must be one of {ELRCN_ENRICHMENTS}, got {enrichment!r}")
    if enrichment == "spatial":
        return (tuple(range(len(channels))),)
    flow = tuple(index for index, name in enumerate(channels) if name in FLOW_STREAM_CHANNELS)
    others = tuple((index,) * 3 for index, name in enumerate(channels) if name not in FLOW_STREAM_CHANNELS)
    streams = ((flow,) if flow else ()) + others
    if len(streams) < 2:
        raise ValueError(f"ELRCN-TE needs at least two feature streams (flow channels {FLOW_STREAM_CHANNELS} and "
                         f"e.g. strain), got channels {tuple(channels)}")
    return streams


class ELRCN(nn.Module):
    """ELRCN on a ``flow_sequence`` (B, T, C, H, W): VGG-16 stream(s) per frame, LSTM, Dense 128, classes.

    Stage 1 trains the CNNs frame-wise (:meth:`spatial_loss`, :meth:`spatial_parameters`); stage 2 trains the
    recurrent classifier (:meth:`temporal_parameters`) on :meth:`extract_features` through
    :meth:`classify_features`. ``forward`` chains both and returns logits (B, num_classes).
    """

    def __init__(self, num_classes: int, channels: Sequence[str], size: int, length: int,
                 enrichment: str = "spatial", config: ELRCNConfig | None = None) -> None:
        super().__init__()
        config = config or ELRCNConfig()
        if num_classes < 1 or length < 1:
            raise ValueError(f"ELRCN needs num_classes >= 1 and length >= 1, got {num_classes}, {length}")
        self.input_shape = (length, len(channels), size, size)
        self.streams_channels = elrcn_streams(channels, enrichment)
        self.streams = nn.ModuleList(
            VGG16(len(indices), size, num_classes, config.conv_widths, config.fc_width, config.dropout)
            for indices in self.streams_channels
        )
        self.feature_size = len(self.streams) * config.fc_width
        self.lstm = SingleBiasLSTM(self.feature_size, config.lstm_units, hard_sigmoid=config.hard_sigmoid)
        self.hidden = nn.Linear(config.lstm_units, config.hidden_units)
        self.classifier = nn.Linear(config.hidden_units, num_classes)
        _keras_init(self.hidden)
        _keras_init(self.classifier)

    def _frames(self, x: torch.Tensor) -> torch.Tensor:
        _check_shape("ELRCN", x, (None, *self.input_shape), "a flow sequence (B, T, C, H, W)")
        return x.flatten(0, 1)

    def frame_logits(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """Each stream's frame-wise class logits, (B·T, num_classes) per stream (stage 1)."""
        frames = self._frames(x)
        return tuple(stream(frames[:, list(indices)]) for stream, indices in zip(self.streams, self.streams_channels))

    def spatial_loss(self, x: torch.Tensor, labels: torch.Tensor, weight: torch.Tensor | None = None) -> torch.Tensor:
        """Stage 1: cross-entropy of every frame against its clip's label, summed over the streams (the streams
        share no parameters, so this trains each as the original trained it, separately)."""
        targets = labels.repeat_interleave(self.input_shape[0])
        return sum(F.cross_entropy(logits, targets, weight=weight) for logits in self.frame_logits(x))

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Per-frame fc7 features of the streams, concatenated: (B, T, feature_size)."""
        frames = self._frames(x)
        parts = [stream.features(frames[:, list(indices)])
                 for stream, indices in zip(self.streams, self.streams_channels)]
        return torch.cat(parts, dim=1).unflatten(0, (x.shape[0], x.shape[1]))

    @torch.no_grad()
    def extract_features(self, x: torch.Tensor) -> torch.Tensor:
        """Stage 2's input: :meth:`features` with the CNNs in evaluation mode (no dropout), without gradients."""
        modes = [stream.training for stream in self.streams]
        self.streams.eval()
        try:
            return self.features(x)
        finally:
            for stream, mode in zip(self.streams, modes):
                stream.train(mode)

    def classify_features(self, features: torch.Tensor) -> torch.Tensor:
        """Stage 2: logits (B, num_classes) from per-frame features (B, T, feature_size), the LSTM's last state."""
        _check_shape("ELRCN's recurrent classifier", features, (None, self.input_shape[0], self.feature_size),
                     "features (B, T, D)")
        last = self.lstm(features)[:, -1]
        return self.classifier(F.relu(self.hidden(last)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classify_features(self.features(x))

    def spatial_parameters(self) -> Iterator[nn.Parameter]:
        """The parameters stage 1 trains: the VGG-16 streams with their frame-wise heads."""
        return self.streams.parameters()

    def temporal_parameters(self) -> Iterator[nn.Parameter]:
        """The parameters stage 2 trains: LSTM, Dense 128 and the classifier."""
        for module in (self.lstm, self.hidden, self.classifier):
            yield from module.parameters()


def _build_elrcn(num_classes: int, inputs: tuple[InputSpec, ...], enrichment: str,
                 config: ELRCNConfig | None) -> ELRCN:
    if len(inputs) != 1 or inputs[0].kind != "flow_sequence":
        raise ValueError(f"ELRCN reads one flow_sequence input, got {[spec.kind for spec in inputs]}")
    spec = inputs[0]
    return ELRCN(num_classes, spec.channels, spec.size, spec.length, enrichment, config)


def build_elrcn_se(num_classes: int, inputs: tuple[InputSpec, ...], config: ELRCNConfig | None = None) -> ELRCN:
    """ELRCN-SE for ``inputs`` (one ``flow_sequence``): all channels stacked into one VGG-16."""
    return _build_elrcn(num_classes, inputs, "spatial", config)


def build_elrcn_te(num_classes: int, inputs: tuple[InputSpec, ...], config: ELRCNConfig | None = None) -> ELRCN:
    """ELRCN-TE for ``inputs`` (one ``flow_sequence``): one VGG-16 per feature stream, fc7 features concatenated."""
    return _build_elrcn(num_classes, inputs, "temporal", config)


# ------------------------------------------------------------------------------------------------ VGG-16 weights
TORCHVISION_VGG16_NAMES = {
    **{f"features.{index}": name for index, name in zip(
        (0, 2, 5, 7, 10, 12, 14, 17, 19, 21, 24, 26, 28),
        ("conv1_1", "conv1_2", "conv2_1", "conv2_2", "conv3_1", "conv3_2", "conv3_3",
         "conv4_1", "conv4_2", "conv4_3", "conv5_1", "conv5_2", "conv5_3"))},
    "classifier.0": "fc6",
    "classifier.3": "fc7",
}
_CAFFE_STYLE_KEY = re.compile(r"(?:^|\.)(conv\d_\d|fc[67])\.(weight|bias)$")
_TORCHVISION_KEY = re.compile(r"(?:^|\.)((?:features|classifier)\.\d+)\.(weight|bias)$")


def _first_line(err: BaseException) -> str:
    return (str(err).strip().splitlines() or [type(err).__name__])[0][:300]


def read_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """The tensors of a ``.safetensors`` file, or of a torch file read with ``weights_only=True`` holding a state
    dict (or a checkpoint dict with a ``state_dict`` entry); anything else raises ``ValueError`` naming the file."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file")
    if path.suffix == ".safetensors":
        try:
            return load_file(str(path))
        except (SafetensorError, OSError, ValueError) as err:
            raise ValueError(f"{path}: not a readable safetensors file ({err})") from err
    try:
        content = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        if "unsupported global" in str(err).lower():
            raise ValueError(f"{path}: refused to load: the file holds objects other than tensors, which could "
                             f"run code; nothing was executed") from err
        raise ValueError(f"{path}: not a readable PyTorch weights file (corrupt or not a torch file)") from err
    except (RuntimeError, EOFError, OSError, ValueError, KeyError, TypeError, AttributeError, ImportError) as err:
        raise ValueError(f"{path}: not a readable PyTorch weights file ({_first_line(err)})") from err
    if isinstance(content, dict) and isinstance(content.get("state_dict"), dict):
        content = content["state_dict"]
    if not isinstance(content, dict):
        raise ValueError(f"{path}: expected a state dict (a mapping of names to tensors), got {type(content).__name__}")
    for key, value in content.items():
        if not isinstance(value, torch.Tensor):
            raise ValueError(f"{path}: entry {key!r} is not a tensor")
    return content


def vgg16_layer_name(key: str) -> str | None:
    """``conv1_1.weight`` … ``fc7.bias`` for a key of a VGG-16 state dict in Caffe-style naming (converted VGG-Face
    files, any prefix) or torchvision's numbering (``features.0.weight``, ``classifier.3.bias``); ``None`` for other
    keys (fc8 / ``classifier.6``: the original replaced that layer by its own head)."""
    key = key.removeprefix("module.")
    caffe = _CAFFE_STYLE_KEY.search(key)
    if caffe:
        return f"{caffe.group(1)}.{caffe.group(2)}"
    numbered = _TORCHVISION_KEY.search(key)
    if numbered and numbered.group(1) in TORCHVISION_VGG16_NAMES:
        return f"{TORCHVISION_VGG16_NAMES[numbered.group(1)]}.{numbered.group(2)}"
    return None


def _fit_to(target: torch.Tensor, value: torch.Tensor, name: str, key: str, path: Path) -> torch.Tensor:
    """``value`` shaped for ``target``: a fc layer stored as a convolution is flattened; conv1_1 filters for three
    input channels fill extra input channels with their mean over RGB ([PROPOSED], docs/BASELINES.md)."""
    if name.startswith("fc") and value.ndim == 4 and value.shape[0] == target.shape[0] \
            and value[0].numel() == target.shape[1]:
        value = value.flatten(1)
    if name == "conv1_1.weight" and value.ndim == 4 and value.shape[1] == 3 and target.shape[1] > 3 \
            and value.shape[0] == target.shape[0] and value.shape[2:] == target.shape[2:]:
        extra = value.mean(dim=1, keepdim=True).expand(-1, target.shape[1] - 3, -1, -1)
        value = torch.cat([value, extra], dim=1)
    if value.shape != target.shape:
        raise ValueError(f"{path}: key {key!r} has shape {tuple(value.shape)}, the model's {name} expects "
                         f"{tuple(target.shape)}")
    return value


def load_pretrained_vgg16(module: VGG16 | ELRCN, path: str | Path) -> None:
    """Load VGG-16 or VGG-Face weights (conv1_1 … fc7) from the user's file ``path`` into ``module``, or into every
    VGG-16 stream of an :class:`ELRCN`; the frame-wise heads keep their own initialisation.

    The file is read by :func:`read_state_dict` (no code is ever unpickled). Keys are matched by
    :func:`vgg16_layer_name`; a missing layer or a shape the module cannot take raises ``ValueError`` naming the
    file and the key.
    """
    path = Path(path)
    found: dict[str, tuple[str, torch.Tensor]] = {}
    for key, value in read_state_dict(path).items():
        name = vgg16_layer_name(key)
        if name is not None:
            found.setdefault(name, (key, value))
    targets = module.streams if isinstance(module, ELRCN) else [module]
    for network in targets:
        state = {}
        for name, target in network.state_dict().items():
            if name.startswith("head."):
                continue
            if name not in found:
                raise ValueError(f"{path}: no key for the VGG-16 layer {name!r} (expected e.g. {name!r} or "
                                 f"torchvision's 'features.N' / 'classifier.N' numbering)")
            key, value = found[name]
            state[name] = _fit_to(target, value.to(target.dtype), name, key, path)
        network.load_state_dict(state, strict=False)


# ------------------------------------------------------------------------------------------------ 3D CNNs
def stcnn_kernel_depth(length: int) -> int:
    """Temporal depth of the 3×3×d kernel: the published 15 from T = 18 frames on, else max(1, round(T / 6))
    ([PROPOSED], docs/BASELINES.md)."""
    return STCNN_KERNEL_DEPTH if length >= STCNN_FULL_KERNEL_FROM else max(1, round(length / 6))


class Conv3DBranch(nn.Module):
    """Conv3D 32@3×3×d (valid), ReLU, max-pool 3×3×3, [ReLU,] dropout, flatten: one clip to one feature vector.

    Input (B, C, T, H, W); ``out_features`` = 32 · ⌊(T−d+1)/3⌋ · ⌊(H−2)/3⌋ · ⌊(W−2)/3⌋.
    """

    def __init__(self, network: str, in_channels: int, size: int, length: int, dropout: float,
                 relu_after_pool: bool = False) -> None:
        super().__init__()
        depth = stcnn_kernel_depth(length)
        pooled = ((length - depth + 1) // 3, (size - 2) // 3, (size - 2) // 3)
        if min(pooled) < 1:
            raise ValueError(f"{network}: a clip of {length} frames of {size}×{size} is too small for the 3×3×{depth} "
                             f"convolution and 3×3×3 pooling (needs T >= {depth + 2} and a side >= 5)")
        self.conv = nn.Conv3d(in_channels, STCNN_FILTERS, kernel_size=(depth, 3, 3))
        self.pool = nn.MaxPool3d(3)
        self.relu_after_pool = relu_after_pool
        self.dropout = nn.Dropout(dropout)
        self.out_features = STCNN_FILTERS * math.prod(pooled)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.pool(F.relu(self.conv(x)))
        if self.relu_after_pool:
            x = F.relu(x)
        return self.dropout(x).flatten(1)


class MicroExpSTCNN(nn.Module):
    """MicroExpSTCNN on a grey clip (B, 1, T, S, S): Conv3D branch, Dense 128 (ReLU), dropout 0.5, classes."""

    def __init__(self, num_classes: int = 3, size: int = 64, length: int = 96, in_channels: int = 1,
                 dropout: float = 0.5) -> None:
        super().__init__()
        self.input_shape = (in_channels, length, size, size)
        self.branch = Conv3DBranch("MicroExpSTCNN", in_channels, size, length, dropout)
        self.dense = nn.Linear(self.branch.out_features, 128)
        self.dropout = nn.Dropout(dropout)
        self.classifier = nn.Linear(128, num_classes)
        _keras_init(self)
        nn.init.normal_(self.dense.weight, std=0.05)

    def forward(self, clip: torch.Tensor) -> torch.Tensor:
        _check_shape("MicroExpSTCNN", clip, (None, *self.input_shape), "a clip (B, C, T, H, W)")
        return self.classifier(self.dropout(F.relu(self.dense(self.branch(clip)))))


def _dense_stack(sizes: Sequence[int], relu: bool, dropout: float) -> nn.Sequential:
    """Dense layers of ``sizes`` (each followed by [ReLU and] dropout)."""
    layers: list[nn.Module] = []
    for width_in, width_out in zip(sizes[:-1], sizes[1:]):
        layers.append(nn.Linear(width_in, width_out))
        if relu:
            layers.append(nn.ReLU())
        layers.append(nn.Dropout(dropout))
    return nn.Sequential(*layers)


class MicroExpFuseNet(nn.Module):
    """MicroExpFuseNet on eye and nose–mouth clips (B, 1, T, S, S) each.

    ``intermediate``: the two Conv3D branches' features are concatenated, then Dense 1024, Dense 128, classes.
    ``late``: each branch has its own Dense 1024, Dense 128; the two 128-d outputs are concatenated into the
    classifier. ``dense_relu``: ReLU after the Dense layers ([PROPOSED]; the code's are linear).
    """

    def __init__(self, num_classes: int = 3, size: int = 32, length: int = 96, fusion: str = "intermediate",
                 in_channels: int = 1, dense_relu: bool = True, dropout: float = 0.5) -> None:
        super().__init__()
        if fusion not in FUSENET_FUSIONS:
            raise ValueError(f"MicroExpFuseNet fusion must be one of {FUSENET_FUSIONS}, got {fusion!r}")
        self.fusion = fusion
        self.input_shape = (in_channels, length, size, size)
        late = fusion == "late"
        self.eyes = Conv3DBranch("MicroExpFuseNet", in_channels, size, length, dropout, relu_after_pool=late)
        self.mouth = Conv3DBranch("MicroExpFuseNet", in_channels, size, length, dropout, relu_after_pool=late)
        features = self.eyes.out_features
        if late:
            self.eyes_dense = _dense_stack((features, 1024, 128), dense_relu, dropout)
            self.mouth_dense = _dense_stack((features, 1024, 128), dense_relu, dropout)
            self.fused = nn.Identity()
        else:
            self.fused = _dense_stack((2 * features, 1024, 128), dense_relu, dropout)
        self.classifier = nn.Linear(2 * 128 if late else 128, num_classes)
        _keras_init(self)

    def forward(self, eyes: torch.Tensor, mouth: torch.Tensor) -> torch.Tensor:
        _check_shape("MicroExpFuseNet", eyes, (None, *self.input_shape), "an eye clip (B, C, T, H, W)")
        _check_shape("MicroExpFuseNet", mouth, (None, *self.input_shape), "a nose-mouth clip (B, C, T, H, W)")
        eyes, mouth = self.eyes(eyes), self.mouth(mouth)
        if self.fusion == "late":
            eyes, mouth = self.eyes_dense(eyes), self.mouth_dense(mouth)
        return self.classifier(self.fused(torch.cat([eyes, mouth], dim=1)))


def _sequence_spec(network: str, inputs: tuple[InputSpec, ...], kinds: tuple[str, ...]) -> InputSpec:
    if tuple(spec.kind for spec in inputs) != kinds:
        raise ValueError(f"{network} reads inputs of kinds {kinds}, got {tuple(spec.kind for spec in inputs)}")
    first = inputs[0]
    if any((spec.size, spec.length, spec.channels) != (first.size, first.length, first.channels) for spec in inputs):
        raise ValueError(f"{network}: its inputs must share size, length and channels, got {inputs}")
    return first


def build_stcnn(num_classes: int, inputs: tuple[InputSpec, ...]) -> MicroExpSTCNN:
    """MicroExpSTCNN for one ``sequence`` input."""
    spec = _sequence_spec("MicroExpSTCNN", inputs, ("sequence",))
    return MicroExpSTCNN(num_classes, spec.size, spec.length, len(spec.channels))


def build_fusenet(num_classes: int, inputs: tuple[InputSpec, ...], fusion: str = "intermediate",
                  dense_relu: bool = True) -> MicroExpFuseNet:
    """MicroExpFuseNet for two ``regions`` inputs, eyes then mouth."""
    spec = _sequence_spec("MicroExpFuseNet", inputs, ("regions", "regions"))
    if (inputs[0].region, inputs[1].region) != ("eyes", "mouth"):
        raise ValueError(f"MicroExpFuseNet reads the eyes region then the mouth region, got "
                         f"{(inputs[0].region, inputs[1].region)}")
    return MicroExpFuseNet(num_classes, spec.size, spec.length, fusion, len(spec.channels), dense_relu)


def build_fusenet_late(num_classes: int, inputs: tuple[InputSpec, ...]) -> MicroExpFuseNet:
    """MicroExpFuseNet with late fusion."""
    return build_fusenet(num_classes, inputs, fusion="late")


# ------------------------------------------------------------------------------------------------ ATNet
class PreActBlock(nn.Module):
    """Pre-activation residual stage of ResNet-10 (docs/BASELINES.md): BN, ReLU on the input; conv 3×3/2; BN, ReLU;
    conv 3×3; plus a 1×1/2 projection of the pre-activated input."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.norm_in = nn.BatchNorm2d(in_channels)
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, stride=2, padding=1, bias=False)
        self.norm_mid = nn.BatchNorm2d(out_channels)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, padding=1, bias=False)
        self.shortcut = nn.Conv2d(in_channels, out_channels, 1, stride=2, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        activated = F.relu(self.norm_in(x))
        residual = self.conv2(F.relu(self.norm_mid(self.conv1(activated))))
        return residual + self.shortcut(activated)


class PreActResNet10(nn.Module):
    """Pre-activation ResNet-10 without micro-attention (ATNet's spatial branch, docs/BASELINES.md).

    BN on the raw input; conv 7×7/2 64, BN, ReLU, max-pool 3×3/2; res64 (two 3×3 convs plus identity); res128,
    res256, res512 (:class:`PreActBlock`); BN, ReLU, global average pool → (B, 512). Convolutions have no bias.
    """

    def __init__(self, in_channels: int = 1) -> None:
        super().__init__()
        self.input_norm = nn.BatchNorm2d(in_channels)
        self.stem = nn.Conv2d(in_channels, RESNET10_WIDTHS[0], 7, stride=2, padding=3, bias=False)
        self.stem_norm = nn.BatchNorm2d(RESNET10_WIDTHS[0])
        self.pool = nn.MaxPool2d(3, stride=2, ceil_mode=True)
        self.res64_conv1 = nn.Conv2d(RESNET10_WIDTHS[0], RESNET10_WIDTHS[0], 3, padding=1, bias=False)
        self.res64_norm = nn.BatchNorm2d(RESNET10_WIDTHS[0])
        self.res64_conv2 = nn.Conv2d(RESNET10_WIDTHS[0], RESNET10_WIDTHS[0], 3, padding=1, bias=False)
        self.stages = nn.ModuleList(PreActBlock(c_in, c_out)
                                    for c_in, c_out in zip(RESNET10_WIDTHS[:-1], RESNET10_WIDTHS[1:]))
        self.tail_norm = nn.BatchNorm2d(RESNET10_WIDTHS[-1])
        self.out_features = RESNET10_WIDTHS[-1]
        for layer in self.modules():
            if isinstance(layer, nn.Conv2d):
                nn.init.kaiming_normal_(layer.weight, nonlinearity="relu")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.pool(F.relu(self.stem_norm(self.stem(self.input_norm(x)))))
        x = x + self.res64_conv2(F.relu(self.res64_norm(self.res64_conv1(x))))
        for stage in self.stages:
            x = stage(x)
        return F.relu(self.tail_norm(x)).mean(dim=(2, 3))


class ATNet(nn.Module):
    """ATNet: the apex (B, C, S, S) through :class:`PreActResNet10`, the ``flow_cells`` sequence (B, T, Cc, G, G)
    through two 512-unit LSTMs averaged over all T outputs (padded steps included, as published); both 512-d
    vectors L2-normalised, concatenated, dropout 0.5, FC to the classes."""

    def __init__(self, num_classes: int = 3, apex_size: int = 224, apex_channels: int = 1, steps: int = 64,
                 cell_channels: int = 2, grid: int = 8, dropout: float = 0.5) -> None:
        super().__init__()
        self.apex_shape = (apex_channels, apex_size, apex_size)
        self.cells_shape = (steps, cell_channels, grid, grid)
        self.spatial = PreActResNet10(apex_channels)
        self.lstm1 = SingleBiasLSTM(cell_channels * grid * grid, ATNET_LSTM_UNITS)
        self.lstm2 = SingleBiasLSTM(ATNET_LSTM_UNITS, ATNET_LSTM_UNITS)
        for lstm in (self.lstm1, self.lstm2):
            nn.init.normal_(lstm.weight_ih, std=0.1)
            nn.init.normal_(lstm.weight_hh, std=0.1)
            nn.init.zeros_(lstm.bias)
        self.dropout = nn.Dropout(dropout)
        self.classifier = nn.Linear(self.spatial.out_features + ATNET_LSTM_UNITS, num_classes)

    def forward(self, apex: torch.Tensor, cells: torch.Tensor) -> torch.Tensor:
        _check_shape("ATNet", apex, (None, *self.apex_shape), "an apex image (B, C, H, W)")
        _check_shape("ATNet", cells, (None, *self.cells_shape), "flow cells (B, T, C, G, G)")
        spatial = F.normalize(self.spatial(apex), dim=1)
        temporal = F.normalize(self.lstm2(self.lstm1(cells.flatten(2))).mean(dim=1), dim=1)
        return self.classifier(self.dropout(torch.cat([spatial, temporal], dim=1)))


def build_atnet(num_classes: int, inputs: tuple[InputSpec, ...]) -> ATNet:
    """ATNet for an ``apex`` input and a ``flow_cells`` input (the proposed kind: size = grid side G, length = T)."""
    if tuple(spec.kind for spec in inputs) != ("apex", "flow_cells"):
        raise ValueError(f"ATNet reads an apex and a flow_cells input, got {tuple(spec.kind for spec in inputs)}")
    apex, cells = inputs
    return ATNet(num_classes, apex.size, len(apex.channels), cells.length, len(cells.channels), cells.size)


# ------------------------------------------------------------------------------------------------ cards
ELRCN_PUBLISHED = Recipe(
    optimiser="adam", lr=1e-5, epochs=100, batch_size=1, decay=1e-6, class_weighted=False,
    source="ELRCN official code (README examples): Adam lr 1e-5 with Keras' decay 1e-6 (inverse-time per update) "
           "for both stages, 100 spatial + 100 temporal epochs (epochs = per stage), batch 1; the early stopping on "
           "the spatial fit's training loss is not expressed by Recipe",
)
ELRCN_DEFAULT = Recipe(
    optimiser="adam", lr=1e-4, epochs=10, batch_size=8,
    source="[PROPOSED] cheap CPU budget, untuned: Adam 1e-4, 10 epochs per stage, batch 8, class-weighted",
)
ELRCN_NOTES = (
    "Two-stage training as in the official code: stage 1 fine-tunes the VGG-16 stream(s) frame-wise, every frame "
    "carrying its clip's label (spatial_loss, spatial_parameters); stage 2 trains the LSTM on fc7 features "
    "extracted in evaluation mode (extract_features, classify_features, temporal_parameters); recipe epochs are per "
    "stage. Keras LSTM layout (one bias, hard-sigmoid gates, forget bias 1). [PROPOSED] softmax output instead of "
    "the code's sigmoid; fc7 features for the SE/TE LSTM as the dimensions imply (the released extraction was "
    "broken); VGG-Face weights come only from a user's file (load_pretrained_vgg16), extra conv1_1 input "
    "channels from the mean of the RGB filters; trained from scratch otherwise. Input: the input layer's "
    "flow_sequence, each channel (u, v, magnitude, strain) min-max scaled to 0–255 over the clip (the code made "
    "u, v, magnitude ·16+128 clipped to 0–255), no mean subtraction; 9 steps = the flows between consecutive "
    "frames of the clip resampled to 10 frames (linear interpolation standing in for TIM)."
)
ELRCN_SE_CARD = NetworkCard(
    name="elrcn-se",
    build=build_elrcn_se,
    inputs=(InputSpec("flow_sequence", 224, ("u", "v", "magnitude", "strain"), length=9),),
    recipes=MappingProxyType({"published": ELRCN_PUBLISHED, "default": ELRCN_DEFAULT}),
    parameters=219_821_926,
    options=ELRCNConfig,
    load_weights=load_pretrained_vgg16,
    pretrained_from="VGG-Face (VGG_Face_Deep_16; the released SE code built its 4-channel VGG-16 without weights)",
    notes="ELRCN with spatial enrichment: the 4 channels stacked into one VGG-16. " + ELRCN_NOTES,
)
ELRCN_TE_CARD = NetworkCard(
    name="elrcn-te",
    build=build_elrcn_te,
    inputs=(InputSpec("flow_sequence", 224, ("u", "v", "magnitude", "strain"), length=9),),
    recipes=MappingProxyType({"published": ELRCN_PUBLISHED, "default": ELRCN_DEFAULT}),
    parameters=403_246_185,
    options=ELRCNConfig,
    load_weights=load_pretrained_vgg16,
    pretrained_from="VGG-Face (VGG_Face_Deep_16) for each stream",
    notes="ELRCN with temporal enrichment: one VGG-16 on (u, v, magnitude), one on strain replicated to three "
          "channels ([PROPOSED] rule: every channel outside u, v, magnitude is its own stream), fc7 features "
          "concatenated per frame (8192-d). " + ELRCN_NOTES,
)

REDDY_PUBLISHED = Recipe(
    optimiser="sgd", lr=0.01, momentum=0.0, epochs=100, batch_size=8, class_weighted=False,
    source="Reddy et al. IJCNN 2019 §IV-B: SGD with Keras defaults (lr 0.01, no momentum), 100 epochs, batch 8 "
           "(the official code uses batch 16)",
)
REDDY_DEFAULT = Recipe(
    optimiser="sgd", lr=0.01, momentum=0.9, epochs=40, batch_size=16,
    source="[PROPOSED] docs/BASELINES.md's SGD 0.01 with momentum 0.9, cut to 40 epochs for a CPU budget, batch 16, "
           "class-weighted; untuned",
)
REDDY_NOTES = (
    "Last-epoch reporting (the original checkpointed on the test accuracy). Input: grey frames, normalised by "
    "subtracting the global mean and dividing by the global maximum as in the code (input_scaling mean-max: the "
    "statistics of each fold's training samples, where the code took the whole dataset's). [PROPOSED] "
    "below T = 18 frames the temporal kernel depth is max(1, round(T / 6)) (docs/BASELINES.md); for LOSO on "
    "CASME II / SAMM / the composite resample the onset–offset clip to T = 32 or 18 instead of the published 96."
)
STCNN_CARD = NetworkCard(
    name="stcnn",
    build=build_stcnn,
    inputs=(InputSpec("sequence", 64, ("grey",), length=96),),
    recipes=MappingProxyType({"published": REDDY_PUBLISHED, "default": REDDY_DEFAULT}),
    parameters=44_241_667,
    input_scaling="mean-max",
    notes="MicroExpSTCNN: Conv3D 32@3×3×15, max-pool 3×3×3, dropout, Dense 128 (ReLU, N(0, 0.05) init), dropout, "
          "classes; 1,643,267 parameters at the SMIC setting of 18 frames. " + REDDY_NOTES,
    aliases=("microexpstcnn",),
)
FUSENET_INPUTS = (InputSpec("regions", 32, ("grey",), length=96, region="eyes"),
                  InputSpec("regions", 32, ("grey",), length=96, region="mouth"))
FUSENET_NOTES = (
    "[PROPOSED] ReLU after the Dense layers (the code's are linear; MicroExpFuseNet(dense_relu=False) restores "
    "them); region crops from 68 landmarks as in the code (eyes: rows y19…y1, columns x1…x15; nose–mouth: rows "
    "y2…y6, columns x2…x14), 32×32 grey. " + REDDY_NOTES
)
FUSENET_CARD = NetworkCard(
    name="fusenet",
    build=build_fusenet,
    inputs=FUSENET_INPUTS,
    recipes=MappingProxyType({"published": REDDY_PUBLISHED, "default": REDDY_DEFAULT}),
    parameters=177_088_515,
    input_scaling="mean-max",
    notes="MicroExpFuseNet, intermediate fusion: the eye and nose–mouth Conv3D features concatenated (172,800), "
          "Dense 1024, Dense 128, classes. " + FUSENET_NOTES,
    aliases=("microexpfusenet", "fusenet-intermediate"),
)
FUSENET_LATE_CARD = NetworkCard(
    name="fusenet-late",
    build=build_fusenet_late,
    inputs=FUSENET_INPUTS,
    recipes=MappingProxyType({"published": REDDY_PUBLISHED, "default": REDDY_DEFAULT}),
    parameters=177_221_123,
    input_scaling="mean-max",
    notes="MicroExpFuseNet, late fusion: per region Conv3D, ReLU, Dense 1024, Dense 128; the two 128-d outputs "
          "concatenated into the classifier. " + FUSENET_NOTES,
    aliases=("microexpfusenet-late",),
)

ATNET_PUBLISHED = Recipe(
    optimiser="sgd", lr=0.01, momentum=0.9, weight_decay=5e-6, epochs=100, batch_size=16, lr_steps=(20, 40, 60, 80),
    lr_gamma=0.1, class_weighted=True,
    source="ATNet official solver: SGD momentum 0.9, lr 0.01 ×0.1 every 500 iterations, 2500 iterations at batch "
           "16, weight decay 5e-6, as epochs with docs/BASELINES.md's equivalence (≈ 100 epochs of a composite "
           "training fold, a step every 20); the original oversampled each class to the largest, here "
           "class-weighted cross-entropy",
)
ATNET_DEFAULT = Recipe(
    optimiser="sgd", lr=0.01, momentum=0.9, weight_decay=5e-6, epochs=30, batch_size=16, lr_steps=(20,),
    source="[PROPOSED] cheap CPU budget, untuned: the published solver cut to 30 epochs, one step at 20",
)
def atnet_card() -> NetworkCard:
    """ATNet's card. Its temporal input is the proposed InputSpec kind ``flow_cells`` (size = grid side 8, channels
    (angle, magnitude), length = 64 steps); until :mod:`micronbert.data.inputs.spec` knows that kind this raises
    the spec's ``ValueError``."""
    return NetworkCard(
        name="atnet",
        build=build_atnet,
        inputs=(InputSpec("apex", 224, ("grey",)), InputSpec("flow_cells", 8, ("angle", "magnitude"), length=64)),
        recipes=MappingProxyType({"published": ATNET_PUBLISHED, "default": ATNET_DEFAULT}),
        parameters=8_312_773,
        pretrained_from="ResNet-10 pre-trained on facial-expression data (facia_expression_iter_50000.caffemodel, "
                        "not released); micronbert trains from scratch",
        notes="ATNet: pre-activation ResNet-10 (no micro-attention) on the grey apex, L2-normalised; LSTM 512 → "
              "LSTM 512 (Caffe layout, one bias, N(0, 0.1) weights) over all 64 steps, mean over the outputs "
              "(padded steps included, as published), L2-normalised; concat, dropout 0.5, FC. [PROPOSED] temporal "
              "features: 8×8 cells of the aligned face, consecutive-frame flow from onset to offset, per cell the "
              "angle of the mean flow vector and the mean magnitude, at most 64 steps (the last 64 of a longer "
              "clip), right-aligned and zero-padded at the front (input kind flow_cells); LSTM biases start at "
              "zero; the stem max-pool rounds up as in Caffe; augmentation off, as the published data layer in "
              "effect ran; trained from scratch (the facial-expression weights were never released).",
        aliases=("apex-time-network",),
    )


SEQUENCE_CARDS = (ELRCN_SE_CARD, ELRCN_TE_CARD, STCNN_CARD, FUSENET_CARD, FUSENET_LATE_CARD)
