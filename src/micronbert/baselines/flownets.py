"""The flow family of recognition networks, written from the layer tables of docs/BASELINES.md,
each with its :class:`~micronbert.baselines.card.NetworkCard`.

- ``ststnet``: STSTNet (Liong et al., FG 2019) on (u, v, strain) at 28×28 (:mod:`micronbert.baselines.ststnet`).
- ``offapexnet``: OFF-ApexNet (Gan, Liong et al., SPIC 2019): one stream for u and one for v at 28×28; each
  conv 5×5×6 (pad 2) → max 2×2 → conv 5×5×16 (pad 2) → max 2×2 (7×7×16 = 784); concat 1,568 → FC 1024, ReLU,
  dropout 0.5 → FC 1024, ReLU, dropout 0.5 → FC. The two streams run as one two-group convolution (group g sees
  only channel g: exactly two independent streams, in one call).
- ``dual-inception``: Dual-Inception (Zhou, Mao, Xue, FG 2019): one Inception stream each for u and v at 28×28;
  block = four concatenated paths (1×1 → 5×5), (1×1 → 3×3), (max 3×3/1 → 1×1), (1×1), then max 2×2; block 1
  1→6 (24 channels out), block 2 24→16 (64 out), 7×7×64 = 3,136 per stream; concat 6,272 → FC 1024, ReLU → FC.
- ``sssn`` / ``dssn`` / ``dssn-add`` / ``dssn-cat``: single- and dual-stream shallow networks (Khor, See, Liong,
  Phan, Lin, ICIP 2019), AlexNet conv1–conv2 per stream at 227×227: conv 96 × 11×11/4 → ReLU → max 3/2 → LRN →
  conv 256 × 5×5 (pad 2, 2 groups) → ReLU → max 3/2 → LRN → zero-pad 1 (256×15×15 = 57,600); SSSN: flatten →
  dropout 0.5 → FC; DSSN: the two maps merged by element-wise product (the official release), sum, or
  concatenation of the flattened maps (the authors' later code) → dropout 0.5 → FC (He-normal initialisation).
  The official in-network normalisation (subtract 123.68, 116.779, 103.939 per channel, divide by 255) is kept.
  The original started from ImageNet AlexNet conv1–2 weights; micronbert trains from scratch by default and
  loads them from a user's file with :func:`load_pretrained_alexnet`.

Inputs are the flow images of the input layer (channels scaled to 0–255), at the published size; every network
also builds at a smaller ``InputSpec.resized`` size (only the number of features the first FC reads changes) down
to a stated minimum (4 px for OFF-ApexNet and Dual-Inception, 35 px for the AlexNet streams, whose 11×11/4
convolution and two 3/2 poolings need it).

[PROPOSED] choices (the sources are silent or disagree):

- OFF-ApexNet and Dual-Inception divide their 0–255 input by 255 (the sources state no scaling; on raw 0–255
  values Dual-Inception started at a loss of 4.7 on a 3-class test batch and one Adam step of 5e-4 took it to 54).
- OFF-ApexNet: ReLU after each convolution (the ECNU re-implementation has none; docs/BASELINES.md).
- Dual-Inception: ReLU after every convolution of paths 1–3, none on the lone 1×1 of path 4 ("ReLU inside paths
  1–3"); the pooling path's max-pool has padding 1 so that the four paths keep the size.
- AlexNet streams: LRN constants of Krizhevsky et al. (size 5, α 1e-4, β 0.75, k 2), as ``nn.LocalResponseNorm``
  (α divided by the size, as Caffe); SSSN's FC He-normal like DSSN's.
- SSSN reads (u, v, magnitude); DSSN reads (u, v, magnitude) and (u, v, strain), the official release's inputs.
- Published recipes: the batch of OFF-ApexNet and Dual-Inception is unpublished: 256, as STSTNet (OFF-ApexNet
  comes from STSTNet's group);
  DSSN's is the PyTorch port's 32 (the authors' code used 2–60), with Keras' lr decay 1e-7 per update.
- Default recipes: a cheap CPU budget, to be tuned on synthetic data (never on a real test subject).
"""
from __future__ import annotations

