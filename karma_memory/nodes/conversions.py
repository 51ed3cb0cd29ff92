"""Pure conversions between ROS messages and karma_memory core records (no Node, no spinning).

Every message position is in the REP-103 ``map`` frame; every core position is in the AI2-THOR
world frame. The two are related by :mod:`karma_memory.core.frames`. Functions that read a message
validate it and raise a typed error from :mod:`karma_memory.core.errors` naming the offending value,
so a node can turn bad input into a log line or a failure response at its callback boundary:

- observations: :class:`~karma_memory.core.errors.InvalidObservationError`
- camera images, intrinsics and poses: :class:`~karma_memory.core.errors.InvalidFrameError`
- skills: :class:`~karma_memory.core.errors.PlanValidationError`
"""

from __future__ import annotations

import json
import math
import sys
from dataclasses import dataclass
from typing import Any, Iterable, Mapping, NamedTuple, Sequence

import numpy as np
from builtin_interfaces.msg import Time
from geometry_msgs.msg import Point, Pose, PoseStamped, Quaternion, Vector3
from karma_interfaces.action import ExecuteSkill
from karma_interfaces.msg import InstanceLabels
from karma_interfaces.msg import ObjectObservation as ObjectObservationMsg
from karma_interfaces.msg import ObjectObservationArray
from karma_interfaces.msg import Relation as RelationMsg
from karma_interfaces.msg import StepReport
from sensor_msgs.msg import CameraInfo, Image
from std_msgs.msg import Header

from karma_memory.core.errors import InvalidFrameError, InvalidObservationError, PlanValidationError
from karma_memory.core.frames import MAP_FROM_THOR, THOR_FROM_MAP, map_pose_to_thor, thor_pose_to_map
from karma_memory.core.skills import SkillCall, SkillCost, SkillResult, validate_call
from karma_memory.core.types import (
    CameraFrame,
    CameraIntrinsics,
    InstanceLabel,
    ObjectObservation,
    ObservationKind,
    Relation,
    Vec3,
)

__all__ = [
    "MAP_FRAME",
    "Limits",
    "DEFAULT_LIMITS",
    "CameraMessages",
    "seconds_to_stamp",
    "stamp_to_seconds",
    "thor_to_point",
    "point_to_thor",
    "thor_size_to_vector3",
    "vector3_to_thor_size",
    "observation_to_msg",
    "observation_from_msg",
    "observations_to_msg",
    "observations_from_msg",
    "rgb_to_image",
    "image_to_rgb",
    "depth_to_image",
    "image_to_depth",
    "instances_to_image",
    "image_to_instances",
    "labels_to_msg",
    "labels_from_msg",
    "intrinsics_to_camera_info",
    "camera_info_to_intrinsics",
    "world_from_camera_to_pose",
    "pose_to_world_from_camera",
    "camera_frame_to_msgs",
    "camera_frame_from_msgs",
    "skill_call_to_goal",
    "skill_goal_to_call",
    "skill_result_to_msg",
    "skill_result_from_msg",
    "step_report_to_msg",
    "step_report_from_msg",
]

#: The fixed frame of every position in karma_interfaces messages (REP-103/REP-105).
MAP_FRAME = "map"

_INT32_MAX = 2**31 - 1
_UINT32_MAX = 2**32 - 1


@dataclass(frozen=True)
class Limits:
    """Upper bounds on incoming messages, so one malformed or hostile message cannot exhaust memory.

    Attributes:
        max_states: states per observation (the vocabulary has 12).
        max_relations: relations per observation.
        max_observations: observations per ObjectObservationArray.
        max_string: characters in an id, type, source or robot id.
        max_instances: labelled instances per frame.
        max_image_side: pixels along either image side.
        max_args_json: characters of a skill's args_json.
        quaternion_tolerance: allowed | |q| - 1 | before a pose is rejected as non-unit.
    """

    max_states: int = 16
    max_relations: int = 64
    max_observations: int = 10_000
    max_string: int = 512
    max_instances: int = 65_536
    max_image_side: int = 8_192
    max_args_json: int = 65_536
    quaternion_tolerance: float = 1e-3


DEFAULT_LIMITS = Limits()

_KIND_TO_MSG: dict[ObservationKind, int] = {
    ObservationKind.SEEN: ObjectObservationMsg.SEEN,
    ObservationKind.ADDED: ObjectObservationMsg.ADDED,
    ObservationKind.MOVED: ObjectObservationMsg.MOVED,
    ObservationKind.STATE_CHANGED: ObjectObservationMsg.STATE_CHANGED,
    ObservationKind.REMOVED: ObjectObservationMsg.REMOVED,
}
_KIND_FROM_MSG: dict[int, ObservationKind] = {v: k for k, v in _KIND_TO_MSG.items()}


# ---------------------------------------------------------------------------------------------- stamps


