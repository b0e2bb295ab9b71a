"""What a recognition method reads: :class:`InputSpec`, one per tensor its network takes."""
from __future__ import annotations

from dataclasses import dataclass

INPUT_KINDS = ("pair", "apex", "flow", "sequence", "flow_sequence", "regions", "precomputed")
FLOW_CHANNELS = ("u", "v", "strain", "magnitude", "grey")
REGIONS = ("eyes", "mouth")


@dataclass(frozen=True)
class InputSpec:
    """One input tensor of a method, produced once per sample by the input layer and cached.

    kind: ``pair`` (onset, apex frames), ``apex`` (the apex frame), ``flow`` (onset→apex optical flow),
    ``sequence`` (the clip from onset to offset resampled to ``length`` frames), ``flow_sequence`` (flows between
    consecutive frames of that sequence), ``regions`` (a landmark crop ``region`` of the sequence),
    ``precomputed`` (flow or apex images supplied by the user). size: square side in pixels. channels: for
    ``flow``/``flow_sequence`` a subset of :data:`FLOW_CHANNELS` in order; for images ``("grey",)`` or
    ``("r", "g", "b")``. length: frames T of the sequence kinds.
    """

    kind: str
    size: int
    channels: tuple[str, ...] = ("grey",)
    length: int = 0
    region: str = ""

    def __post_init__(self) -> None:
        if self.kind not in INPUT_KINDS:
            raise ValueError(f"input kind must be one of {INPUT_KINDS}, got {self.kind!r}")
        if not isinstance(self.size, int) or self.size < 1:
            raise ValueError(f"input size must be a positive integer, got {self.size!r}")
        object.__setattr__(self, "channels", tuple(self.channels))
        if self.kind in ("flow", "flow_sequence"):
            unknown = sorted(set(self.channels) - set(FLOW_CHANNELS))
            if unknown or not self.channels:
                raise ValueError(f"flow channels must be drawn from {FLOW_CHANNELS}, got {self.channels}")
        elif self.channels not in (("grey",), ("r", "g", "b")):
            raise ValueError(f"image channels must be ('grey',) or ('r', 'g', 'b'), got {self.channels}")
        if self.kind in ("sequence", "flow_sequence", "regions") and self.length < 2:
            raise ValueError(f"a {self.kind} input needs length >= 2 frames, got {self.length}")
        if self.kind == "regions" and self.region not in REGIONS:
            raise ValueError(f"regions input: region must be one of {REGIONS}, got {self.region!r}")

    def resized(self, size: int) -> InputSpec:
        """The same input at another side length (quick runs at a small ``--set`` size)."""
        return InputSpec(self.kind, size, self.channels, self.length, self.region)