import pickle
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import MappingProxyType

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file
from torch import nn

from micronbert.baselines.card import NetworkCard, Recipe
from micronbert.baselines.ststnet import STSTNet
from micronbert.data.inputs.spec import InputSpec

TORCH_WEIGHT_SUFFIXES = (".pth", ".pt", ".bin")
WEIGHT_SUFFIXES = (*TORCH_WEIGHT_SUFFIXES, ".safetensors")

OFFAPEX_WIDTHS = (6, 16)
DUAL_INCEPTION_WIDTHS = (6, 16)
HIDDEN_UNITS = 1024
MIN_POOLED_SIZE = 4

ALEXNET_CONV1 = 96
ALEXNET_CONV2 = 256
ALEXNET_MEANS = (123.68, 116.779, 103.939)
MIN_ALEXNET_SIZE = 35
DSSN_MERGES = ("mul", "add", "cat")


# ----------------------------------------------------------------------------------------- shared helpers
def check_batch(network: str, x: torch.Tensor, channels: int, size: int) -> None:
    """Raise a ValueError naming the expected shape unless ``x`` is (N, channels, size, size)."""
    if x.ndim != 4 or x.shape[1] != channels or tuple(x.shape[2:]) != (size, size):
        raise ValueError(f"{network} expects input of shape (N, {channels}, {size}, {size}), got {tuple(x.shape)}")