def seconds_to_stamp(seconds: float) -> Time:
    """A builtin_interfaces/Time for ``seconds`` (sim or ROS time), rounded to the nanosecond.

    Raises:
        InvalidObservationError: the value is not finite or does not fit an int32 of seconds.

    >>> seconds_to_stamp(12.5)
    builtin_interfaces.msg.Time(sec=12, nanosec=500000000)
    """
    try:
        value = float(seconds)
    except (TypeError, ValueError) as err:
        raise InvalidObservationError(f"stamp must be a number of seconds, got {seconds!r}") from err
    if not math.isfinite(value):
        raise InvalidObservationError(f"stamp must be finite, got {value!r}")
    sec = math.floor(value)
    nanosec = int(round((value - sec) * 1e9))
    if nanosec >= 1_000_000_000:  # rounding carried into the next second
        sec, nanosec = sec + 1, nanosec - 1_000_000_000
    if not -_INT32_MAX - 1 <= sec <= _INT32_MAX:
        raise InvalidObservationError(f"stamp {value!r} s does not fit builtin_interfaces/Time")
    return Time(sec=int(sec), nanosec=nanosec)


def stamp_to_seconds(stamp: Time) -> float:
    """Seconds of a builtin_interfaces/Time.

    Raises:
        InvalidObservationError: nanosec is not below 1e9 (a malformed stamp).

    >>> stamp_to_seconds(Time(sec=3, nanosec=250000000))
    3.25
    """
    if stamp.nanosec >= 1_000_000_000:
        raise InvalidObservationError(f"stamp nanosec must be < 1e9, got {stamp.nanosec}")
    return stamp.sec + stamp.nanosec / 1e9


def _header(stamp: float, frame_id: str, error: type[Exception] = InvalidObservationError) -> Header:
    try:
        return Header(stamp=seconds_to_stamp(stamp), frame_id=frame_id)
    except InvalidObservationError as err:
        if error is InvalidObservationError:
            raise
        raise error(str(err)) from err


def _stamp_seconds(stamp: Time, error: type[Exception]) -> float:
    try:
        return stamp_to_seconds(stamp)
    except InvalidObservationError as err:
        if error is InvalidObservationError:
            raise
        raise error(str(err)) from err


# ---------------------------------------------------------------------------------- points and sizes


def _finite3(values: Iterable[float], what: str, error: type[Exception]) -> Vec3:
    x, y, z = (float(v) for v in values)
    if not all(math.isfinite(v) for v in (x, y, z)):
        raise error(f"{what} must be finite, got {(x, y, z)!r}")
    return (x, y, z)


def thor_to_point(position: Sequence[float]) -> Point:
    """A geometry_msgs/Point in the map frame for a THOR-world position.

    >>> thor_to_point((1.0, 2.0, 3.0))
    geometry_msgs.msg.Point(x=3.0, y=-1.0, z=2.0)
    """
    x, y, z = (float(v) for v in MAP_FROM_THOR @ np.asarray(position, dtype=float))
    return Point(x=x, y=y, z=z)


def point_to_thor(point: Point, what: str = "position") -> Vec3:
    """The THOR-world position of a map-frame Point.

    Raises:
        InvalidObservationError: a coordinate is NaN or infinite (named by ``what``).
    """
    mx, my, mz = _finite3((point.x, point.y, point.z), f"{what} (map frame)", InvalidObservationError)
    x, y, z = (float(v) for v in THOR_FROM_MAP @ np.array([mx, my, mz]))
    return (x, y, z)


def thor_size_to_vector3(size: Sequence[float]) -> Vector3:
    """Axis-aligned extents (dx, dy, dz) in THOR → extents along map x, y, z (non-negative).

    >>> thor_size_to_vector3((0.1, 0.2, 0.3))
    geometry_msgs.msg.Vector3(x=0.3, y=0.1, z=0.2)
    """
    x, y, z = (float(v) for v in np.abs(MAP_FROM_THOR @ np.asarray(size, dtype=float)))
    return Vector3(x=x, y=y, z=z)


def vector3_to_thor_size(vector: Vector3, what: str = "size") -> Vec3:
    """Extents along map x, y, z → THOR axis-aligned extents (dx, dy, dz).

    Raises:
        InvalidObservationError: an extent is NaN, infinite or negative.
    """
    sx, sy, sz = _finite3((vector.x, vector.y, vector.z), f"{what} (map frame)", InvalidObservationError)
    if min(sx, sy, sz) < 0:
        raise InvalidObservationError(f"{what} (map frame) must be non-negative, got {(sx, sy, sz)!r}")
    x, y, z = (float(v) for v in np.abs(THOR_FROM_MAP @ np.array([sx, sy, sz])))
    return (x, y, z)


# ------------------------------------------------------------------------------------- observations


def _check_string(value: str, what: str, limits: Limits, *, required: bool = False) -> str:
    if len(value) > limits.max_string:
        raise InvalidObservationError(f"{what} is {len(value)} characters long; the limit is {limits.max_string}")
    if required and not value.strip():
        raise InvalidObservationError(f"{what} must be a non-empty string, got {value!r}")
    return value


def _check_frame(frame_id: str, what: str, error: type[Exception]) -> None:
    if frame_id != MAP_FRAME:
        raise error(f"{what} has frame_id {frame_id!r}; expected {MAP_FRAME!r}")


