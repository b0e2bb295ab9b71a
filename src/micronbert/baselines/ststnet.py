"""STSTNet (Liong et al., FG 2019): shallow triple-stream CNN on 28×28 onset→apex flow images.

Layer layout and parameter names follow the published PyTorch release so that its state dicts load with
``strict=True``: three parallel 3×3 convolutions ``conv1``/``conv2``/``conv3`` (3, 5 and 8 filters, padding 2),
each followed by ReLU, BatchNorm (``bn1``/``bn2``/``bn3``), max-pool (3, stride 3, padding 1) and dropout 0.5
(dropout sits per stream after the max-pool, as in the release); the streams are concatenated (16 channels,
10×10), average-pooled (2, stride 2) to 16×5×5 = 400 features and classified by the linear layer ``fc``.

The three streams read the same input with the same kernel size and padding, so one 16-channel convolution
computes them, and one 16-channel BatchNorm normalises them (BatchNorm is per channel); ReLU, max-pool and
dropout act element- or channel-wise, so applying them to the 16 channels is the same function. The
module holds the fused ``conv`` and ``bn``; state-dict hooks translate them to and from the published names
(``conv1.weight`` is rows 0–2 of the fused weight, ``conv2`` rows 3–7, ``conv3`` rows 8–15; likewise for the
BatchNorm), so ``state_dict()`` has exactly the published keys and shapes. The three published
``num_batches_tracked`` counters become one (they are equal in any state dict trained by the release, since the
three BatchNorms see the same batches; loading keeps ``bn1``'s). Dropout draws its masks stream by stream, as the
release does, so a seeded run draws the same masks. ``state_dict()`` returns copies of the slices, not views of the
parameters.

Input: float tensor (N, 3, size, size) holding (u, v, strain) scaled to 0–255 with no further normalisation, as
produced by :func:`micronbert.data.flow.flow_features` and :func:`flow_images_to_tensor`; the published size is
28, other sizes (quick runs) change only the number of features ``fc`` reads.
"""
from __future__ import annotations

import numpy as np
import torch
from torch import nn
from torch.nn.utils import skip_init

INPUT_SIZE = 28
STREAM_WIDTHS = (3, 5, 8)
PUBLISHED_NAMES = {"conv": ("conv1", "conv2", "conv3"), "bn": ("bn1", "bn2", "bn3")}


def ststnet_feature_side(input_size: int) -> int:
    """Side of the average-pooled feature map (5 at the published 28×28 input)."""
    convolved = input_size + 2
    pooled = (convolved + 2 - 3) // 3 + 1
    return pooled // 2