def read_weights_file(path: str | Path) -> dict[str, torch.Tensor]:
    """The state dict in a user's weights file, ``module.`` prefixes removed.

    ``.safetensors`` is read with safetensors; ``.pth``/``.pt``/``.bin`` with ``torch.load(weights_only=True)``
    (a file holding anything but tensors and plain containers is refused, nothing in it runs) and may hold the
    state dict bare or under ``"state_dict"`` or ``"model"``.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such weights file")
    suffix = path.suffix.lower()
    if suffix == ".safetensors":
        try:
            state = load_file(str(path), device="cpu")
        except (SafetensorError, OSError, ValueError) as err:
            raise ValueError(f"{path}: not a readable safetensors file ({err})") from err
    elif suffix in TORCH_WEIGHT_SUFFIXES:
        state = _state_dict_in(_torch_load(path), path)
    else:
        raise ValueError(f"{path}: unknown weights format {suffix!r}; expected one of {WEIGHT_SUFFIXES}")
    return {key.removeprefix("module."): value for key, value in state.items()}


def _torch_load(path: Path) -> object:
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        raise ValueError(f"{path}: refused to load: the file holds objects other than tensors, which could run "
                         f"code; nothing was executed ({_first_line(err)})") from err
    except (RuntimeError, EOFError, OSError, ValueError, AttributeError, ImportError) as err:
        raise ValueError(f"{path}: not a readable PyTorch file, truncated or corrupt ({_first_line(err)})") from err


def _first_line(err: BaseException) -> str:
    return (str(err).strip().splitlines() or [type(err).__name__])[0][:300]


def _state_dict_in(obj: object, path: Path) -> dict[str, torch.Tensor]:
    if isinstance(obj, dict):
        for wrapper in ("state_dict", "model"):
            if isinstance(obj.get(wrapper), dict):
                obj = obj[wrapper]
                break
    if not isinstance(obj, dict) or not obj:
        raise ValueError(f"{path}: expected a state dict (parameter name → tensor), got {type(obj).__name__}")
    for key, value in obj.items():
        if not isinstance(key, str) or not isinstance(value, torch.Tensor):
            raise ValueError(f"{path}: entry {key!r} of the state dict is not a named tensor")
    return obj


def load_mapped_weights(module: nn.Module, state: Mapping[str, torch.Tensor], mapping: Mapping[str, str],
                        path: str | Path) -> tuple[str, ...]:
    """Copy ``state[source]`` into ``module``'s entry ``target`` for every ``target → source`` of ``mapping``;
    a missing source key or a shape that differs raises a ValueError naming ``path`` and the key. Returns the
    module entries loaded; the others keep their values."""
    own = module.state_dict()
    selected = {}
    for target, source in mapping.items():
        if source not in state:
            raise ValueError(f"{path}: key {source!r} missing (it is loaded into {target!r})")
        value, expected = state[source], own[target]
        if tuple(value.shape) != tuple(expected.shape):
            raise ValueError(f"{path}: key {source!r} has shape {tuple(value.shape)}, {target!r} needs "
                             f"{tuple(expected.shape)}")
        selected[target] = value.to(expected.dtype)
    result = module.load_state_dict(selected, strict=False)
    if result.unexpected_keys:
        raise ValueError(f"{path}: {result.unexpected_keys[0]!r} is not an entry of the network")
    return tuple(selected)


def single_input(network: str, inputs: Sequence[InputSpec], count: int = 1) -> tuple[InputSpec, ...]:
    """``inputs`` as a tuple after checking it holds ``count`` specs (a ValueError names the network)."""
    inputs = tuple(inputs)
    if len(inputs) != count:
        raise ValueError(f"{network} reads {count} input(s), got {len(inputs)}: {inputs}")
    return inputs


def _pooled_side(network: str, size: int) -> int:
    if size < MIN_POOLED_SIZE:
        raise ValueError(f"{network} needs an input size of at least {MIN_POOLED_SIZE} pixels, got {size}")
    return size // 4


# ----------------------------------------------------------------------------------------- OFF-ApexNet
class OffApexNet(nn.Module):
    """OFF-ApexNet: one convolutional stream per flow channel (u, v), a two-layer FC head; returns logits."""

    def __init__(self, num_classes: int = 3, in_channels: int = 2, input_size: int = 28,
                 dropout: float = 0.5) -> None:
        super().__init__()
        self.in_channels, self.input_size = in_channels, input_size
        side = _pooled_side("OFF-ApexNet", input_size)
        first, second = OFFAPEX_WIDTHS
        self.streams = nn.Sequential(
            nn.Conv2d(in_channels, first * in_channels, kernel_size=5, padding=2, groups=in_channels),
            nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(first * in_channels, second * in_channels, kernel_size=5, padding=2, groups=in_channels),
            nn.ReLU(), nn.MaxPool2d(2),
        )
        self.head = nn.Sequential(
            nn.Linear(second * in_channels * side * side, HIDDEN_UNITS), nn.ReLU(), nn.Dropout(dropout),
            nn.Linear(HIDDEN_UNITS, HIDDEN_UNITS), nn.ReLU(), nn.Dropout(dropout),
            nn.Linear(HIDDEN_UNITS, num_classes),
        )

    def forward(self, flow: torch.Tensor) -> torch.Tensor:
        check_batch("OFF-ApexNet", flow, self.in_channels, self.input_size)
        return self.head(self.streams(flow / 255.0).flatten(1))


# ----------------------------------------------------------------------------------------- Dual-Inception
class InceptionBlock(nn.Module):
    """Four concatenated paths of ``width`` channels each, then a 2×2 max-pool (4·width channels out)."""

    def __init__(self, in_channels: int, width: int) -> None:
        super().__init__()
        self.wide = nn.Sequential(nn.Conv2d(in_channels, width, 1), nn.ReLU(),
                                  nn.Conv2d(width, width, 5, padding=2), nn.ReLU())
        self.narrow = nn.Sequential(nn.Conv2d(in_channels, width, 1), nn.ReLU(),
                                    nn.Conv2d(width, width, 3, padding=1), nn.ReLU())
        self.pooled = nn.Sequential(nn.MaxPool2d(3, stride=1, padding=1), nn.Conv2d(in_channels, width, 1), nn.ReLU())
        self.point = nn.Conv2d(in_channels, width, 1)
        self.pool = nn.MaxPool2d(2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pool(torch.cat([self.wide(x), self.narrow(x), self.pooled(x), self.point(x)], dim=1))


class DualInception(nn.Module):
    """Dual-Inception: two Inception blocks per flow channel (u, v), FC 1024 → classes; returns logits."""

    def __init__(self, num_classes: int = 3, in_channels: int = 2, input_size: int = 28) -> None:
        super().__init__()
        self.in_channels, self.input_size = in_channels, input_size
        side = _pooled_side("Dual-Inception", input_size)
        first, second = DUAL_INCEPTION_WIDTHS
        self.streams = nn.ModuleList(
            nn.Sequential(InceptionBlock(1, first), InceptionBlock(4 * first, second)) for _ in range(in_channels)
        )
        self.head = nn.Sequential(nn.Linear(in_channels * 4 * second * side * side, HIDDEN_UNITS), nn.ReLU(),
                                  nn.Linear(HIDDEN_UNITS, num_classes))

    def forward(self, flow: torch.Tensor) -> torch.Tensor:
        check_batch("Dual-Inception", flow, self.in_channels, self.input_size)
        flow = flow / 255.0
        features = [stream(flow[:, index:index + 1]).flatten(1) for index, stream in enumerate(self.streams)]
        return self.head(torch.cat(features, dim=1))


# ----------------------------------------------------------------------------------------- SSSN / DSSN
def alexnet_feature_side(size: int) -> int:
    """Side of one AlexNet conv1–2 stream's padded output map (15 at the published 227×227 input)."""
    if size < MIN_ALEXNET_SIZE:
        raise ValueError(f"the AlexNet conv1–2 stream (SSSN/DSSN) needs an input size of at least "
                         f"{MIN_ALEXNET_SIZE} pixels, got {size}")
    conv1 = (size - 11) // 4 + 1
    pool1 = (conv1 - 3) // 2 + 1
    pool2 = (pool1 - 3) // 2 + 1
    return pool2 + 2