def observation_to_msg(obs: ObjectObservation) -> ObjectObservationMsg:
    """Convert a core observation (THOR frame) to an ObjectObservation message (map frame).

    The header stamp is ``obs.stamp`` and the frame is ``map``.
    """
    msg = ObjectObservationMsg()
    msg.header = _header(obs.stamp, MAP_FRAME)
    msg.robot_id = obs.robot_id
    msg.object_id = obs.object_id
    msg.object_type = obs.object_type
    msg.kind = _KIND_TO_MSG[obs.kind]
    msg.position = thor_to_point(obs.position)
    if obs.size is not None:
        msg.size = thor_size_to_vector3(obs.size)
        msg.has_size = True
    else:
        msg.has_size = False
    msg.states = list(obs.states)
    msg.relations = [RelationMsg(predicate=r.predicate, target_id=r.target_id) for r in obs.relations]
    msg.movable = bool(obs.movable)
    msg.source = obs.source
    msg.confidence = float(obs.confidence)
    return msg


def observation_from_msg(msg: ObjectObservationMsg, limits: Limits = DEFAULT_LIMITS) -> ObjectObservation:
    """Convert and validate an ObjectObservation message (map frame) into a core observation (THOR frame).

    Args:
        msg: the message; its header.frame_id must be ``map``.
        limits: bounds on array and string sizes.

    Raises:
        InvalidObservationError: wrong frame, NaN or infinite position/size, empty or oversized id,
            unknown kind, state or relation, too many states or relations, confidence outside [0, 1].
    """
    object_id = _check_string(msg.object_id, "object_id", limits, required=True)
    where = f"observation of {object_id!r}"
    _check_frame(msg.header.frame_id, where, InvalidObservationError)
    _check_string(msg.object_type, f"object_type of {object_id!r}", limits, required=True)
    _check_string(msg.robot_id, f"robot_id of {where}", limits)
    _check_string(msg.source, f"source of {where}", limits)
    if msg.kind not in _KIND_FROM_MSG:
        raise InvalidObservationError(f"{where} has unknown kind {msg.kind}; expected 0..{len(_KIND_FROM_MSG) - 1}")
    if len(msg.states) > limits.max_states:
        raise InvalidObservationError(f"{where} has {len(msg.states)} states; the limit is {limits.max_states}")
    if len(msg.relations) > limits.max_relations:
        raise InvalidObservationError(
            f"{where} has {len(msg.relations)} relations; the limit is {limits.max_relations}")
    for rel in msg.relations:
        _check_string(rel.target_id, f"relation target of {where}", limits)
    size = vector3_to_thor_size(msg.size, f"size of {object_id!r}") if msg.has_size else None
    return ObjectObservation(
        object_id=object_id,
        object_type=msg.object_type,
        position=point_to_thor(msg.position, f"position of {object_id!r}"),
        kind=_KIND_FROM_MSG[msg.kind],
        size=size,
        states=tuple(msg.states),
        relations=tuple(Relation(r.predicate, r.target_id) for r in msg.relations),
        movable=bool(msg.movable),
        stamp=stamp_to_seconds(msg.header.stamp),
        source=msg.source,
        robot_id=msg.robot_id,
        # float32 on the wire: 0.9 comes back as 0.89999998; six decimals undo that.
        confidence=round(float(msg.confidence), 6),
    )


def observations_to_msg(observations: Iterable[ObjectObservation],
                        stamp: float | None = None) -> ObjectObservationArray:
    """Bundle observations into one ObjectObservationArray.

    Args:
        observations: core observations (THOR frame).
        stamp: time of the frame they come from; defaults to the latest observation stamp (0 if none).
    """
    items = [observation_to_msg(o) for o in observations]
    if stamp is None:
        stamp = max((stamp_to_seconds(m.header.stamp) for m in items), default=0.0)
    return ObjectObservationArray(header=_header(stamp, MAP_FRAME), observations=items)


def observations_from_msg(msg: ObjectObservationArray, limits: Limits = DEFAULT_LIMITS) -> list[ObjectObservation]:
    """Convert and validate every observation of an ObjectObservationArray (all-or-nothing).

    Raises:
        InvalidObservationError: the array is not in the map frame, is longer than
            ``limits.max_observations``, or any element is invalid (the error names its index).
    """
    _check_frame(msg.header.frame_id, "observation array", InvalidObservationError)
    if len(msg.observations) > limits.max_observations:
        raise InvalidObservationError(
            f"observation array has {len(msg.observations)} elements; the limit is {limits.max_observations}")
    out = []
    for i, item in enumerate(msg.observations):
        try:
            out.append(observation_from_msg(item, limits))
        except InvalidObservationError as err:
            raise InvalidObservationError(f"observations[{i}]: {err}") from err
    return out


# ------------------------------------------------------------------------------------------- images

_RGB_ENCODINGS = {"rgb8": (3, (0, 1, 2)), "bgr8": (3, (2, 1, 0)), "rgba8": (4, (0, 1, 2)), "bgra8": (4, (2, 1, 0))}


