"""Synthetic micro-expressions: procedural faces, AU displacement fields, nuisances, on-disk datasets.

In memory::

    face = SyntheticFace.sample(7)
    expression = sample_expression(np.random.default_rng(0), "positive", fps=200, onset_frame=5)
    clip = render_clip(face, expression, fps=200, n_frames=60, size=64)   # clip.frames (T, H, W, 3) uint8
    pair = make_pair(face, expression, 5, expression.frame_timing(200).apex, fps=200, size=64)

On disk (`micronbert synth`): `write_synthetic_dataset(out_dir, SynthConfig(...))`.
"""
from __future__ import annotations

from .actions import (
    ACTION_UNITS,
    CASME2_EMOTION_BY_CLASS,
    CLASS_AU_COMBINATIONS,
    CLASSES,
    DEFAULT_AMPLITUDE,
    ActionUnit,
    AUComponent,
    FrameTiming,
    MicroExpression,
    casme2_emotion,
    format_action_units,
    sample_expression,
    unit_displacement_field,
)
from .config import SynthConfig
from .faces import ANCHOR_NAMES, IBUG_ANCHORS, FaceLayers, FaceModel, PhotoFace, SyntheticFace
from .long import LongVideoConfig, LongVideoDataset, read_long_ground_truth, write_long_videos
from .nuisance import Background, HeadPose, NuisanceConfig, NuisanceTrack, jpeg_roundtrip
from .render import FramePair, RenderedClip, Scene, make_pair, render_clip
from .writers import (
    CODING_COLUMNS,
    CODING_SHEET,
    SyntheticDataset,
    read_clip_masks,
    render_nuisance,
    scene_from_ground_truth,
    video_codec,
    write_coding_sheet,
    write_synthetic_dataset,
)

__all__ = [
    "ACTION_UNITS", "ANCHOR_NAMES", "AUComponent", "ActionUnit", "Background", "CASME2_EMOTION_BY_CLASS", "CLASSES",
    "CLASS_AU_COMBINATIONS", "CODING_COLUMNS", "CODING_SHEET", "DEFAULT_AMPLITUDE", "FaceLayers", "FaceModel",
    "FramePair", "FrameTiming", "HeadPose", "IBUG_ANCHORS", "LongVideoConfig", "LongVideoDataset", "MicroExpression",
    "NuisanceConfig", "NuisanceTrack", "PhotoFace", "RenderedClip", "Scene", "SynthConfig", "SyntheticDataset",
    "SyntheticFace", "casme2_emotion", "format_action_units", "jpeg_roundtrip", "make_pair", "read_clip_masks",
    "read_long_ground_truth", "render_clip", "render_nuisance", "sample_expression", "scene_from_ground_truth",
    "unit_displacement_field", "video_codec", "write_coding_sheet", "write_long_videos", "write_synthetic_dataset",
]