class AlexNetStream(nn.Module):
    """AlexNet conv1–conv2 ("truncated"), with the official in-network mean subtraction and /255."""

    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("mean", torch.tensor(ALEXNET_MEANS).view(1, 3, 1, 1), persistent=False)
        self.conv1 = nn.Conv2d(3, ALEXNET_CONV1, kernel_size=11, stride=4)
        self.conv2 = nn.Conv2d(ALEXNET_CONV1, ALEXNET_CONV2, kernel_size=5, padding=2, groups=2)
        self.relu = nn.ReLU()
        self.pool = nn.MaxPool2d(3, stride=2)
        self.norm = nn.LocalResponseNorm(5, alpha=1e-4, beta=0.75, k=2.0)
        self.pad = nn.ZeroPad2d(1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = (x - self.mean) / 255.0
        x = self.norm(self.pool(self.relu(self.conv1(x))))
        x = self.norm(self.pool(self.relu(self.conv2(x))))
        return self.pad(x)


def _he_normal_head(features: int, num_classes: int) -> nn.Linear:
    head = nn.Linear(features, num_classes)
    nn.init.kaiming_normal_(head.weight, nonlinearity="linear")
    nn.init.zeros_(head.bias)
    return head


class SSSN(nn.Module):
    """Single-stream shallow network: one AlexNet conv1–2 stream on (u, v, α), dropout, FC; returns logits."""

    def __init__(self, num_classes: int = 5, input_size: int = 227, dropout: float = 0.5) -> None:
        super().__init__()
        self.input_size = input_size
        side = alexnet_feature_side(input_size)
        self.stream = AlexNetStream()
        self.dropout = nn.Dropout(dropout)
        self.fc = _he_normal_head(ALEXNET_CONV2 * side * side, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_batch("SSSN", x, 3, self.input_size)
        return self.fc(self.dropout(self.stream(x).flatten(1)))


class DSSN(nn.Module):
    """Dual-stream shallow network: AlexNet conv1–2 on (u, v, α) and on (u, v, β), merged by ``merge``
    (``mul``, ``add`` or ``cat``), dropout, FC; ``forward(first, second)`` returns logits."""

    def __init__(self, num_classes: int = 5, merge: str = "mul", input_size: int = 227,
                 dropout: float = 0.5) -> None:
        super().__init__()
        if merge not in DSSN_MERGES:
            raise ValueError(f"DSSN merge must be one of {DSSN_MERGES}, got {merge!r}")
        self.merge, self.input_size = merge, input_size
        side = alexnet_feature_side(input_size)
        self.streams = nn.ModuleList([AlexNetStream(), AlexNetStream()])
        self.dropout = nn.Dropout(dropout)
        features = ALEXNET_CONV2 * side * side * (2 if merge == "cat" else 1)
        self.fc = _he_normal_head(features, num_classes)

    def forward(self, first: torch.Tensor, second: torch.Tensor) -> torch.Tensor:
        for name, x in (("first", first), ("second", second)):
            check_batch(f"DSSN ({name} stream)", x, 3, self.input_size)
        if first.shape[0] != second.shape[0]:
            raise ValueError(f"DSSN streams need the same batch size, got {first.shape[0]} and {second.shape[0]}")
        a, b = (stream(x) for stream, x in zip(self.streams, (first, second)))
        if self.merge == "mul":
            merged = (a * b).flatten(1)
        elif self.merge == "add":
            merged = (a + b).flatten(1)
        else:
            merged = torch.cat([a.flatten(1), b.flatten(1)], dim=1)
        return self.fc(self.dropout(merged))


def _alexnet_streams(module: nn.Module) -> list[tuple[str, AlexNetStream]]:
    streams = [(name, child) for name, child in module.named_modules() if isinstance(child, AlexNetStream)]
    if not streams:
        raise ValueError(f"{type(module).__name__} has no AlexNet conv1–2 stream to load weights into")
    return streams


def load_pretrained_alexnet(module: nn.Module, path: str | Path) -> tuple[str, ...]:
    """Load ImageNet AlexNet conv1–conv2 weights from a user's file into every AlexNet stream of ``module``
    (SSSN: one, DSSN: both, as the original initialised each stream from ImageNet AlexNet).

    Key mapping (the original Caffe/Krizhevsky AlexNet, as converters name it): ``conv1.weight`` (96, 3, 11, 11),
    ``conv1.bias`` (96), ``conv2.weight`` (256, 48, 5, 5: two groups), ``conv2.bias`` (256) → ``<stream>.conv1``,
    ``<stream>.conv2``; other keys (conv3–5, fc6–8) are ignored. torchvision's AlexNet (64/192 filters) is a
    different layout and fails the shape check. Returns the module entries loaded.
    """
    state = read_weights_file(path)
    mapping = {f"{stream}.{layer}.{kind}": f"{layer}.{kind}"
               for stream, _ in _alexnet_streams(module) for layer in ("conv1", "conv2") for kind in ("weight", "bias")}
    return load_mapped_weights(module, state, mapping, path)


# ----------------------------------------------------------------------------------------- cards
def load_ststnet_weights(module: STSTNet, path: str | Path) -> tuple[str, ...]:
    """Load a state dict of the published STSTNet release (``conv1``–``conv3``, ``bn1``–``bn3``, ``fc``) from a
    user's file into ``module`` (strict: every entry, of the module's shapes); returns the entries loaded."""
    state = read_weights_file(path)
    try:
        module.load_state_dict(state, strict=True)
    except RuntimeError as err:
        raise ValueError(f"{path}: not an STSTNet state dict for this network ({_first_line(err)})") from None
    return tuple(state)


def _build_ststnet(num_classes: int, inputs: Sequence[InputSpec]) -> STSTNet:
    (spec,) = single_input("STSTNet", inputs)
    return STSTNet(num_classes, in_channels=len(spec.channels), input_size=spec.size)


def _build_offapexnet(num_classes: int, inputs: Sequence[InputSpec]) -> OffApexNet:
    (spec,) = single_input("OFF-ApexNet", inputs)
    return OffApexNet(num_classes, in_channels=len(spec.channels), input_size=spec.size)


def _build_dual_inception(num_classes: int, inputs: Sequence[InputSpec]) -> DualInception:
    (spec,) = single_input("Dual-Inception", inputs)
    return DualInception(num_classes, in_channels=len(spec.channels), input_size=spec.size)


def _three_channel_size(network: str, specs: Sequence[InputSpec]) -> int:
    if any(len(spec.channels) != 3 for spec in specs):
        raise ValueError(f"{network} streams read 3 channels each (u, v and one of magnitude, strain, grey), "
                         f"got {[spec.channels for spec in specs]}")
    if len({spec.size for spec in specs}) != 1:
        raise ValueError(f"{network} streams need inputs of one size, got {[spec.size for spec in specs]}")
    return specs[0].size


def _build_sssn(num_classes: int, inputs: Sequence[InputSpec]) -> SSSN:
    return SSSN(num_classes, input_size=_three_channel_size("SSSN", single_input("SSSN", inputs)))


def _dssn_builder(merge: str):
    def build(num_classes: int, inputs: Sequence[InputSpec]) -> DSSN:
        size = _three_channel_size("DSSN", single_input("DSSN", inputs, count=2))
        return DSSN(num_classes, merge=merge, input_size=size)

    return build


def _recipes(published: Recipe, default: Recipe) -> Mapping[str, Recipe]:
    return MappingProxyType({"published": published, "default": default})


FLOW_UVS = InputSpec("flow", 28, ("u", "v", "strain"))
FLOW_UV = InputSpec("flow", 28, ("u", "v"))
FLOW_UVM_227 = InputSpec("flow", 227, ("u", "v", "magnitude"))
FLOW_UVS_227 = InputSpec("flow", 227, ("u", "v", "strain"))
DEFAULT_SOURCE = "[PROPOSED] a cheap CPU budget, to be tuned on synthetic data"
TUNED_SOURCE = ("[PROPOSED] a composite LOSO within 15 minutes on 2 CPU cores; learning rate and epochs chosen on a "
                "synthetic tuning composite (benchmarks/recipe_curves.py), no real subject")

STSTNET_CARD = NetworkCard(
    name="ststnet",
    build=_build_ststnet,
    inputs=(FLOW_UVS,),
    parameters=1_683,
    load_weights=load_ststnet_weights,
    recipes=_recipes(
        Recipe("adam", 5e-5, epochs=500, batch_size=256, class_weighted=False,
               source="STSTNet paper §II (lr 0.00005, 500 epochs) and the official MATLAB main.m (Adam, batch "
                      "256), plain cross-entropy; the official PyTorch main.py trains 800 epochs"),
        Recipe("adam", 5e-4, epochs=40, batch_size=16,
               source=f"{DEFAULT_SOURCE}: micronbert's earlier STSTNet settings, class-weighted"),
    ),
    notes="Layout of the official PyTorch release (ReLU, BatchNorm and dropout 0.5 per stream, conv padding 2): "
          "1,683 parameters; the paper's Table I layout (no BatchNorm) has 1,651. The three streams are computed by "
          "one fused 16-channel convolution and BatchNorm; the published state dicts load. [PROPOSED] default "
          "recipe: Adam 5e-4, 40 epochs, batch 16, class-weighted cross-entropy.",
)

OFFAPEXNET_CARD = NetworkCard(
    name="offapexnet",
    build=_build_offapexnet,
    inputs=(FLOW_UV,),
    parameters=2_664_475,
    recipes=_recipes(
        Recipe("adam", 1e-4, epochs=3000, batch_size=256, class_weighted=False,
               source="ECNU re-implementation and the MEB notebook (Adam 1e-4, 3000 epochs); the batch is not "
                      "published: 256 [PROPOSED], as the same group's STSTNet"),
        Recipe("adam", 5e-4, epochs=40, batch_size=32, source=TUNED_SOURCE),
    ),
    notes="Two-stream layout of the ECNU re-implementation (docs/BASELINES.md); the paper reports 2.77 M "
          "parameters, this layout has 2,664,475, so the original may differ slightly. [PROPOSED]: ReLU after each "
          "convolution (ECNU has none); input divided by 255; published batch 256 (unpublished); default recipe "
          "Adam 5e-4, 40 epochs, batch 32, class-weighted cross-entropy (chosen on synthetic data: "
          "benchmarks/recipe_curves.py).",
    aliases=("off-apexnet",),
)

DUAL_INCEPTION_CARD = NetworkCard(
    name="dual-inception",
    build=_build_dual_inception,
    inputs=(FLOW_UV,),
    parameters=6_449_867,
    recipes=_recipes(
        Recipe("adam", 1e-3, epochs=501, batch_size=256, class_weighted=False,
               source="ECNU re-implementation (Adam 1e-3, 501 epochs; the paper's recipe is unverified); the batch "
                      "is not published: 256 [PROPOSED], as STSTNet"),
        Recipe("adam", 1e-3, epochs=16, batch_size=32, source=TUNED_SOURCE),
    ),
    notes="Layout of the ECNU re-implementation (docs/BASELINES.md), flow onset→apex (the paper may have used "
          "onset→middle frame). [PROPOSED]: ReLU after every convolution of paths 1–3, none on path 4's 1×1; "
          "padding 1 on the pooling path's 3×3 max-pool; input divided by 255; published batch 256 (unpublished); "
          "default recipe Adam 1e-3, 16 epochs, batch 32, class-weighted cross-entropy (chosen on synthetic data: "
          "benchmarks/recipe_curves.py).",
)

_SHALLOW_PRETRAINED = ("ImageNet AlexNet conv1–conv2 (not included: trained from scratch by default; "
                       "load_pretrained_alexnet loads them from a user's file)")
_SHALLOW_PUBLISHED = Recipe(
    "adam", 1e-4, epochs=100, batch_size=32, decay=1e-7, class_weighted=False,
    source="authors' later code ME_Autoencoders (Adam 1e-4 with Keras' inverse-time decay 1e-7 per update, up to "
           "100 epochs, last epoch; batch 2–60 there) with the PyTorch port's batch 32; the paper's own epochs are "
           "unknown")
_SHALLOW_DEFAULT = Recipe("adam", 1e-4, epochs=20, batch_size=32, source=DEFAULT_SOURCE)
_SHALLOW_NOTES = ("AlexNet conv1–2 per stream as docs/BASELINES.md (LRN after each pooling, zero-pad 1: 256×15×15). "
                  "[PROPOSED]: LRN constants of Krizhevsky et al. (5, 1e-4, 0.75, k 2); trained from scratch unless "
                  "ImageNet AlexNet conv1–2 weights are loaded from a user's file; published batch 32; default "
                  "recipe Adam 1e-4, 20 epochs, batch 32, class-weighted cross-entropy.")

SSSN_CARD = NetworkCard(
    name="sssn",
    build=_build_sssn,
    inputs=(FLOW_UVM_227,),
    parameters=630_405,
    classes=5,
    pretrained_from=_SHALLOW_PRETRAINED,
    recipes=_recipes(_SHALLOW_PUBLISHED, _SHALLOW_DEFAULT),
    load_weights=load_pretrained_alexnet,
    notes=f"{_SHALLOW_NOTES} [PROPOSED]: SSSN reads (u, v, magnitude); FC He-normal as DSSN's.",
)


def _dssn_card(merge: str, parameters: int, aliases: tuple[str, ...] = ()) -> NetworkCard:
    merged = {"mul": "element-wise product (the official release)", "add": "element-wise sum",
              "cat": "concatenation of the flattened maps (the authors' later code)"}[merge]
    return NetworkCard(
        name="dssn" if merge == "mul" else f"dssn-{merge}",
        build=_dssn_builder(merge),
        inputs=(FLOW_UVM_227, FLOW_UVS_227),
        parameters=parameters,
        classes=5,
        pretrained_from=_SHALLOW_PRETRAINED,
        recipes=_recipes(_SHALLOW_PUBLISHED, _SHALLOW_DEFAULT),
        load_weights=load_pretrained_alexnet,
        notes=f"{_SHALLOW_NOTES} Streams (u, v, magnitude) and (u, v, strain), the official inputs; merge: {merged}.",
        aliases=aliases,
    )


# two streams of 342,400 parameters, then the FC at 5 classes on 57,600 (mul, add) or 115,200 (cat) features
DSSN_CARD = _dssn_card("mul", 972_805, aliases=("dssn-mul",))
DSSN_ADD_CARD = _dssn_card("add", 972_805)
DSSN_CAT_CARD = _dssn_card("cat", 1_260_805)

FLOW_CARDS = (STSTNET_CARD, OFFAPEXNET_CARD, DUAL_INCEPTION_CARD, SSSN_CARD, DSSN_CARD, DSSN_ADD_CARD,
              DSSN_CAT_CARD)