def _image_msg(array: np.ndarray, encoding: str, stamp: float, frame_id: str) -> Image:
    array = np.ascontiguousarray(array)
    height, width = array.shape[:2]
    msg = Image()
    msg.header = _header(stamp, frame_id, InvalidFrameError)
    msg.height, msg.width = int(height), int(width)
    msg.encoding = encoding
    msg.is_bigendian = int(sys.byteorder == "big" and array.dtype.itemsize > 1)
    msg.step = int(array.strides[0])
    msg.data = array.tobytes()
    return msg


def _image_rows(msg: Image, channels: int, dtype: np.dtype, limits: Limits, what: str) -> np.ndarray:
    """The pixel array (H, W, C) of an Image message, honouring step padding and endianness."""
    h, w = msg.height, msg.width
    if not (0 < h <= limits.max_image_side and 0 < w <= limits.max_image_side):
        raise InvalidFrameError(f"{what} image is {w}x{h}; sides must be in 1..{limits.max_image_side}")
    dt = np.dtype(dtype).newbyteorder(">" if msg.is_bigendian else "<")
    row = w * channels * dt.itemsize
    if msg.step < row:
        raise InvalidFrameError(f"{what} image step {msg.step} is below width*pixel size {row}")
    if len(msg.data) < msg.step * h:
        raise InvalidFrameError(f"{what} image has {len(msg.data)} bytes; {msg.step}x{h} = {msg.step * h} expected")
    raw = np.frombuffer(msg.data, dtype=np.uint8, count=msg.step * h).reshape(h, msg.step)[:, :row]
    return np.ascontiguousarray(raw).view(dt).reshape(h, w, channels).astype(np.dtype(dtype), copy=False)


def rgb_to_image(rgb: np.ndarray, stamp: float = 0.0, frame_id: str = "camera_optical_frame") -> Image:
    """An ``rgb8`` sensor_msgs/Image from an (H, W, 3) uint8 array.

    Raises:
        InvalidFrameError: wrong shape or dtype.
    """
    rgb = np.asarray(rgb)
    if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8:
        raise InvalidFrameError(f"rgb must be an (H, W, 3) uint8 array, got {rgb.shape} {rgb.dtype}")
    return _image_msg(rgb, "rgb8", stamp, frame_id)


def image_to_rgb(msg: Image, limits: Limits = DEFAULT_LIMITS) -> np.ndarray:
    """(H, W, 3) uint8 RGB from an rgb8, bgr8, rgba8 or bgra8 Image (alpha dropped).

    Raises:
        InvalidFrameError: another encoding, or sizes that do not match the data.
    """
    if msg.encoding not in _RGB_ENCODINGS:
        raise InvalidFrameError(f"rgb image encoding {msg.encoding!r} unsupported; expected one of "
                                f"{sorted(_RGB_ENCODINGS)}")
    channels, order = _RGB_ENCODINGS[msg.encoding]
    pixels = _image_rows(msg, channels, np.uint8, limits, "rgb")
    return np.ascontiguousarray(pixels[:, :, list(order)])


def depth_to_image(depth: np.ndarray, stamp: float = 0.0, frame_id: str = "camera_optical_frame") -> Image:
    """A ``32FC1`` Image (metres along the optical axis; 0/NaN/inf = no return) from an (H, W) array.

    Raises:
        InvalidFrameError: wrong shape or a non-numeric dtype.
    """
    depth = np.asarray(depth)
    if depth.ndim != 2 or not np.issubdtype(depth.dtype, np.number):
        raise InvalidFrameError(f"depth must be an (H, W) numeric array, got {depth.shape} {depth.dtype}")
    return _image_msg(depth.astype(np.float32, copy=False), "32FC1", stamp, frame_id)


def image_to_depth(msg: Image, limits: Limits = DEFAULT_LIMITS) -> np.ndarray:
    """(H, W) float32 metres from a 32FC1 (metres) or 16UC1 (millimetres, as RGB-D drivers publish) Image.

    Raises:
        InvalidFrameError: another encoding, or sizes that do not match the data.
    """
    if msg.encoding == "32FC1":
        return _image_rows(msg, 1, np.float32, limits, "depth")[:, :, 0].copy()
    if msg.encoding in ("16UC1", "mono16"):
        return _image_rows(msg, 1, np.uint16, limits, "depth")[:, :, 0].astype(np.float32) / 1000.0
    raise InvalidFrameError(f"depth image encoding {msg.encoding!r} unsupported; expected '32FC1' or '16UC1'")


def instances_to_image(instances: np.ndarray, stamp: float = 0.0,
                       frame_id: str = "camera_optical_frame") -> Image:
    """A ``32SC1`` Image of instance ids (0 = background) from an (H, W) integer array.

    Raises:
        InvalidFrameError: wrong shape, a non-integer dtype, or ids outside int32.
    """
    instances = np.asarray(instances)
    if instances.ndim != 2 or not np.issubdtype(instances.dtype, np.integer):
        raise InvalidFrameError(f"instances must be an (H, W) integer array, got {instances.shape} {instances.dtype}")
    if instances.size and (instances.min() < -_INT32_MAX - 1 or instances.max() > _INT32_MAX):
        raise InvalidFrameError("instance ids must fit int32")
    return _image_msg(instances.astype(np.int32, copy=False), "32SC1", stamp, frame_id)


