"""The robot description: xacro expands, urdfdom parses, the tree, the UR3 arm and the camera frames are right."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import xacro
from urdf_parser_py.urdf import URDF

ROOT = Path(__file__).resolve().parent.parent
XACRO = ROOT / "urdf" / "karma_robot.urdf.xacro"

ARM_JOINTS = ["shoulder_pan_joint", "shoulder_lift_joint", "elbow_joint",
              "wrist_1_joint", "wrist_2_joint", "wrist_3_joint"]
#: The chain the nodes publish below map -> base_link (base_link is the root of the URDF).
CAMERA_CHAIN = ["base_link", "mast_link", "arm_base_link", "shoulder_link", "upper_arm_link", "forearm_link",
                "wrist_1_link", "wrist_2_link", "wrist_3_link", "flange", "tool0", "camera_link",
                "camera_optical_frame"]
#: Pure coordinate frames (no geometry, no mass), as in ur_description and REP-105.
FRAME_ONLY = {"base_footprint", "flange", "tool0", "camera_optical_frame"}
#: UR3 DH parameters (Universal Robots): d1, a2, a3, d4, d5, d6 in metres.
UR3_DH = {"d": [0.1519, 0.0, 0.0, 0.11235, 0.08535, 0.0819],
          "a": [0.0, -0.24365, -0.21325, 0.0, 0.0, 0.0],
          "alpha": [math.pi / 2, 0.0, 0.0, math.pi / 2, -math.pi / 2, 0.0]}


@pytest.fixture(scope="module")
def robot() -> URDF:
    xml = xacro.process_file(str(XACRO)).toxml()
    return URDF.from_xml_string(xml)


def _rpy(r: float, p: float, y: float) -> np.ndarray:
    cr, sr, cp, sp, cy, sy = math.cos(r), math.sin(r), math.cos(p), math.sin(p), math.cos(y), math.sin(y)
    rx = np.array([[1, 0, 0], [0, cr, -sr], [0, sr, cr]])
    ry = np.array([[cp, 0, sp], [0, 1, 0], [-sp, 0, cp]])
    rz = np.array([[cy, -sy, 0], [sy, cy, 0], [0, 0, 1]])
    return rz @ ry @ rx


def _axis_angle(axis: list[float], angle: float) -> np.ndarray:
    k = np.asarray(axis, dtype=float) / np.linalg.norm(axis)
    kx = np.array([[0, -k[2], k[1]], [k[2], 0, -k[0]], [-k[1], k[0], 0]])
    return np.eye(3) + math.sin(angle) * kx + (1 - math.cos(angle)) * kx @ kx


def _joint_transform(joint, q: float = 0.0) -> np.ndarray:
    t = np.eye(4)
    origin = joint.origin
    t[:3, :3] = _rpy(*(origin.rpy if origin and origin.rpy else [0, 0, 0]))
    t[:3, 3] = origin.xyz if origin and origin.xyz else [0, 0, 0]
    if joint.type in ("revolute", "continuous") and q:
        motion = np.eye(4)
        motion[:3, :3] = _axis_angle(joint.axis, q)
        t = t @ motion
    return t


def _fk(robot: URDF, base: str, tip: str, q: dict[str, float] | None = None) -> np.ndarray:
    """Transform base <- tip along the URDF tree (tip must be below base), at joint angles q."""
    q = q or {}
    chain = robot.get_chain(base, tip, joints=True, links=False)
    joints = {j.name: j for j in robot.joints}
    t = np.eye(4)
    for name in chain:
        t = t @ _joint_transform(joints[name], q.get(name, 0.0))
    return t


def _ur_dh_fk(q: list[float]) -> np.ndarray:
    t = np.eye(4)
    for i, qi in enumerate(q):
        ct, st = math.cos(qi), math.sin(qi)
        ca, sa = math.cos(UR3_DH["alpha"][i]), math.sin(UR3_DH["alpha"][i])
        a, d = UR3_DH["a"][i], UR3_DH["d"][i]
        t = t @ np.array([[ct, -st * ca, st * sa, a * ct], [st, ct * ca, -ct * sa, a * st],
                          [0, sa, ca, d], [0, 0, 0, 1]])
    return t


def test_xacro_expands_to_a_parsable_urdf(robot: URDF) -> None:
    assert robot.name == "karma_robot"
    names = {link.name for link in robot.links}
    assert {"base_link", "base_footprint", "tool0", "camera_link", "camera_optical_frame"} <= names
    assert robot.get_root() == "base_link"  # so the nodes can publish map -> base_link without a second parent


def test_every_link_is_reachable_once_from_the_root(robot: URDF) -> None:
    children = [j.child for j in robot.joints]
    assert len(children) == len(set(children)), "a link has two parents"
    assert set(children) | {"base_link"} == {link.name for link in robot.links}
    assert len(robot.joints) == len(robot.links) - 1  # a tree


def test_base_footprint_is_on_the_ground_under_base_link(robot: URDF) -> None:
    t = _fk(robot, "base_link", "base_footprint")
    assert t[0, 3] == 0 and t[1, 3] == 0 and t[2, 3] < 0
    np.testing.assert_allclose(t[:3, :3], np.eye(3))
    # every wheel touches the ground plane of base_footprint
    wheels = [j for j in robot.joints if j.name.endswith("_wheel_joint")]
    radius = robot.link_map[wheels[0].child].collisions[0].geometry.radius
    for joint in wheels:
        centre = _fk(robot, "base_link", joint.child)[:3, 3]
        assert centre[2] - radius == pytest.approx(t[2, 3], abs=1e-9), joint.name


def test_six_wheeled_base(robot: URDF) -> None:
    wheels = [j for j in robot.joints if j.name.endswith("_wheel_joint")]
    assert len(wheels) == 6
    assert all(j.type == "continuous" and j.parent == "base_link" for j in wheels)
    assert all(list(j.axis) == [0.0, 1.0, 0.0] for j in wheels)
    ys = sorted(j.origin.xyz[1] for j in wheels)
    assert ys[:3] == [ys[0]] * 3 and ys[3:] == [ys[5]] * 3 and ys[0] == -ys[5]  # three per side, symmetric
    xs = sorted({j.origin.xyz[0] for j in wheels})
    assert len(xs) == 3 and xs[1] == 0.0  # front, middle, rear axles


def test_arm_has_six_revolute_joints_in_one_chain_with_limits(robot: URDF) -> None:
    revolute = [j for j in robot.joints if j.type == "revolute"]
    assert [j.name for j in revolute] == ARM_JOINTS
    chain = robot.get_chain("arm_base_link", "wrist_3_link", joints=True, links=False)
    assert chain == ARM_JOINTS
    for joint in revolute:
        assert joint.limit.lower < 0 < joint.limit.upper, joint.name
        assert joint.limit.upper - joint.limit.lower <= 4 * math.pi + 1e-9
        assert joint.limit.velocity > 0 and joint.limit.effort > 0
        assert list(joint.axis) == [0.0, 0.0, 1.0]


def test_arm_link_lengths_are_ur3(robot: URDF) -> None:
    joints = {j.name: j for j in robot.joints}
    assert joints["shoulder_pan_joint"].origin.xyz[2] == pytest.approx(0.1519)
    assert np.linalg.norm(joints["elbow_joint"].origin.xyz) == pytest.approx(0.24365)
    assert abs(joints["wrist_1_joint"].origin.xyz[0]) == pytest.approx(0.21325)
    # fully stretched (q = 0) the tool is a2 + a3 from the shoulder axis, as on a real UR3 (~0.46 m)
    tool = _fk(robot, "arm_base_link", "tool0")[:3, 3]
    assert math.hypot(tool[0], tool[1]) == pytest.approx(math.hypot(0.24365 + 0.21325, 0.11235 + 0.0819), abs=1e-6)


@pytest.mark.parametrize("seed", range(5))
def test_arm_forward_kinematics_match_ur3_dh(robot: URDF, seed: int) -> None:
    rng = np.random.default_rng(seed)
    q = rng.uniform(-math.pi, math.pi, 6) if seed else np.zeros(6)
    urdf = _fk(robot, "arm_base_link", "tool0", dict(zip(ARM_JOINTS, q)))
    np.testing.assert_allclose(urdf, _ur_dh_fk(list(q)), atol=1e-9)


def test_camera_frames_follow_rep103(robot: URDF) -> None:
    assert robot.get_chain("base_link", "camera_optical_frame", joints=False, links=True) == CAMERA_CHAIN
    parent = {j.child: j.parent for j in robot.joints}
    assert parent["camera_link"] == "tool0" and parent["camera_optical_frame"] == "camera_link"
    link_from_optical = _fk(robot, "camera_link", "camera_optical_frame")
    # optical z forward = camera_link x, optical x right = -camera_link y, optical y down = -camera_link z
    np.testing.assert_allclose(link_from_optical[:3, :3], [[0, 0, 1], [-1, 0, 0], [0, -1, 0]], atol=1e-12)
    np.testing.assert_allclose(link_from_optical[:3, 3], 0)
    # the camera looks out of the flange (tool0 z)
    tool_from_link = _fk(robot, "tool0", "camera_link")
    np.testing.assert_allclose(tool_from_link[:3, 0], [0, 0, 1], atol=1e-12)
    assert np.linalg.norm(tool_from_link[:3, 3]) < 0.1  # on the wrist, not somewhere else


#: Joint angles that put the camera level at head height, looking forward (documented in the xacro).
OBSERVE_POSE = dict(zip(ARM_JOINTS, (-math.pi / 2, -math.pi / 2, 0.0, -math.pi / 2, 0.0, math.pi / 2)))


def test_observe_pose_gives_a_level_forward_camera_at_head_height(robot: URDF) -> None:
    footprint_from_base = np.linalg.inv(_fk(robot, "base_link", "base_footprint"))
    t = footprint_from_base @ _fk(robot, "base_link", "camera_optical_frame", OBSERVE_POSE)
    # optical z (view) = base +x, optical x (right) = base -y, optical y (down) = base -z
    np.testing.assert_allclose(t[:3, :3], [[0, 0, 1], [-1, 0, 0], [0, -1, 0]], atol=1e-9)
    assert t[1, 3] == pytest.approx(0.0, abs=1e-9)  # on the centre line
    assert 1.4 < t[2, 3] < 1.7  # head height above the ground, like AI2-THOR's agent camera
    assert 0.0 < t[0, 3] < 0.6  # over the deck


def test_camera_height_changes_with_the_arm(robot: URDF) -> None:
    home = _fk(robot, "base_link", "camera_optical_frame")
    observe = _fk(robot, "base_link", "camera_optical_frame", OBSERVE_POSE)
    deck = _fk(robot, "base_link", "arm_base_link")[2, 3]
    assert home[2, 3] > deck and observe[2, 3] > home[2, 3] + 0.3


def test_links_have_geometry_and_mass(robot: URDF) -> None:
    total = 0.0
    for link in robot.links:
        if link.name in FRAME_ONLY:
            assert link.inertial is None and not link.visuals, link.name
            continue
        assert link.visuals and link.collisions, link.name
        assert link.inertial is not None and link.inertial.mass > 0, link.name
        i = link.inertial.inertia
        assert min(i.ixx, i.iyy, i.izz) > 0, link.name
        total += link.inertial.mass
    assert 40 < total < 80  # a ~50 kg mobile manipulator
