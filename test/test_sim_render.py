"""Renderer geometry and the camera convention of Event.camera_frame()."""

from __future__ import annotations

import math
import time

import numpy as np
import pytest

from karma_memory.core.errors import ConfigError, SimulatorError
from karma_memory.core.types import CameraFrame
from karma_memory.sim import EmbeddedController
from karma_memory.sim.geometry import camera_axes, intrinsics_from_vertical_fov, world_from_camera
from karma_memory.sim.render import BoxSet, Renderer, Room

ROOM = Room(-5.0, 5.0, -5.0, 5.0, 0.0, 3.0, floor_instance=9)


def one_box(lo, hi, iid=7):
    return BoxSet(np.array([lo], float), np.array([hi], float), np.array([[200, 10, 10]], np.uint8),
                  np.array([iid], np.int32))


def project(frame: CameraFrame, point) -> tuple[int, int, float]:
    """World point -> (u, v, z) with the frame's pose and intrinsics."""
    cam_from_world = np.linalg.inv(frame.world_from_camera)
    p = cam_from_world @ np.array([*point, 1.0])
    k = frame.intrinsics
    return int(round(k.fx * p[0] / p[2] + k.cx)), int(round(k.fy * p[1] / p[2] + k.cy)), float(p[2])


def test_camera_axes_convention():
    r = camera_axes(0.0, 0.0)
    assert np.allclose(r, [[1, 0, 0], [0, -1, 0], [0, 0, 1]])  # right=+x, down=-y, forward=+z
    assert np.linalg.det(r) == pytest.approx(-1.0)
    down = camera_axes(0.0, 90.0)
    assert np.allclose(down[:, 2], [0, -1, 0], atol=1e-12)  # horizon +90 looks at the floor
    right = camera_axes(90.0, 0.0)
    assert np.allclose(right[:, 2], [1, 0, 0], atol=1e-12)  # yaw 90 looks along +x
    k = intrinsics_from_vertical_fov(320, 240, 90.0)
    assert k.fy == pytest.approx(120.0) and k.fx == pytest.approx(120.0) and k.cx == pytest.approx(159.5)
    with pytest.raises(ValueError):
        intrinsics_from_vertical_fov(0, 240, 90.0)


def test_box_straight_ahead_depth_and_mask():
    r = Renderer(160, 120, 90.0)
    cam = np.array([0.0, 1.5, 0.0])
    out = r.render(cam, 0.0, 0.0, one_box([-0.2, 1.3, 1.8], [0.2, 1.7, 2.2]), ROOM)
    assert out.rgb.shape == (120, 160, 3) and out.rgb.dtype == np.uint8
    assert out.depth.dtype == np.float32 and out.instances.dtype == np.int32
    v, u = 59, 79
    assert out.instances[v, u] == 7 and out.depth[v, u] == pytest.approx(1.8, abs=1e-4)
    # the box spans 0.4 m at 1.8 m: 0.4 / 1.8 * fy (60 px) = 13.3 px
    cols = np.flatnonzero(out.instances[v] == 7)
    assert 12 <= len(cols) <= 15
    # wall behind: z-depth to the wall at z=5
    assert out.depth[v, 2] == pytest.approx(5.0 / ((79.5 - 2) / 60.0), rel=1e-3) and out.instances[v, 2] == 0
    assert out.depth[2, u] == pytest.approx(min(5.0, 1.5 / (58.5 / 60.0)), rel=0.02)  # ceiling rows
    # floor at the bottom rows, painted with the floor instance
    assert out.instances[-1, u] == 9
    assert out.depth[-1, u] == pytest.approx(1.5 / (59.5 / 60.0), rel=0.02)