def image_to_instances(msg: Image, limits: Limits = DEFAULT_LIMITS) -> np.ndarray:
    """(H, W) int32 instance ids from a 32SC1 Image.

    Raises:
        InvalidFrameError: another encoding, or sizes that do not match the data.
    """
    if msg.encoding != "32SC1":
        raise InvalidFrameError(f"instance image encoding {msg.encoding!r} unsupported; expected '32SC1'")
    return _image_rows(msg, 1, np.int32, limits, "instance")[:, :, 0].copy()


def labels_to_msg(labels: Mapping[int, InstanceLabel], stamp: float = 0.0,
                  frame_id: str = "camera_optical_frame") -> InstanceLabels:
    """An InstanceLabels message (parallel arrays sorted by instance id) for an instance image.

    Raises:
        InvalidFrameError: an instance id is not a positive int32.
    """
    msg = InstanceLabels(header=_header(stamp, frame_id, InvalidFrameError))
    for iid in sorted(labels):
        if not 0 < int(iid) <= _INT32_MAX:
            raise InvalidFrameError(f"instance id {iid!r} must be a positive int32 (0 is background)")
        label = labels[iid]
        msg.instance_ids.append(int(iid))
        msg.object_types.append(label.object_type)
        msg.object_ids.append(label.object_id or "")
        msg.scores.append(float(label.score))
    return msg


def labels_from_msg(msg: InstanceLabels, limits: Limits = DEFAULT_LIMITS) -> dict[int, InstanceLabel]:
    """Instance id → label from an InstanceLabels message.

    Raises:
        InvalidFrameError: arrays of different lengths, too many instances, a non-positive or
            repeated id, an empty type, or a score outside [0, 1].
    """
    n = len(msg.instance_ids)
    if n > limits.max_instances:
        raise InvalidFrameError(f"instance labels list {n} instances; the limit is {limits.max_instances}")
    if len(msg.object_types) != n or len(msg.object_ids) != n or len(msg.scores) not in (0, n):
        raise InvalidFrameError(
            f"instance label arrays differ in length: {n} ids, {len(msg.object_types)} types, "
            f"{len(msg.object_ids)} object ids, {len(msg.scores)} scores")
    out: dict[int, InstanceLabel] = {}
    for i in range(n):
        iid = int(msg.instance_ids[i])
        if iid <= 0:
            raise InvalidFrameError(f"instance id {iid} must be positive (0 is background)")
        if iid in out:
            raise InvalidFrameError(f"instance id {iid} is labelled twice")
        object_type = msg.object_types[i]
        if not object_type.strip() or len(object_type) > limits.max_string:
            raise InvalidFrameError(f"instance {iid} has an invalid object type {object_type!r}")
        if len(msg.object_ids[i]) > limits.max_string:
            raise InvalidFrameError(f"instance {iid} has an object id longer than {limits.max_string}")
        score = round(float(msg.scores[i]), 6) if msg.scores else 1.0
        if not 0.0 <= score <= 1.0:
            raise InvalidFrameError(f"instance {iid} has score {score}; expected [0, 1]")
        out[iid] = InstanceLabel(object_type, msg.object_ids[i] or None, score)
    return out


# ------------------------------------------------------------------------------- intrinsics and pose


def intrinsics_to_camera_info(intrinsics: CameraIntrinsics, stamp: float = 0.0,
                              frame_id: str = "camera_optical_frame") -> CameraInfo:
    """A sensor_msgs/CameraInfo for an ideal pinhole camera (plumb_bob with zero distortion)."""
    k = intrinsics
    msg = CameraInfo(header=_header(stamp, frame_id, InvalidFrameError))
    msg.width, msg.height = int(k.width), int(k.height)
    msg.distortion_model = "plumb_bob"
    msg.d = [0.0] * 5
    msg.k = [k.fx, 0.0, k.cx, 0.0, k.fy, k.cy, 0.0, 0.0, 1.0]
    msg.r = [1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0]
    msg.p = [k.fx, 0.0, k.cx, 0.0, 0.0, k.fy, k.cy, 0.0, 0.0, 0.0, 1.0, 0.0]
    return msg


