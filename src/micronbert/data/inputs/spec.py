"""What a recognition method reads: :class:`InputSpec`, one per tensor its network takes."""
from __future__ import annotations

from dataclasses import dataclass

INPUT_KINDS = ("pair", "apex", "flow", "sequence", "flow_sequence", "flow_cells", "regions", "precomputed")
FLOW_CHANNELS = ("u", "v", "strain", "magnitude", "angle", "grey")
FLOW_CELL_CHANNELS = ("angle", "magnitude")
IMAGE_CHANNELS = (("grey",), ("r", "g", "b"))
REGIONS = ("eyes", "mouth")
FLOW_KINDS = ("flow", "flow_sequence", "flow_cells")
SEQUENCE_KINDS = ("sequence", "flow_sequence", "flow_cells", "regions")


@dataclass(frozen=True)
class InputSpec:
    """One input tensor of a method, produced once per sample by the input layer and cached.

    Kinds and the layout of one sample's tensor (the input layer stacks samples in front, as float32):

    - ``pair``: the onset and apex frames, (2·C, H, W): the onset's channels, then the apex's.
    - ``apex``: the apex frame, (C, H, W).
    - ``flow``: onset→apex optical flow, (C, H, W), channels a subset of :data:`FLOW_CHANNELS` in any order
      (``u``, ``v``, optical ``strain``, ``magnitude``, ``angle`` of the flow vector, ``grey`` apex).
    - ``sequence``: the clip from onset to offset resampled to ``length`` frames T, (C, T, H, W).
    - ``flow_sequence``: the flows between consecutive frames of the clip resampled to T + 1 frames, T =
      ``length`` steps, (T, C, H, W).
    - ``flow_cells`` (ATNet): per step of consecutive-frame flow from onset to offset, and per cell of a
      ``size``×``size`` grid, the ``angle`` of the mean flow vector and the mean ``magnitude``, (T, C, G, G) with
      T = ``length`` steps (right-aligned, zero-padded at the front).
    - ``regions``: the ``region`` crop (``eyes`` or ``mouth``, i.e. nose–mouth) of every frame of the resampled
      sequence, (C, T, H, W).
    - ``precomputed``: the sample's image supplied by the user (the table's ``image`` column, e.g. a flow or apex
      image), used as it is, resized to ``size``: (C, H, W).

    size: square side in pixels (the grid side G for ``flow_cells``). channels: for images, sequences and
    regions ``("grey",)`` or ``("r", "g", "b")``; for ``flow`` and ``flow_sequence`` a subset of
    :data:`FLOW_CHANNELS`; for ``flow_cells`` a subset of :data:`FLOW_CELL_CHANNELS`.

    Values: image kinds hold pixel values 0–255. Every flow kind is min–max scaled per channel to 0–255 (float),
    as STSTNet's flow images (:func:`micronbert.data.flow.flow_features`), over the whole sample: the image of
    ``flow``, all T steps of ``flow_sequence`` and all valid steps of ``flow_cells`` (its padded steps stay 0).
    A channel without range becomes 0.
    """

    kind: str
    size: int
    channels: tuple[str, ...] = ("grey",)
    length: int = 0
    region: str = ""

    def __post_init__(self) -> None:
        if self.kind not in INPUT_KINDS:
            raise ValueError(f"input kind must be one of {INPUT_KINDS}, got {self.kind!r}")
        if isinstance(self.size, bool) or not isinstance(self.size, int) or self.size < 1:
            raise ValueError(f"input size must be a positive integer, got {self.size!r}")
        object.__setattr__(self, "channels", tuple(self.channels))
        self._check_channels()
        if self.kind in SEQUENCE_KINDS:
            shortest = 1 if self.kind in FLOW_KINDS else 2
            if isinstance(self.length, bool) or not isinstance(self.length, int) or self.length < shortest:
                raise ValueError(f"a {self.kind} input needs length >= {shortest} "
                                 f"{'steps' if shortest == 1 else 'frames'}, got {self.length!r}")
        if self.kind == "regions" and self.region not in REGIONS:
            raise ValueError(f"regions input: region must be one of {REGIONS}, got {self.region!r}")

    def _check_channels(self) -> None:
        allowed = {"flow": FLOW_CHANNELS, "flow_sequence": FLOW_CHANNELS, "flow_cells": FLOW_CELL_CHANNELS}
        if self.kind in allowed:
            names = allowed[self.kind]
            unknown = sorted(set(self.channels) - set(names))
            if unknown or not self.channels or len(set(self.channels)) != len(self.channels):
                raise ValueError(f"{self.kind} channels must be distinct names drawn from {names}, "
                                 f"got {self.channels}")
        elif self.channels not in IMAGE_CHANNELS:
            raise ValueError(f"image channels must be ('grey',) or ('r', 'g', 'b'), got {self.channels}")

    def resized(self, size: int, length: int | None = None) -> InputSpec:
        """The same input at another side length (quick runs at a small ``--set`` size) and, for the kinds with a
        length (:data:`SEQUENCE_KINDS`), another number of frames or steps; ``length`` is ignored by the others."""
        new_length = length if length is not None and self.kind in SEQUENCE_KINDS else self.length
        return InputSpec(self.kind, size, self.channels, new_length, self.region)

    def describe(self) -> str:
        """A stable one-line text of every field (used in cache keys and reports)."""
        return (f"kind={self.kind}|size={self.size}|channels={','.join(self.channels)}|length={self.length}"
                f"|region={self.region}")
