"""Model configuration: one dataclass, loadable from YAML, with every open choice of METHOD.md named."""
from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any

from ..config import Config
from ..io import check_positive_int

DMA_QUERIES = ("reference", "swapped")
POI_MODES = ("saliency", "off")
AGREEMENT_MODES = ("ema-mse", "dino", "off")
REC_TARGETS = ("all", "swapped")
HEADS = ("dma", "motion")


@dataclass
class ModelConfig(Config):
    """Every architectural and loss choice of μ-BERT (METHOD.md §2–§8).

    Defaults are those of the published ``official-small`` encoder with micronbert's method defaults
    (DMA query from the reference frame, PoI saliency weighting, EMA-MSE contextual agreement).
    """

    img_size: int = 224
    patch_size: int = 8
    in_chans: int = 3
    dim: int = 512
    depth: int = 4
    heads: int = 4
    mlp_dim: int = 2048
    ln_eps: float = 1e-6
    decoder_dim: int = 512
    decoder_depth: int = 4
    decoder_heads: int = 4
    decoder_mlp_dim: int = 2048
    # Side of the image the decoder's fixed position table is built for (published: 224); None = img_size.
    decoder_pos_size: int | None = None

    dma_heads: int = 1
    dma_query: str = "reference"

    swap_ratio: float = 0.5
    swap_min_block: int = 4
    swap_aspect: tuple[float, float] = (0.3, 3.3)

    poi: str = "saliency"
    # Pre-training: the reconstruction loss does not train the PoI saliency, only the contextual agreement
    # shapes it (it still weights the decoder's input); see docs/FINDINGS.md §6.
    detach_saliency: bool = False
    agreement: str = "ema-mse"
    agree_weight: float = 1.0
    crop_scale: tuple[float, float] = (0.4, 1.0)
    crop_ratio: tuple[float, float] = (3 / 4, 4 / 3)
    ema_momentum: float = 0.996
    predictor_hidden: int | None = None  # None: 2·dim

    dino_out_dim: int = 128
    dino_hidden: int = 2048
    dino_bottleneck: int = 256
    dino_local_crops: int = 8
    dino_local_scale: tuple[float, float] = (0.05, 0.4)
    dino_teacher_temp: float = 0.04
    dino_student_temp: float = 0.1
    dino_center_momentum: float = 0.9

    rec_target: str = "all"
    norm_pix_loss: bool = False
    # micronbert option, not in the paper (METHOD.md §7): the decoder predicts the change from the corrupted input
    # I_{t/s} to I_t, added to patchify(I_{t/s}); its last layer starts at zero, so training starts from the copy.
    decoder_residual: bool = False

    # micronbert extension, not in the paper (METHOD.md §10, `micronbert.model.motion`): weight of the warp-motion
    # pretext term in pre-training (0: off) and its warps (amplitude and shift in fractions of the image width).
    motion_weight: float = 0.0
    motion_amplitude: float = 3 / 64
    motion_bumps: int = 3
    motion_rotation_deg: float = 1.5
    motion_shift: float = 1 / 64
    # micronbert extension, not in the paper (METHOD.md §11, `micronbert.model.volatility`): weight of the term that
    # teaches a per-patch head how much each patch is expected to change between frames (0: off, no head).
    volatility_weight: float = 0.0
    # What the recognition head reads: "dma", the saliency-pooled DMA features (METHOD.md §8), or "motion", the
    # per-patch flow of the motion head (METHOD.md §10).
    head: str = "dma"

    num_classes: int = 0
    head_dropout: float = 0.1
    # The published checkpoint may carry an unused auxiliary classifier `fc` (dim → 1).
    aux_head: bool = False

    def __post_init__(self) -> None:
        for name in ("swap_aspect", "crop_scale", "crop_ratio", "dino_local_scale"):
            setattr(self, name, tuple(float(v) for v in getattr(self, name)))
        self.validate()

    @property
    def grid_size(self) -> int:
        return self.img_size // self.patch_size

    @property
    def num_patches(self) -> int:
        return self.grid_size**2

    @property
    def has_motion_head(self) -> bool:
        """Whether the model carries the motion head (for the pretext term or for recognition)."""
        return self.motion_weight > 0 or self.head == "motion"

    @property
    def patch_dim(self) -> int:
        return self.patch_size**2 * self.in_chans

    def validate(self) -> None:
        """Raise ``ValueError`` naming the first inconsistent field."""
        _choice("dma_query", self.dma_query, DMA_QUERIES)
        _choice("poi", self.poi, POI_MODES)
        _choice("agreement", self.agreement, AGREEMENT_MODES)
        _choice("rec_target", self.rec_target, REC_TARGETS)
        _choice("head", self.head, HEADS)
        for name in ("img_size", "patch_size", "in_chans", "dim", "depth", "heads", "mlp_dim", "decoder_dim",
                     "decoder_depth", "decoder_heads", "decoder_mlp_dim", "dma_heads", "swap_min_block"):
            check_positive_int(name, getattr(self, name))
        if self.decoder_residual and self.norm_pix_loss:
            raise ValueError("decoder_residual needs norm_pix_loss off (the residual is added in pixel space)")
        if self.img_size % self.patch_size:
            raise ValueError(f"img_size {self.img_size} is not a multiple of patch_size {self.patch_size}")
        if self.decoder_pos_size is not None and self.decoder_pos_size % self.patch_size:
            raise ValueError(f"decoder_pos_size {self.decoder_pos_size} is not a multiple of patch_size")
        for name, heads, dim in (("heads", self.heads, self.dim), ("dma_heads", self.dma_heads, self.dim),
                                 ("decoder_heads", self.decoder_heads, self.decoder_dim)):
            if dim % heads:
                raise ValueError(f"{name}={heads} does not divide the width {dim}")
        if not 0.0 < self.swap_ratio < 1.0:
            raise ValueError(f"swap_ratio must lie in (0, 1), got {self.swap_ratio}")
        for name in ("swap_aspect", "crop_scale", "crop_ratio", "dino_local_scale"):
            low, high = getattr(self, name)
            if not 0.0 < low <= high:
                raise ValueError(f"{name} must be an increasing pair of positive numbers, got {(low, high)}")
        if not 0.0 <= self.ema_momentum <= 1.0:
            raise ValueError(f"ema_momentum must lie in [0, 1], got {self.ema_momentum}")
        for name in ("motion_weight", "motion_amplitude", "motion_bumps", "motion_rotation_deg", "motion_shift",
                     "volatility_weight"):
            value = getattr(self, name)
            if not math.isfinite(value) or value < 0:
                raise ValueError(f"{name} must be a non-negative number, got {value!r}")
        if self.num_classes < 0:
            raise ValueError(f"num_classes must be >= 0, got {self.num_classes}")

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)


