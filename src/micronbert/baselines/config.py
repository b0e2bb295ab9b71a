"""The ``baselines`` section of a recognition configuration: which recipe the network baselines train with, at
which input size and length, where their inputs are cached, which user weights they start from, the settings of
the feature baselines and of the synthetic pre-training set (``train.pretrain_on_synthetic``)."""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from micronbert.baselines.flowgrid import FlowGridConfig
from micronbert.baselines.framediff import FrameDifferenceConfig
from micronbert.config import Config
from micronbert.data.flow import FLOW_METHODS

RECIPES = ("default", "published")
FACE_BACKENDS = ("auto", "opencv", "mediapipe", "dlib")
MIN_SIZE = 8


@dataclass(frozen=True)
class SyntheticSetConfig(Config):
    """The synthetic AU micro-expressions every method may pre-train on (``train.pretrain_on_synthetic``,
    MiE-X's protocol): frame ``size`` in pixels (even, >= 16), onset-to-offset ``duration_s`` bounds (seconds at
    200 fps) and ``nuisance_strength`` (head motion, lighting, noise; 0: clean clips), as ``micronbert synth``
    renders them."""

    size: int = 128
    duration_s: tuple[float, float] = (0.1, 0.5)
    nuisance_strength: float = 1.0

    def __post_init__(self) -> None:
        if self.size < 16 or self.size % 2:
            raise ValueError(f"baselines.synthetic.size must be an even number of pixels >= 16, got {self.size}")
        low, high = self.duration_s
        if not 0 < low <= high <= 60:
            raise ValueError(f"baselines.synthetic.duration_s must be (min, max) seconds with 0 < min <= max <= 60, "
                             f"got {self.duration_s}")
        if not math.isfinite(self.nuisance_strength) or self.nuisance_strength < 0:
            raise ValueError(f"baselines.synthetic.nuisance_strength must be >= 0, got {self.nuisance_strength}")


@dataclass(frozen=True)
class BaselinesConfig(Config):
    """Settings of every baseline method.

    recipe: the named recipe every network baseline trains with, ``default`` (micronbert's, for a CPU) or
    ``published`` (the paper's or official code's); recipes: per-method changes to it, e.g.
    ``{ststnet: {epochs: 3}}``; size: input side of every method that reads the input layer (None: each one's
    published size; small values give quick runs; a ``flow_cells`` grid keeps its side); length: frames (or flow
    steps) of every sequence input (None: each one's published length); flow_method: optical flow of the flow
    inputs (``auto``: TV-L1 where opencv-contrib is installed, else DIS); face_backend: the face detector that
    places the eye and nose–mouth regions (``regions`` inputs); cache_dir: where the input layer caches each
    sample's inputs (None: ``<cache.dir>/inputs`` when ``cache.dir`` is set, else
    ``~/.cache/micronbert/inputs``); weights: ``{method: file}``, pre-trained weights a network starts from, for
    the cards that load them (SSSN/DSSN: ImageNet AlexNet conv1–2; micro-attention: a ResNet-10; ELRCN: VGG-16 or
    VGG-Face; STSTNet: its released state dict); networks: ``{method: {option: value}}``, architecture options of
    the cards that have them (ELRCN widths, ICE-GAN widths): a smaller network for quick runs, not the published
    one; framediff, flowgrid: the two linear feature baselines; synthetic: the synthetic pre-training set.
    """

    recipe: str = "default"
    recipes: dict[str, dict[str, Any]] = field(default_factory=dict)
    size: int | None = None
    length: int | None = None
    flow_method: str = "auto"
    face_backend: str = "opencv"
    cache_dir: str | None = None
    weights: dict[str, str] = field(default_factory=dict)
    networks: dict[str, dict[str, Any]] = field(default_factory=dict)
    framediff: FrameDifferenceConfig = field(default_factory=FrameDifferenceConfig)
    flowgrid: FlowGridConfig = field(default_factory=FlowGridConfig)
    synthetic: SyntheticSetConfig = field(default_factory=SyntheticSetConfig)

    def __post_init__(self) -> None:
        if self.recipe not in RECIPES:
            raise ValueError(f"baselines.recipe must be one of {', '.join(RECIPES)}, got {self.recipe!r}")
        if self.flow_method not in FLOW_METHODS:
            raise ValueError(f"baselines.flow_method must be one of {FLOW_METHODS}, got {self.flow_method!r}")
        if self.face_backend not in FACE_BACKENDS:
            raise ValueError(f"baselines.face_backend must be one of {FACE_BACKENDS}, got {self.face_backend!r}")
        if self.size is not None and self.size < MIN_SIZE:
            raise ValueError(f"baselines.size must be at least {MIN_SIZE} pixels, got {self.size}")
        if self.length is not None and self.length < 2:
            raise ValueError(f"baselines.length must be at least 2 frames, got {self.length}")
        for name in ("recipes", "networks"):
            for method, changes in getattr(self, name).items():
                if not isinstance(changes, dict):
                    raise ValueError(f"baselines.{name}.{method} must be a mapping of fields, got {changes!r}")
        for method, path in self.weights.items():
            if not isinstance(path, str) or not path.strip():
                raise ValueError(f"baselines.weights.{method} must be the path of a weights file, got {path!r}")