def camera_info_to_intrinsics(msg: CameraInfo, limits: Limits = DEFAULT_LIMITS, *,
                              ignore_distortion: bool = False) -> CameraIntrinsics:
    """CameraIntrinsics from a CameraInfo's K matrix.

    Perception assumes an undistorted pinhole camera, so non-zero distortion is rejected unless
    ``ignore_distortion`` (e.g. for a camera whose residual distortion is known to be negligible).

    Raises:
        InvalidFrameError: bad sizes, a K that is not a pinhole matrix with positive focal lengths,
            or non-zero distortion.
    """
    if not (0 < msg.width <= limits.max_image_side and 0 < msg.height <= limits.max_image_side):
        raise InvalidFrameError(f"camera_info size {msg.width}x{msg.height} out of 1..{limits.max_image_side}")
    k = [float(v) for v in msg.k]
    if not all(math.isfinite(v) for v in k):
        raise InvalidFrameError(f"camera_info K has non-finite entries: {k}")
    fx, skew, cx, _, fy, cy = k[0], k[1], k[2], k[3], k[4], k[5]
    if fx <= 0 or fy <= 0 or skew != 0 or k[3] != 0 or k[6:] != [0.0, 0.0, 1.0]:
        raise InvalidFrameError(f"camera_info K is not a pinhole matrix with positive focal lengths: {k}")
    if not ignore_distortion and any(abs(float(d)) > 1e-9 for d in msg.d):
        raise InvalidFrameError(f"camera_info has distortion {list(msg.d)}; perception needs rectified images")
    return CameraIntrinsics(int(msg.width), int(msg.height), fx, fy, cx, cy)


def _matrix_to_quaternion(r: np.ndarray) -> tuple[float, float, float, float]:
    """(x, y, z, w) of a proper rotation matrix (Shepperd's method, numerically stable)."""
    trace = r[0, 0] + r[1, 1] + r[2, 2]
    if trace > 0:
        s = 2.0 * math.sqrt(trace + 1.0)
        w, x, y, z = 0.25 * s, (r[2, 1] - r[1, 2]) / s, (r[0, 2] - r[2, 0]) / s, (r[1, 0] - r[0, 1]) / s
    elif r[0, 0] > r[1, 1] and r[0, 0] > r[2, 2]:
        s = 2.0 * math.sqrt(1.0 + r[0, 0] - r[1, 1] - r[2, 2])
        w, x, y, z = (r[2, 1] - r[1, 2]) / s, 0.25 * s, (r[0, 1] + r[1, 0]) / s, (r[0, 2] + r[2, 0]) / s
    elif r[1, 1] > r[2, 2]:
        s = 2.0 * math.sqrt(1.0 + r[1, 1] - r[0, 0] - r[2, 2])
        w, x, y, z = (r[0, 2] - r[2, 0]) / s, (r[0, 1] + r[1, 0]) / s, 0.25 * s, (r[1, 2] + r[2, 1]) / s
    else:
        s = 2.0 * math.sqrt(1.0 + r[2, 2] - r[0, 0] - r[1, 1])
        w, x, y, z = (r[1, 0] - r[0, 1]) / s, (r[0, 2] + r[2, 0]) / s, (r[1, 2] + r[2, 1]) / s, 0.25 * s
    if w < 0:  # one canonical sign
        w, x, y, z = -w, -x, -y, -z
    return float(x), float(y), float(z), float(w)