def _choice(name: str, value: str, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise ValueError(f"{name} must be one of {', '.join(allowed)}; got {value!r}")


# Named configurations (METHOD.md §4). `tiny` is for CPU tests and the demo.
CONFIGS: dict[str, dict[str, Any]] = {
    "official-small": dict(img_size=224, patch_size=8, dim=512, depth=4, heads=4, mlp_dim=2048,
                           decoder_dim=512, decoder_depth=4, decoder_heads=4, decoder_mlp_dim=2048),
    "base": dict(img_size=224, patch_size=16, dim=768, depth=12, heads=12, mlp_dim=3072,
                 decoder_dim=512, decoder_depth=8, decoder_heads=16, decoder_mlp_dim=2048),
    "tiny": dict(img_size=64, patch_size=8, dim=96, depth=2, heads=2, mlp_dim=384,
                 decoder_dim=96, decoder_depth=1, decoder_heads=2, decoder_mlp_dim=384,
                 dino_hidden=256, dino_bottleneck=64, dino_out_dim=64),
}


def named_config(name: str, **overrides: Any) -> ModelConfig:
    """The configuration called ``name`` with ``overrides`` applied."""
    if name not in CONFIGS:
        raise ValueError(f"unknown model {name!r}; available: {', '.join(CONFIGS)}")
    return ModelConfig.from_dict({**CONFIGS[name], **overrides})
