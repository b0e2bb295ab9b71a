"""The apex family of recognition networks, written from the layer tables of docs/BASELINES.md, with their
:class:`~micronbert.baselines.card.NetworkCard`.

``micro-attention``: Micro-Attention (Wang, Peng, Bi, Chen, Neurocomputing 2020) on the grey apex frame at
224×224: a pre-activation ResNet-10 with a micro-attention unit after every stage.

- stem: BatchNorm (with its affine scale) on the raw input → conv 7×7/2, 64 (pad 3) → BatchNorm, ReLU →
  max-pool 3×3/2;
- stage 1 (64): conv 3×3 → BatchNorm, ReLU → conv 3×3, summed with the stem output;
- stages 2–4 (128, 256, 512): BatchNorm, ReLU on the input → conv 3×3/2 → BatchNorm, ReLU → conv 3×3, summed
  with a 1×1/2 projection of the pre-activated input;
- micro-attention unit on each stage's sum F (C channels): concatenate the shortcut s, the first convolution's
  output h1 and the second's h2 (3C), a learned 1×1 convolution to C (no bias, He initialisation), the mean over
  channels (the original's fixed 1×1 convolution with weights 1/C, never trained: it holds no parameters here),
  a sigmoid: the spatial mask M; output F ⊙ (1 + M);
- tail: BatchNorm, ReLU → global average pool (512) → FC. The convolutions have no bias.

The original started from a ResNet-10 pre-trained on macro facial expressions (not released); micronbert trains
from scratch by default and loads such weights from a user's file with :func:`load_pretrained_resnet10`.

[PROPOSED] choices (the sources are silent or disagree):

- the stem max-pool pads by 1 (56×56 after it at 224, as Caffe's rounding-up pool gives);
- the official 5-class prototxt's head (plain FC, no dropout), not the ACII copy's L2-normalised features before
  a 3-class FC with bias 0.2;
- published recipe in epochs: 2500 iterations of batch 16 with ×0.1 every 500 iterations become 100 epochs with
  ×0.1 every 20 (docs/BASELINES.md: about 100 epochs on the composite's training folds); the original's class
  balancing by oversampling becomes a class-weighted cross-entropy;
- default recipe: a cheap CPU budget, to be tuned on synthetic data (never on a real test subject).

Input: float tensor (N, 1, size, size), the grey apex frame (0–255 or 0–1: the input BatchNorm rescales it).
Any size builds (the global average pool reads any map); the published size is 224.
"""
from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from types import MappingProxyType

import torch
from torch import nn

from micronbert.baselines.card import NetworkCard, Recipe
from micronbert.baselines.flownets import check_batch, load_mapped_weights, read_weights_file, single_input
from micronbert.data.inputs.spec import InputSpec

STAGE_WIDTHS = (64, 128, 256, 512)
BATCHNORM_ENTRIES = ("weight", "bias", "running_mean", "running_var")