def test_rotated_camera_projection_matches_pinhole_model():
    r = Renderer(200, 150, 70.0)
    cam = np.array([1.0, 1.4, -0.5])
    yaw, horizon = 90.0, 30.0
    forward = camera_axes(yaw, horizon)[:, 2]
    centre = cam + 2.0 * forward + np.array([0.0, 0.0, 0.3])
    out = r.render(cam, yaw, horizon, one_box(centre - 0.1, centre + 0.1, iid=3), ROOM)
    frame = CameraFrame(out.rgb, out.depth, out.instances, {}, r.intrinsics, world_from_camera(cam, yaw, horizon))
    u, v, z = project(frame, centre)
    assert out.instances[v, u] == 3
    assert z - 0.1 * 1.8 <= out.depth[v, u] <= z
    # back-project the pixel: it lands on the box
    k = r.intrinsics
    p_cam = np.array([(u - k.cx) / k.fx, (v - k.cy) / k.fy, 1.0]) * out.depth[v, u]
    p_world = frame.world_from_camera @ np.array([*p_cam, 1.0])
    assert np.all(np.abs(p_world[:3] - centre) <= 0.1 + 1e-3)


def test_box_partly_behind_camera_and_camera_inside_box():
    r = Renderer(64, 48, 90.0)
    cam = np.array([0.0, 1.5, 0.0])
    out = r.render(cam, 0.0, 0.0, one_box([-3.0, 0.0, -1.0], [3.0, 0.5, 3.0]), ROOM)  # a low slab under us
    assert (out.instances[-1] == 7).all() and not (out.instances[0] == 7).any()
    out = r.render(cam, 0.0, 0.0, one_box([-1, 0, -1], [1, 2, 1]), ROOM)  # camera inside: culled
    assert not (out.instances == 7).any()


def test_renderer_validation_and_speed():
    with pytest.raises(ValueError):
        Renderer(4, 4)
    with pytest.raises(ConfigError):
        EmbeddedController("FloorPlan1", width=2, height=2)
    c = EmbeddedController("FloorPlan1")
    event = c.step("RotateRight")
    event.frame  # warm-up
    start = time.perf_counter()
    for _ in range(5):
        c.step("RotateRight").frame
    assert (time.perf_counter() - start) / 5 < 0.25  # the benchmark measures the real rate (>= 20 fps)


def face(c, oid):
    md = c.last_event.metadata
    target = next(o for o in md["objects"] if o["objectId"] == oid)["axisAlignedBoundingBox"]["center"]
    for x, z in sorted(map(tuple, c.reachable_positions()),
                       key=lambda p: (math.hypot(p[0] - target["x"], p[1] - target["z"]), p))[:15]:
        yaw = math.degrees(math.atan2(target["x"] - x, target["z"] - z))
        for horizon in (30, 0, 60):
            e = c.step("TeleportFull", position={"x": x, "y": 0.9, "z": z}, rotation=yaw, horizon=horizon,
                       standing=True)
            if next(o for o in e.metadata["objects"] if o["objectId"] == oid)["visible"]:
                return e
    raise AssertionError(oid)


@pytest.mark.parametrize("oid", ["Apple|-00.47|+01.15|+00.48", "Fridge|-02.10|+00.00|+01.07",
                                 "Toaster|-01.84|+00.90|+00.13", "Sink|-01.90|+00.97|-01.50|SinkBasin"])