def _quaternion_to_matrix(x: float, y: float, z: float, w: float) -> np.ndarray:
    return np.array([
        [1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
        [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
        [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)],
    ])


def world_from_camera_to_pose(world_from_camera: np.ndarray, stamp: float = 0.0) -> PoseStamped:
    """PoseStamped (frame ``map``) of the camera optical frame, from CameraFrame.world_from_camera (THOR).

    Raises:
        InvalidFrameError: not a finite 4×4 rigid transform whose rotation is orthonormal with
            determinant -1 (THOR's left-handed world; see CameraFrame).
    """
    t = np.asarray(world_from_camera, dtype=float)
    if t.shape != (4, 4) or not np.all(np.isfinite(t)):
        raise InvalidFrameError(f"world_from_camera must be a finite 4x4 matrix, got shape {t.shape}")
    rot = t[:3, :3]
    if not np.allclose(rot @ rot.T, np.eye(3), atol=1e-6) or not np.allclose(t[3], [0, 0, 0, 1]):
        raise InvalidFrameError("world_from_camera is not a rigid transform (rotation not orthonormal)")
    if np.linalg.det(rot) > 0:
        raise InvalidFrameError("world_from_camera has determinant +1; a THOR-world pose has -1 (is it map-frame?)")
    m = thor_pose_to_map(t)
    x, y, z, w = _matrix_to_quaternion(m[:3, :3])
    pose = Pose()
    pose.position = Point(x=float(m[0, 3]), y=float(m[1, 3]), z=float(m[2, 3]))
    pose.orientation = Quaternion(x=x, y=y, z=z, w=w)
    return PoseStamped(header=_header(stamp, MAP_FRAME, InvalidFrameError), pose=pose)


def pose_to_world_from_camera(msg: PoseStamped, limits: Limits = DEFAULT_LIMITS) -> np.ndarray:
    """CameraFrame.world_from_camera (4×4, THOR) from a PoseStamped of the optical frame in ``map``.

    Raises:
        InvalidFrameError: wrong frame, non-finite values, or a quaternion whose norm differs from 1
            by more than ``limits.quaternion_tolerance`` (it is normalised when within).
    """
    _check_frame(msg.header.frame_id, "camera pose", InvalidFrameError)
    p, q = msg.pose.position, msg.pose.orientation
    values = [p.x, p.y, p.z, q.x, q.y, q.z, q.w]
    if not all(math.isfinite(v) for v in values):
        raise InvalidFrameError(f"camera pose has non-finite values: {values}")
    norm = math.sqrt(q.x * q.x + q.y * q.y + q.z * q.z + q.w * q.w)
    if abs(norm - 1.0) > limits.quaternion_tolerance:
        raise InvalidFrameError(f"camera pose quaternion {(q.x, q.y, q.z, q.w)} has norm {norm:.6f}; expected 1")
    m = np.eye(4)
    m[:3, :3] = _quaternion_to_matrix(q.x / norm, q.y / norm, q.z / norm, q.w / norm)
    m[:3, 3] = [p.x, p.y, p.z]
    return map_pose_to_thor(m)


# ------------------------------------------------------------------------------------ camera frames


class CameraMessages(NamedTuple):
    """The messages of one RGB-D frame, as the sim bridge publishes them (all with the same stamp)."""

    rgb: Image
    depth: Image
    instances: Image
    labels: InstanceLabels
    camera_info: CameraInfo
    pose: PoseStamped


def camera_frame_to_msgs(frame: CameraFrame) -> CameraMessages:
    """Split a core CameraFrame into its messages (images in ``frame.frame_id``, pose in ``map``).

    ``metadata_objects`` (simulator ground truth) is not carried: it is not sensor data.

    Raises:
        InvalidFrameError: an array has the wrong shape or dtype, or the pose is not a THOR pose.
    """
    h, w = np.asarray(frame.rgb).shape[:2]
    for name in ("depth", "instances"):
        if np.asarray(getattr(frame, name)).shape[:2] != (h, w):
            raise InvalidFrameError(f"{name} is {np.asarray(getattr(frame, name)).shape}, rgb is {(h, w)}")
    if (frame.intrinsics.width, frame.intrinsics.height) != (w, h):
        raise InvalidFrameError(f"intrinsics are {frame.intrinsics.width}x{frame.intrinsics.height}, images {w}x{h}")
    fid, t = frame.frame_id, frame.stamp
    return CameraMessages(
        rgb=rgb_to_image(frame.rgb, t, fid),
        depth=depth_to_image(frame.depth, t, fid),
        instances=instances_to_image(frame.instances, t, fid),
        labels=labels_to_msg(frame.labels, t, fid),
        camera_info=intrinsics_to_camera_info(frame.intrinsics, t, fid),
        pose=world_from_camera_to_pose(frame.world_from_camera, t),
    )


def camera_frame_from_msgs(rgb: Image, depth: Image, instances: Image, labels: InstanceLabels,
                           camera_info: CameraInfo, pose: PoseStamped, limits: Limits = DEFAULT_LIMITS, *,
                           ignore_distortion: bool = False) -> CameraFrame:
    """Assemble a core CameraFrame from synchronised messages (as perception receives them).

    Checks that the images, labels and camera info share one optical frame and one size, and that
    the labels belong to the instance image (same stamp). The frame's stamp is the RGB stamp.

    Raises:
        InvalidFrameError: any mismatch or invalid message, naming it.
    """
    fid = rgb.header.frame_id
    if not fid:
        raise InvalidFrameError("rgb image has an empty frame_id; expected the camera optical frame")
    for name, msg in (("depth", depth), ("instances", instances), ("labels", labels), ("camera_info", camera_info)):
        if msg.header.frame_id != fid:
            raise InvalidFrameError(f"{name} frame_id {msg.header.frame_id!r} differs from rgb's {fid!r} "
                                    "(depth must be registered to the colour camera)")
    if labels.header.stamp != instances.header.stamp:
        raise InvalidFrameError("instance labels stamp differs from the instance image's: they do not belong together")
    intrinsics = camera_info_to_intrinsics(camera_info, limits, ignore_distortion=ignore_distortion)
    rgb_px = image_to_rgb(rgb, limits)
    depth_px = image_to_depth(depth, limits)
    inst_px = image_to_instances(instances, limits)
    size = (intrinsics.height, intrinsics.width)
    for name, arr in (("rgb", rgb_px), ("depth", depth_px), ("instances", inst_px)):
        if arr.shape[:2] != size:
            raise InvalidFrameError(f"{name} image is {arr.shape[1]}x{arr.shape[0]}, camera_info says "
                                    f"{intrinsics.width}x{intrinsics.height}")
    return CameraFrame(
        rgb=rgb_px,
        depth=depth_px,
        instances=inst_px,
        labels=labels_from_msg(labels, limits),
        intrinsics=intrinsics,
        world_from_camera=pose_to_world_from_camera(pose, limits),
        stamp=_stamp_seconds(rgb.header.stamp, InvalidFrameError),
        frame_id=fid,
    )


# ------------------------------------------------------------------------------------------- skills


def _args_to_json(args: Mapping[str, Any]) -> str:
    return json.dumps({k: list(v) if isinstance(v, tuple) else v for k, v in args.items()}, sort_keys=True)


def _args_from_json(text: str, what: str, limits: Limits) -> dict[str, Any]:
    if len(text) > limits.max_args_json:
        raise PlanValidationError(f"{what}: args_json is {len(text)} characters; the limit is {limits.max_args_json}")
    if not text.strip():
        return {}
    try:
        args = json.loads(text)
    except json.JSONDecodeError as err:
        raise PlanValidationError(f"{what}: args_json is not JSON ({err.msg} at {err.pos}): {text[:80]!r}") from err
    if not isinstance(args, dict):
        raise PlanValidationError(f"{what}: args_json must be a JSON object, got {type(args).__name__}")
    return args


def skill_call_to_goal(call: SkillCall, known_types: Sequence[str] | None = None) -> ExecuteSkill.Goal:
    """An ExecuteSkill goal for a validated skill call (args as a JSON object).

    Raises:
        PlanValidationError: the call does not satisfy SKILL_SCHEMA.
    """
    call = validate_call(call, known_types)
    return ExecuteSkill.Goal(skill=call.skill, args_json=_args_to_json(call.args))


def skill_goal_to_call(goal: ExecuteSkill.Goal, known_types: Sequence[str] | None = None,
                       limits: Limits = DEFAULT_LIMITS) -> SkillCall:
    """The validated SkillCall of an ExecuteSkill goal ("" args_json means no arguments).

    Raises:
        PlanValidationError: args_json is not a JSON object, or the call does not satisfy SKILL_SCHEMA.
    """
    return validate_call(SkillCall(goal.skill, _args_from_json(goal.args_json, goal.skill or "skill", limits)),
                         known_types)


def _check_cost(cost: SkillCost, what: str) -> None:
    if not 0 <= cost.steps <= _UINT32_MAX:
        raise PlanValidationError(f"{what}: steps {cost.steps} out of 0..{_UINT32_MAX}")
    for name in ("distance_m", "sim_time_s"):
        value = getattr(cost, name)
        if not (math.isfinite(value) and value >= 0):
            raise PlanValidationError(f"{what}: {name} must be finite and non-negative, got {value!r}")


def skill_result_to_msg(result: SkillResult) -> ExecuteSkill.Result:
    """An ExecuteSkill result for a core SkillResult (object_id None → "").

    Raises:
        PlanValidationError: a negative or non-finite cost, or a negative areas_visited.
    """
    _check_cost(result.cost, "skill result")
    if not 0 <= result.areas_visited <= _UINT32_MAX:
        raise PlanValidationError(f"skill result: areas_visited {result.areas_visited} out of 0..{_UINT32_MAX}")
    return ExecuteSkill.Result(
        success=bool(result.success), message=result.message, object_id=result.object_id or "",
        steps=int(result.cost.steps), distance_m=float(result.cost.distance_m),
        sim_time_s=float(result.cost.sim_time_s), areas_visited=int(result.areas_visited))


def skill_result_from_msg(msg: ExecuteSkill.Result) -> SkillResult:
    """A core SkillResult from an ExecuteSkill result ("" object_id → None).

    Raises:
        PlanValidationError: a negative or non-finite distance or time.
    """
    cost = SkillCost(int(msg.steps), float(msg.distance_m), float(msg.sim_time_s))
    _check_cost(cost, "skill result")
    return SkillResult(success=bool(msg.success), message=msg.message, cost=cost,
                       object_id=msg.object_id or None, areas_visited=int(msg.areas_visited))


def step_report_to_msg(index: int, call: SkillCall, result: SkillResult) -> StepReport:
    """A StepReport for step ``index`` of a plan. The call is not re-validated: a report may record
    a step that failed precisely because it was invalid.

    Raises:
        PlanValidationError: negative index or cost.
    """
    if not 0 <= index <= _UINT32_MAX:
        raise PlanValidationError(f"step index {index} out of 0..{_UINT32_MAX}")
    _check_cost(result.cost, f"step {index}")
    return StepReport(index=int(index), skill=call.skill, args_json=_args_to_json(call.args),
                      success=bool(result.success), message=result.message, steps=int(result.cost.steps),
                      distance_m=float(result.cost.distance_m), sim_time_s=float(result.cost.sim_time_s))


def step_report_from_msg(msg: StepReport, limits: Limits = DEFAULT_LIMITS) -> tuple[int, SkillCall, SkillResult]:
    """(index, call, result) of a StepReport; list arguments come back as tuples.

    Raises:
        PlanValidationError: args_json is not a JSON object, or a cost is negative or non-finite.
    """
    args = {k: tuple(v) if isinstance(v, list) else v for k, v in
            _args_from_json(msg.args_json, f"step {msg.index}", limits).items()}
    cost = SkillCost(int(msg.steps), float(msg.distance_m), float(msg.sim_time_s))
    _check_cost(cost, f"step {msg.index}")
    return int(msg.index), SkillCall(msg.skill, args), SkillResult(bool(msg.success), msg.message, cost)