def _conv(in_channels: int, out_channels: int, kernel: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(in_channels, out_channels, kernel, stride=stride, padding=kernel // 2, bias=False)


class MicroAttentionUnit(nn.Module):
    """Spatial mask from [shortcut, conv1 output, conv2 output]: F ⊙ (1 + sigmoid(mean_C(W [s, h1, h2])))."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.mix = nn.Conv2d(3 * channels, channels, kernel_size=1, bias=False)
        nn.init.kaiming_normal_(self.mix.weight)

    def forward(self, summed: torch.Tensor, shortcut: torch.Tensor, first: torch.Tensor,
                second: torch.Tensor) -> torch.Tensor:
        logits = self.mix(torch.cat([shortcut, first, second], dim=1)).mean(dim=1, keepdim=True)
        return summed * (1 + torch.sigmoid(logits))


class AttentionStage(nn.Module):
    """One residual stage with its micro-attention unit; ``pre_activation`` stages pre-activate their input,
    halve the size and project the shortcut by a 1×1 convolution, the first stage adds its input unchanged."""

    def __init__(self, in_channels: int, channels: int, pre_activation: bool) -> None:
        super().__init__()
        stride = 2 if pre_activation else 1
        self.pre_bn = nn.BatchNorm2d(in_channels) if pre_activation else None
        self.conv1 = _conv(in_channels, channels, 3, stride)
        self.bn1 = nn.BatchNorm2d(channels)
        self.conv2 = _conv(channels, channels, 3)
        self.shortcut = _conv(in_channels, channels, 1, stride) if pre_activation else None
        self.attention = MicroAttentionUnit(channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        activated = torch.relu(self.pre_bn(x)) if self.pre_bn is not None else x
        shortcut = self.shortcut(activated) if self.shortcut is not None else x
        first = self.conv1(activated)
        second = self.conv2(torch.relu(self.bn1(first)))
        return self.attention(shortcut + second, shortcut, first, second)


class MicroAttentionNet(nn.Module):
    """Pre-activation ResNet-10 with a micro-attention unit per stage, on the grey apex; returns logits."""

    def __init__(self, num_classes: int = 3, in_channels: int = 1, input_size: int = 224) -> None:
        super().__init__()
        if num_classes < 1 or in_channels < 1 or input_size < 1:
            raise ValueError(f"num_classes, in_channels and input_size must be positive, got {num_classes}, "
                             f"{in_channels}, {input_size}")
        self.in_channels, self.input_size = in_channels, input_size
        self.input_bn = nn.BatchNorm2d(in_channels)
        self.conv1 = nn.Conv2d(in_channels, STAGE_WIDTHS[0], kernel_size=7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(STAGE_WIDTHS[0])
        self.maxpool = nn.MaxPool2d(3, stride=2, padding=1)
        widths = (STAGE_WIDTHS[0], *STAGE_WIDTHS)
        self.stages = nn.Sequential(*(AttentionStage(widths[index], widths[index + 1], pre_activation=index > 0)
                                      for index in range(len(STAGE_WIDTHS))))
        self.final_bn = nn.BatchNorm2d(STAGE_WIDTHS[-1])
        self.fc = nn.Linear(STAGE_WIDTHS[-1], num_classes)

    def forward(self, apex: torch.Tensor) -> torch.Tensor:
        check_batch("Micro-Attention", apex, self.in_channels, self.input_size)
        x = self.maxpool(torch.relu(self.bn1(self.conv1(self.input_bn(apex)))))
        x = torch.relu(self.final_bn(self.stages(x)))
        return self.fc(x.mean(dim=(2, 3)))


def _resnet10_keys(module: MicroAttentionNet) -> list[str]:
    """The module's ResNet-10 entries: everything but the attention units, the head and BatchNorm counters."""
    return [key for key in module.state_dict()
            if ".attention." not in key and not key.startswith("fc.") and not key.endswith("num_batches_tracked")]


def _torchvision_mapping(module: MicroAttentionNet) -> dict[str, str]:
    mapping = {"conv1.weight": "conv1.weight"}
    mapping.update({f"bn1.{entry}": f"bn1.{entry}" for entry in BATCHNORM_ENTRIES})
    for index in range(len(module.stages)):
        stage, layer = f"stages.{index}", f"layer{index + 1}.0"
        mapping[f"{stage}.conv1.weight"] = f"{layer}.conv1.weight"
        mapping[f"{stage}.conv2.weight"] = f"{layer}.conv2.weight"
        mapping.update({f"{stage}.bn1.{entry}": f"{layer}.bn1.{entry}" for entry in BATCHNORM_ENTRIES})
        if index > 0:
            mapping[f"{stage}.shortcut.weight"] = f"{layer}.downsample.0.weight"
    return mapping


def _grey_stem(state: dict[str, torch.Tensor], module: MicroAttentionNet, key: str) -> dict[str, torch.Tensor]:
    """An RGB stem (64, 3, 7, 7) for a grey network becomes the sum over its input channels: a grey image given as
    three equal channels meets exactly that filter."""
    weight = state.get(key)
    if weight is not None and weight.ndim == 4 and weight.shape[1] == 3 and module.in_channels == 1:
        state = {**state, key: weight.sum(dim=1, keepdim=True)}
    return state


def load_pretrained_resnet10(module: MicroAttentionNet, path: str | Path) -> tuple[str, ...]:
    """Load a pre-trained ResNet-10 (the original's macro-expression pre-training) from a user's file into
    ``module``; the head ``fc`` is never loaded (it is trained on micro-expressions). Returns the entries loaded.

    Two key namings are read:

    - micronbert's own (``input_bn``, ``conv1``, ``bn1``, ``stages.<i>.{pre_bn,conv1,bn1,conv2,shortcut}``,
      ``final_bn``): every ResNet-10 entry is required; ``stages.<i>.attention.mix.weight`` is loaded when present
      (the original's transfer started the attention units afresh);
    - torchvision's ResNet names (a ResNet-18/34's first block of each stage has the same convolution shapes):
      ``conv1`` → ``conv1``, ``bn1`` → ``bn1``, ``layer<i+1>.0.conv1``/``conv2``/``bn1`` →
      ``stages.<i>.conv1``/``conv2``/``bn1``, ``layer<i+1>.0.downsample.0`` → ``stages.<i>.shortcut`` (i ≥ 1).
      torchvision's blocks are post-activation, so their ``bn2`` has no counterpart: the pre-activation,
      input and final BatchNorms keep their initial values.

    An RGB stem (64, 3, 7, 7) loaded into the grey network is summed over its colour channels. BatchNorm
    ``num_batches_tracked`` counters are not read.
    """
    state = read_weights_file(path)
    if "layer1.0.conv1.weight" in state:
        mapping = _torchvision_mapping(module)
    else:
        attention = [key for key in module.state_dict() if ".attention." in key and key in state]
        mapping = {key: key for key in (*_resnet10_keys(module), *attention)}
    return load_mapped_weights(module, _grey_stem(state, module, "conv1.weight"), mapping, path)


def _build_micro_attention(num_classes: int, inputs: Sequence[InputSpec]) -> MicroAttentionNet:
    (spec,) = single_input("Micro-Attention", inputs)
    return MicroAttentionNet(num_classes, in_channels=len(spec.channels), input_size=spec.size)


MICRO_ATTENTION_CARD = NetworkCard(
    name="micro-attention",
    build=_build_micro_attention,
    inputs=(InputSpec("apex", 224, ("grey",)),),
    parameters=5_943_749,
    pretrained_from="a pre-activation ResNet-10 pre-trained on macro facial expressions for 50k iterations "
                    "(facia_expression_iter_50000.caffemodel, not released: trained from scratch by default; "
                    "load_pretrained_resnet10 loads such weights from a user's file)",
    recipes=MappingProxyType({
        "published": Recipe(
            "sgd", 0.01, epochs=100, batch_size=16, weight_decay=5e-6, momentum=0.9, lr_steps=(20, 40, 60, 80),
            lr_gamma=0.1,
            source="ACII'19 copy's solver.prototxt: SGD momentum 0.9, lr 0.01 ×0.1 every 500 iterations, 2500 "
                   "iterations, weight decay 5e-6, batch 16, classes oversampled to the largest; iterations as "
                   "epochs and oversampling as class weights [PROPOSED] (docs/BASELINES.md: about 100 epochs)"),
        "default": Recipe(
            "sgd", 0.01, epochs=30, batch_size=16, weight_decay=5e-6, momentum=0.9, lr_steps=(20,), lr_gamma=0.1,
            source="[PROPOSED] a cheap CPU budget, to be tuned on synthetic data"),
    }),
    notes="Layout of the official prototxt (docs/BASELINES.md), 3-class head: convolutions 4,893,760 + attention "
          "1,044,480 + BatchNorm 3,970 + FC 1,539 parameters. [PROPOSED]: stem max-pool padding 1; plain FC head "
          "(no L2 normalisation); published recipe in epochs (100, ×0.1 every 20) with class weights for the "
          "original's oversampling; default recipe SGD 0.01 momentum 0.9, 30 epochs (×0.1 after 20), batch 16, "
          "weight decay 5e-6, class-weighted cross-entropy.",
    aliases=("microattention",),
    load_weights=load_pretrained_resnet10,
)

APEX_CARDS = (MICRO_ATTENTION_CARD,)
