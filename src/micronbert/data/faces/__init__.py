"""Faces: detection backends, alignment of a clip from its onset frame, and the cache of aligned crops."""
from __future__ import annotations

from micronbert.data.faces.align import (
    AlignConfig,
    AlignedClip,
    Alignment,
    FaceAligner,
    FaceAlignmentError,
    FaceNotFoundError,
    MultipleFacesError,
    align_clip,
    similarity_from_eyes,
)
from micronbert.data.faces.backends import (
    CascadeConfig,
    FaceBackend,
    FaceDetection,
    LandmarkBackend,
    OpenCVCascadeBackend,
    landmark_backend_available,
    make_backend,
    typical_eyes,
)
from micronbert.data.faces.tracking import (
    FaceTrack,
    FaceTrackConfig,
    NoFaceError,
    TrackedFrame,
    TrackSummary,
    crops_at,
    read_face_clip,
    require_face,
    track_face,
)

__all__ = ["AlignConfig", "AlignedClip", "Alignment", "CascadeConfig", "FaceAligner", "FaceAlignmentError",
           "FaceBackend", "FaceDetection", "FaceNotFoundError", "FaceTrack", "FaceTrackConfig", "LandmarkBackend",
           "MultipleFacesError", "NoFaceError", "OpenCVCascadeBackend", "TrackSummary", "TrackedFrame", "align_clip",
           "crops_at", "landmark_backend_available", "make_backend", "read_face_clip", "require_face",
           "similarity_from_eyes", "track_face", "typical_eyes"]