class STSTNet(nn.Module):
    """Shallow triple-stream network; ``forward`` returns logits of shape (N, num_classes)."""

    def __init__(self, num_classes: int = 3, in_channels: int = 3, dropout: float = 0.5,
                 input_size: int = INPUT_SIZE) -> None:
        super().__init__()
        if num_classes < 1 or in_channels < 1:
            raise ValueError(f"num_classes and in_channels must be positive, got {num_classes}, {in_channels}")
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout must lie in [0, 1), got {dropout}")
        if input_size < 2:
            raise ValueError(f"STSTNet needs an input size of at least 2 pixels, got {input_size}")
        self.num_classes = num_classes
        self.in_channels = in_channels
        self.input_size = input_size
        self.conv = _fused_convolution(in_channels)
        self.bn = nn.BatchNorm2d(sum(STREAM_WIDTHS))
        self.relu = nn.ReLU()
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=3, padding=1)
        self.avgpool = nn.AvgPool2d(kernel_size=2, stride=2)
        self.dropout = nn.Dropout(p=dropout)
        self.fc = nn.Linear(sum(STREAM_WIDTHS) * ststnet_feature_side(input_size) ** 2, num_classes)
        self._register_state_dict_hook(_publish_branch_names)
        self._register_load_state_dict_pre_hook(_fuse_published_branches, with_module=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        size = self.input_size
        if x.ndim != 4 or x.shape[1] != self.in_channels or x.shape[2:] != (size, size):
            raise ValueError(
                f"STSTNet expects input of shape (N, {self.in_channels}, {size}, {size}), got {tuple(x.shape)}"
            )
        fused = self.maxpool(self.bn(self.relu(self.conv(x))))
        # one dropout draw per stream, in stream order: the random masks of the three-branch release
        streams = [self.dropout(stream.contiguous()) for stream in fused.split(STREAM_WIDTHS, dim=1)]
        return self.fc(self.avgpool(torch.cat(streams, dim=1)).flatten(1))


def _fused_convolution(in_channels: int) -> nn.Conv2d:
    """The 16-channel convolution, initialised as the release initialises its three branch convolutions (the same
    random draws in the same order), so a seeded network starts from the release's weights."""
    branches = [nn.Conv2d(in_channels, width, kernel_size=3, padding=2) for width in STREAM_WIDTHS]
    fused = skip_init(nn.Conv2d, in_channels, sum(STREAM_WIDTHS), kernel_size=3, padding=2)
    with torch.no_grad():
        fused.weight.copy_(torch.cat([branch.weight for branch in branches]))
        fused.bias.copy_(torch.cat([branch.bias for branch in branches]))
    return fused


def _branch_part(value: torch.Tensor, branch: int) -> torch.Tensor:
    if value.ndim == 0:  # num_batches_tracked: one counter for the three BatchNorms
        return value.clone()
    return value.split(STREAM_WIDTHS)[branch].clone()


def _publish_branch_names(module: STSTNet, state_dict: dict, prefix: str, local_metadata: dict) -> None:
    """State-dict hook: replace the fused ``conv.*``/``bn.*`` entries by the published per-branch ones, in the
    published order (the module's own entries are the tail of ``state_dict``)."""
    own = [(key, state_dict.pop(key)) for key in list(state_dict) if key.startswith(prefix)]
    fused: dict[str, list[tuple[str, torch.Tensor]]] = {}
    order: list[str | tuple[str, torch.Tensor]] = []
    for key, value in own:
        head, _, name = key[len(prefix):].partition(".")
        if head not in PUBLISHED_NAMES:
            order.append((key, value))
            continue
        if head not in fused:
            fused[head] = []
            order.append(head)
        fused[head].append((name, value))
    for entry in order:
        if isinstance(entry, tuple):
            state_dict[entry[0]] = entry[1]
            continue
        for branch, published in enumerate(PUBLISHED_NAMES[entry]):
            for name, value in fused[entry]:
                state_dict[f"{prefix}{published}.{name}"] = _branch_part(value, branch)


def _fuse_published_branches(module: STSTNet, state_dict: dict, prefix: str, local_metadata: dict, strict: bool,
                             missing_keys: list[str], unexpected_keys: list[str], error_msgs: list[str]) -> None:
    """Load pre-hook: concatenate the published per-branch entries into the fused ``conv``/``bn`` entries. A
    branch entry that is absent keeps the module's current values and is reported as missing; one of the wrong
    shape is reported as a size mismatch under its published name."""
    for head, branches in PUBLISHED_NAMES.items():
        for name, current in getattr(module, head).state_dict().items():
            keys = [f"{prefix}{branch}.{name}" for branch in branches]
            if not any(key in state_dict for key in keys):
                continue
            parts, loaded = [], []
            for branch, key in enumerate(keys):
                expected = _branch_part(current, branch)
                if key not in state_dict:
                    missing_keys.append(key)
                    parts.append(expected)
                    continue
                value = state_dict.pop(key)
                if tuple(value.shape) != tuple(expected.shape):
                    error_msgs.append(f"size mismatch for {key}: copying a param with shape {tuple(value.shape)}, "
                                      f"the shape in the published layout is {tuple(expected.shape)}.")
                    value = expected
                parts.append(value.to(current))
                loaded.append(parts[-1])
            state_dict[f"{prefix}{head}.{name}"] = loaded[0] if current.ndim == 0 else torch.cat(parts)


def flow_images_to_tensor(images: np.ndarray) -> torch.Tensor:
    """uint8 flow images (H, W, 3) or (N, H, W, 3), 0–255, to a float32 (N, 3, H, W) tensor, values unchanged."""
    images = np.asarray(images)
    if images.ndim == 3:
        images = images[None]
    if images.ndim != 4 or images.shape[-1] != 3:
        raise ValueError(f"flow images must have shape (H, W, 3) or (N, H, W, 3), got {images.shape}")
    return torch.from_numpy(np.ascontiguousarray(images.transpose(0, 3, 1, 2))).float()
