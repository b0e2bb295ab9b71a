"""Action units as smooth local displacement fields, emotion classes as AU combinations, and ME timing.

Each action unit (AU) moves skin around a few facial anchors: a Gaussian bump of displacement with a fixed
direction, mirrored on both sides of the face. A micro-expression combines AUs, scales the summed field so
its peak equals `amplitude` x face width, and follows an onset -> apex -> offset raised-cosine profile.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType

import numpy as np

from .faces import FaceModel

CLASSES = ("positive", "surprise", "negative", "others")
DEFAULT_AMPLITUDE = (0.003, 0.02)
DEFAULT_DURATION_S = (0.1, 0.5)
AU_WEIGHT_RANGE = (0.7, 1.0)
APEX_POSITION = (0.3, 0.7)


@dataclass(frozen=True)
class AUComponent:
    """One Gaussian displacement bump.

    `anchor` names a point of `ANCHOR_NAMES` without its side suffix when `bilateral`; `direction` is
    (lateral, down): positive lateral points away from the face midline, positive down points to the chin.
    `sigma` is a fraction of the face width.
    """

    anchor: str
    direction: tuple[float, float]
    sigma: float
    bilateral: bool = True


@dataclass(frozen=True)
class ActionUnit:
    number: int
    name: str
    components: tuple[AUComponent, ...]


def _au(number: int, name: str, *components: AUComponent) -> tuple[int, ActionUnit]:
    return number, ActionUnit(number, name, components)


ACTION_UNITS: Mapping[int, ActionUnit] = MappingProxyType(dict([
    _au(1, "inner brow raiser", AUComponent("brow_inner", (0.0, -1.0), 0.07)),
    _au(2, "outer brow raiser", AUComponent("brow_outer", (0.2, -1.0), 0.07)),
    _au(4, "brow lowerer", AUComponent("brow_inner", (-0.6, 0.8), 0.07)),
    _au(6, "cheek raiser", AUComponent("cheek", (0.1, -1.0), 0.08), AUComponent("eye_outer", (0.0, -0.5), 0.04)),
    _au(7, "lid tightener", AUComponent("eye_lower", (0.0, -1.0), 0.045)),
    _au(9, "nose wrinkler", AUComponent("nose_ala", (-0.3, -1.0), 0.055),
        AUComponent("nose_bridge", (0.0, -0.6), 0.05, bilateral=False)),
    _au(10, "upper lip raiser", AUComponent("upper_lip", (0.0, -1.0), 0.06, bilateral=False)),
    _au(12, "lip corner puller", AUComponent("mouth_corner", (0.75, -0.65), 0.07)),
    _au(14, "dimpler", AUComponent("mouth_corner", (0.95, 0.1), 0.05)),
    _au(15, "lip corner depressor", AUComponent("mouth_corner", (0.25, 1.0), 0.065)),
    _au(17, "chin raiser", AUComponent("chin", (0.0, -1.0), 0.08, bilateral=False),
        AUComponent("lower_lip", (0.0, -0.6), 0.05, bilateral=False)),
]))

CLASS_AU_COMBINATIONS: Mapping[str, tuple[tuple[int, ...], ...]] = MappingProxyType({
    "positive": ((6, 12), (12,)),
    "surprise": ((1, 2),),
    "negative": ((4,), (4, 7), (9,), (4, 9), (14,), (15,), (17,), (15, 17), (14, 17)),
    "others": ((1,), (2,), (7,)),
})

CASME2_EMOTION_BY_CLASS: Mapping[str, str] = MappingProxyType(
    {"positive": "happiness", "surprise": "surprise", "others": "others"}
)
DISGUST_AUS = frozenset({4, 9})
REPRESSION_AUS = frozenset({14, 15, 17})


def casme2_emotion(objective_class: str, aus: Sequence[int]) -> str:
    """The CASME II `Estimated Emotion` for a synthetic class: negative splits into disgust and repression."""
    _check_class(objective_class)
    if objective_class != "negative":
        return CASME2_EMOTION_BY_CLASS[objective_class]
    if set(aus) & REPRESSION_AUS:
        return "repression"
    if set(aus) & DISGUST_AUS:
        return "disgust"
    raise ValueError(f"negative AU combination {tuple(aus)} has neither a disgust nor a repression AU")


def format_action_units(aus: Sequence[int]) -> str:
    """CASME II style AU string, e.g. (6, 12) -> '6+12'."""
    return "+".join(str(au) for au in sorted(aus))


@dataclass(frozen=True)
class FrameTiming:
    """Onset, apex and offset as frame indices (onset < apex < offset)."""

    onset: int
    apex: int
    offset: int

    def __post_init__(self) -> None:
        if not self.onset < self.apex < self.offset:
            raise ValueError(f"timing needs onset < apex < offset, got {self.onset}, {self.apex}, {self.offset}")

    @classmethod
    def from_seconds(cls, onset_s: float, apex_s: float, offset_s: float, fps: float) -> FrameTiming:
        """The frames nearest to the three times at `fps` (frame k is at time k / fps)."""
        _check_fps(fps)
        return cls(*(int(round(t * fps)) for t in (onset_s, apex_s, offset_s)))

    def intensity(self, frames: np.ndarray | Sequence[int]) -> np.ndarray:
        """Raised-cosine profile: 0 at onset and offset (and outside), 1 at the apex."""
        f = np.asarray(frames, dtype=np.float64)
        rise = 0.5 - 0.5 * np.cos(np.pi * (f - self.onset) / (self.apex - self.onset))
        fall = 0.5 + 0.5 * np.cos(np.pi * (f - self.apex) / (self.offset - self.apex))
        profile = np.where(f <= self.apex, rise, fall)
        return np.where((f > self.onset) & (f < self.offset), profile, 0.0)


@dataclass(frozen=True)
class MicroExpression:
    """A micro-expression: which AUs, how strongly, and when.

    `amplitude` is the peak displacement at the apex as a fraction of the face width; `au_weights` gives the
    relative strength of each AU (same order as `aus`); times are seconds from frame 0 of the rendering.
    """

    aus: tuple[int, ...]
    amplitude: float
    onset_s: float
    apex_s: float
    offset_s: float
    objective_class: str = "others"
    au_weights: tuple[float, ...] | None = None

    def __post_init__(self) -> None:
        if not self.aus:
            raise ValueError("a micro-expression needs at least one action unit")
        unknown = [au for au in self.aus if au not in ACTION_UNITS]
        if unknown:
            raise ValueError(f"unknown action units {unknown}; known: {sorted(ACTION_UNITS)}")
        if not 0.0 < self.amplitude < 0.2:
            raise ValueError(f"amplitude is a fraction of the face width in (0, 0.2), got {self.amplitude}")
        if not self.onset_s < self.apex_s < self.offset_s:
            raise ValueError(f"times need onset < apex < offset, got {self.onset_s}, {self.apex_s}, {self.offset_s}")
        _check_class(self.objective_class)
        if self.au_weights is not None and (
            len(self.au_weights) != len(self.aus) or min(self.au_weights) <= 0
        ):
            raise ValueError(f"au_weights must be positive, one per AU {self.aus}, got {self.au_weights}")

    @property
    def weights(self) -> tuple[float, ...]:
        return self.au_weights if self.au_weights is not None else tuple(1.0 for _ in self.aus)

    def frame_timing(self, fps: float) -> FrameTiming:
        """Onset, apex and offset frames at `fps` (frame k is at time k / fps)."""
        _check_fps(fps)
        return FrameTiming(*(int(round(t * fps)) for t in (self.onset_s, self.apex_s, self.offset_s)))

    def to_dict(self) -> dict:
        return {
            "aus": list(self.aus), "amplitude": self.amplitude, "onset_s": self.onset_s, "apex_s": self.apex_s,
            "offset_s": self.offset_s, "objective_class": self.objective_class, "au_weights": list(self.weights),
        }

    @classmethod
    def from_dict(cls, data: Mapping) -> MicroExpression:
        return cls(
            aus=tuple(int(au) for au in data["aus"]), amplitude=float(data["amplitude"]),
            onset_s=float(data["onset_s"]), apex_s=float(data["apex_s"]), offset_s=float(data["offset_s"]),
            objective_class=str(data["objective_class"]),
            au_weights=tuple(float(w) for w in data["au_weights"]),
        )


@dataclass(frozen=True)
class Blink:
    """An eye blink (FACS AU 45): both upper eyelids slide down to `closure` (1 = shut) at the apex and open again.

    Times are seconds from frame 0 of the rendering; the lid follows the raised-cosine profile of `FrameTiming`.
    """

    onset_s: float
    apex_s: float
    offset_s: float
    closure: float = 1.0

    def __post_init__(self) -> None:
        if not self.onset_s < self.apex_s < self.offset_s:
            raise ValueError(f"blink times need onset < apex < offset, got {self.onset_s}, {self.apex_s}, "
                             f"{self.offset_s}")
        if not 0.0 < self.closure <= 1.0:
            raise ValueError(f"blink closure is the closed fraction of the eye in (0, 1], got {self.closure}")

    def frame_timing(self, fps: float) -> FrameTiming:
        """Onset, apex (eyes most closed) and offset frames at `fps`."""
        return FrameTiming.from_seconds(self.onset_s, self.apex_s, self.offset_s, fps)

    def to_dict(self) -> dict:
        return {"onset_s": self.onset_s, "apex_s": self.apex_s, "offset_s": self.offset_s, "closure": self.closure}

    @classmethod
    def from_dict(cls, data: Mapping) -> Blink:
        return cls(onset_s=float(data["onset_s"]), apex_s=float(data["apex_s"]), offset_s=float(data["offset_s"]),
                   closure=float(data["closure"]))


def sample_expression(
    rng: np.random.Generator,
    objective_class: str,
    fps: float,
    onset_frame: int,
    amplitude: tuple[float, float] = DEFAULT_AMPLITUDE,
    duration_s: tuple[float, float] = DEFAULT_DURATION_S,
) -> MicroExpression:
    """Sample a micro-expression of a class starting at `onset_frame`, with whole-frame onset/apex/offset.

    The onset-to-offset duration is drawn within `duration_s` (rounded inwards to whole frames) and the
    apex falls 30-70 % of the way through; the amplitude is drawn uniformly within `amplitude`.
    """
    _check_class(objective_class)
    _check_fps(fps)
    _check_range("amplitude", amplitude, 0.0, 0.2)
    _check_range("duration_s", duration_s, 0.0, 60.0)
    shortest, longest = int(np.ceil(duration_s[0] * fps - 1e-9)), int(np.floor(duration_s[1] * fps + 1e-9))
    shortest = max(shortest, 2)
    if longest < shortest:
        raise ValueError(f"duration_s {duration_s} at {fps} fps leaves no room for onset < apex < offset")
    length = int(rng.integers(shortest, longest + 1))
    apex_step = int(np.clip(round(rng.uniform(*APEX_POSITION) * length), 1, length - 1))
    combos = CLASS_AU_COMBINATIONS[objective_class]
    aus = combos[int(rng.integers(len(combos)))]
    weights = tuple(float(w) for w in rng.uniform(*AU_WEIGHT_RANGE, size=len(aus)))
    return MicroExpression(
        aus=aus,
        amplitude=float(rng.uniform(*amplitude)),
        onset_s=onset_frame / fps,
        apex_s=(onset_frame + apex_step) / fps,
        offset_s=(onset_frame + length) / fps,
        objective_class=objective_class,
        au_weights=weights,
    )


def unit_displacement_field(face: FaceModel, expression: MicroExpression, size: int) -> np.ndarray:
    """The expression's displacement field (size, size, 2) as (dx, dy), scaled to a peak magnitude of 1."""
    centres = (np.arange(size, dtype=np.float32) + 0.5) / size
    x, y = np.meshgrid(centres, centres)
    anchors = face.anchors()
    midline = face.centre[0]
    field = np.zeros((size, size, 2), np.float32)
    for au, weight in zip(expression.aus, expression.weights):
        for component in ACTION_UNITS[au].components:
            for anchor in _component_anchors(component):
                ax, ay = anchors[anchor]
                lateral = -1.0 if ax < midline else 1.0
                direction = np.array([lateral * component.direction[0], component.direction[1]], np.float32)
                direction /= np.linalg.norm(direction)
                sigma = component.sigma * face.face_width
                bump = np.exp(-((x - ax) ** 2 + (y - ay) ** 2) / (2 * sigma**2))
                field += weight * bump[..., None] * direction
    peak = float(np.sqrt((field**2).sum(-1)).max())
    if peak <= 0:
        raise ValueError(f"expression {expression.aus} produced no displacement at size {size}")
    return field / peak


def _component_anchors(component: AUComponent) -> tuple[str, ...]:
    if component.bilateral:
        return (f"{component.anchor}_l", f"{component.anchor}_r")
    return (component.anchor,)


def _check_class(objective_class: str) -> None:
    if objective_class not in CLASS_AU_COMBINATIONS:
        raise ValueError(f"unknown class {objective_class!r}; expected one of {CLASSES}")


def _check_fps(fps: float) -> None:
    if not np.isfinite(fps) or fps <= 0:
        raise ValueError(f"fps must be a positive number, got {fps!r}")


def _check_range(name: str, bounds: tuple[float, float], low: float, high: float) -> None:
    if len(bounds) != 2 or not low < bounds[0] <= bounds[1] <= high:
        raise ValueError(f"{name} must be (min, max) with {low} < min <= max <= {high}, got {bounds}")