def test_camera_frame_projects_object_centre_into_its_mask(oid):
    c = EmbeddedController("FloorPlan1", width=320, height=240)
    event = face(c, oid)
    frame = event.camera_frame()
    assert isinstance(frame, CameraFrame)
    assert frame.rgb.shape == (240, 320, 3) and frame.depth.shape == (240, 320)
    assert np.allclose(frame.world_from_camera[:3, 3], [event.metadata["cameraPosition"][k] for k in "xyz"])
    assert np.linalg.det(frame.world_from_camera[:3, :3]) == pytest.approx(-1.0)
    assert frame.metadata_objects and len(frame.metadata_objects) == len(event.metadata["objects"])
    iid = next(i for i, label in frame.labels.items() if label.object_id == oid)
    assert frame.labels[iid].object_type == oid.split("|")[0] if "SinkBasin" not in oid else True
    obj = next(o for o in event.metadata["objects"] if o["objectId"] == oid)
    lo = np.array([obj["axisAlignedBoundingBox"]["center"][k] - obj["axisAlignedBoundingBox"]["size"][k] / 2
                   for k in "xyz"])
    hi = lo + np.array([obj["axisAlignedBoundingBox"]["size"][k] for k in "xyz"])
    centre = (lo + hi) / 2
    if "SinkBasin" in oid:
        centre[1] = hi[1]  # seen through the counter's hole: aim at its top face
    u, v, _ = project(frame, centre)
    assert 0 <= u < 320 and 0 <= v < 240
    window = frame.instances[max(v - 2, 0):v + 3, max(u - 2, 0):u + 3]
    assert (window == iid).any(), f"{oid} not at its projected centre ({u}, {v})"
    # the mask's pixels back-project into the object's box (depth is metric z-depth)
    vs, us = np.nonzero(frame.instances == iid)
    k = frame.intrinsics
    pts = np.stack([(us - k.cx) / k.fx, (vs - k.cy) / k.fy, np.ones_like(us, float)], 1) * frame.depth[vs, us][:, None]
    world = (frame.world_from_camera[:3, :3] @ pts.T).T + frame.world_from_camera[:3, 3]
    assert np.all(world >= lo - 0.02) and np.all(world <= hi + 0.02)


def test_thor_style_segmentation_and_masks():
    c = EmbeddedController("FloorPlan1", width=96, height=72)
    event = face(c, "Fridge|-02.10|+00.00|+01.07")
    seg = event.instance_segmentation_frame
    assert seg.shape == (72, 96, 3) and seg.dtype == np.uint8
    masks = event.instance_masks
    fridge = masks["Fridge|-02.10|+00.00|+01.07"]
    color = event.object_id_to_color["Fridge|-02.10|+00.00|+01.07"]
    assert np.array_equal(np.all(seg == color, axis=2), fridge)
    assert event.color_to_object_id[color] == "Fridge|-02.10|+00.00|+01.07"
    assert len(set(event.object_id_to_color.values())) == len(event.object_id_to_color)
    assert {d["name"] for d in event.metadata["colors"]} == set(event.object_id_to_color)


def test_closed_fridge_hides_its_contents_in_the_image():
    c = EmbeddedController("FloorPlan1", width=160, height=120)
    egg = "Egg|-02.04|+00.81|+01.24"
    face(c, "Fridge|-02.10|+00.00|+01.07")
    egg_iid = c._world.instance_ids[egg]
    assert not (c.last_event.camera_frame().instances == egg_iid).any()
    assert c.step("OpenObject", objectId="Fridge|-02.10|+00.00|+01.07").metadata["lastActionSuccess"]
    face(c, egg)
    assert (c.last_event.camera_frame().instances == egg_iid).any()


def test_frames_disabled():
    c = EmbeddedController("FloorPlan1", render_images=False)
    e = c.step("Pass")
    assert e.frame is None and e.depth_frame is None and e.instance_segmentation_frame is None
    assert e.instance_masks == {}
    with pytest.raises(SimulatorError, match="render_images"):
        e.camera_frame()


def test_held_object_is_drawn_in_the_hand_and_follows_the_agent():
    c = EmbeddedController("FloorPlan1", width=160, height=120)
    apple = "Apple|-00.47|+01.15|+00.48"
    c.step("PickupObject", objectId=apple, forceAction=True)
    iid = c._world.instance_ids[apple]
    version = c._world.version
    for action in ("RotateRight", "MoveAhead"):
        event = c.step(action)
        frame = event.camera_frame()
        mask = frame.instances == iid
        assert mask.sum() > 50 and np.argwhere(mask)[:, 0].mean() > 60  # lower half, in front
        meta = next(o for o in event.metadata["objects"] if o["objectId"] == apple)
        u, v, _ = project(frame, [meta["axisAlignedBoundingBox"]["center"][k] for k in "xyz"])
        assert mask[v, u]
    assert c._world.version == version  # walking with it does not change the world state
