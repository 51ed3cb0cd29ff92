"""Perception core: RGB-D frames with instance masks and a pose in, object observations out (no rclpy)."""

from __future__ import annotations

from karma_memory.core.perception.builder import SceneGraphBuilder, extract_detections
from karma_memory.core.perception.config import (
    THOR_CONTAINER_TYPES,
    THOR_HANGER_TYPES,
    THOR_MOVABLE_TYPES,
    THOR_OPEN_TOP_TYPES,
    THOR_RECEPTACLE_TYPES,
    PerceptionConfig,
)
from karma_memory.core.perception.geometry import Box, thor_camera_pose
from karma_memory.core.perception.relations import BoxedObject, RelationIndex, infer_relations, support_of
from karma_memory.core.perception.states import (
    MetadataStateEstimator,
    ObjectInView,
    StateEstimate,
    StateEstimator,
    VLMStateEstimator,
    build_state_prompt,
    parse_state_reply,
)
from karma_memory.core.perception.tracking import Detection, Track, associate
from karma_memory.core.perception.validation import check_rigid, pose_matrix, validate_frame

__all__ = [
    "SceneGraphBuilder",
    "PerceptionConfig",
    "THOR_CONTAINER_TYPES",
    "THOR_HANGER_TYPES",
    "THOR_MOVABLE_TYPES",
    "THOR_OPEN_TOP_TYPES",
    "THOR_RECEPTACLE_TYPES",
    "Box",
    "BoxedObject",
    "RelationIndex",
    "Detection",
    "Track",
    "associate",
    "extract_detections",
    "infer_relations",
    "support_of",
    "thor_camera_pose",
    "MetadataStateEstimator",
    "ObjectInView",
    "StateEstimate",
    "StateEstimator",
    "VLMStateEstimator",
    "build_state_prompt",
    "parse_state_reply",
    "check_rigid",
    "pose_matrix",
    "validate_frame",
]
