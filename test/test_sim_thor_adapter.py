"""ThorSkillExecutor and event conversions over real ``ai2thor.server.Event`` objects (no Unity needed).

A fake controller drives the embedded simulator and hands back genuine ai2thor Events built from its
metadata and frames, byte buffers included, exactly as ai2thor decodes Unity's output.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from ai2thor.server import DepthFormat
from ai2thor.server import Event as ThorEvent

from karma_memory.core.errors import SimulatorError
from karma_memory.core.skills import SkillCall, SkillExecutor
from karma_memory.sim import EmbeddedController, SimSkillExecutor
from karma_memory.sim.scenes import default_area_positions
from karma_memory.sim.thor_adapter import (
    ThorSkillExecutor, area_positions_from_reachable, thor_event_to_camera_frame, visible_objects,
)

APPLE = "Apple|-00.47|+01.15|+00.48"
FRIDGE = "Fridge|-02.10|+00.00|+01.07"


class FakeThorController:
    """Has the parts of ``ai2thor.controller.Controller`` the adapter uses: step(), last_event,
    initialization_parameters. Unity's buffers are bottom-up, so frames are flipped before encoding."""

    def __init__(self, scene: str = "FloorPlan1", render: bool = True, **kwargs: Any) -> None:
        self.sim = EmbeddedController(scene, render_images=render, **kwargs)
        self.initialization_parameters = {"gridSize": 0.25, "scene": scene}
        self.calls: list[str] = []
        self.last_event = self._wrap(self.sim.last_event)

    def step(self, action: Any = None, **kwargs: Any) -> ThorEvent:
        if isinstance(action, dict):
            kwargs = {**action, **kwargs}
            action = kwargs.pop("action")
        if action is None:
            action = kwargs.pop("action")
        self.calls.append(action)
        self.last_event = self._wrap(self.sim.step(action, **kwargs))
        return self.last_event

    @staticmethod
    def _wrap(event: Any) -> ThorEvent:
        thor = ThorEvent(dict(event.metadata))
        if event.frame is not None:
            h, w = event.frame.shape[:2]
            thor.add_image(np.flipud(event.frame).tobytes())
            thor.add_image_depth(np.flipud(event.depth_frame).astype(np.float32).tobytes(),
                                 depth_format=DepthFormat.Meters, camera_near_plane=0.1, camera_far_plane=20.0)
            rgba = np.concatenate([np.flipud(event.instance_segmentation_frame),
                                   np.full((h, w, 1), 255, np.uint8)], axis=2)
            thor.add_image_ids(np.ascontiguousarray(rgba).tobytes())
        return thor


def C(skill: str, **args: Any) -> SkillCall:
    return SkillCall(skill, args)


def test_fake_controller_returns_real_ai2thor_events():
    fake = FakeThorController(width=64, height=48)
    event = fake.step("RotateRight")
    assert isinstance(event, ThorEvent) and bool(event)
    assert event.frame.shape == (48, 64, 3) and event.depth_frame.dtype == np.float32
    assert np.array_equal(event.frame, fake.sim.last_event.frame)  # the flip round-trips
    assert np.allclose(event.depth_frame, fake.sim.last_event.depth_frame)
    assert set(event.instance_masks) == set(fake.sim.last_event.instance_masks)


def test_event_to_camera_frame_matches_embedded_frame():
    fake = FakeThorController(width=120, height=90)
    fake.step("TeleportFull", position={"x": -1.0, "y": 0.9, "z": 0.0}, rotation=270, horizon=30, standing=True)
    ours = fake.sim.last_event.camera_frame()
    theirs = thor_event_to_camera_frame(fake.last_event)
    assert np.array_equal(ours.rgb, theirs.rgb) and np.allclose(ours.depth, theirs.depth)
    assert np.allclose(ours.world_from_camera, theirs.world_from_camera)
    assert ours.intrinsics == theirs.intrinsics
    assert {lab.object_id for lab in ours.labels.values()} == {lab.object_id for lab in theirs.labels.values()}
    # same masks per object id (instance numbering may differ)
    by_id = {lab.object_id: iid for iid, lab in theirs.labels.items()}
    for iid, lab in ours.labels.items():
        assert np.array_equal(ours.instances == iid, theirs.instances == by_id[lab.object_id]), lab.object_id
    assert theirs.metadata_objects is not None and len(theirs.metadata_objects) == 77
    assert theirs.stamp == pytest.approx(fake.sim.sim_time_s)


def test_event_without_frames_is_rejected():
    fake = FakeThorController(render=False)
    with pytest.raises(SimulatorError, match="renderDepthImage"):
        thor_event_to_camera_frame(fake.last_event)


def test_visible_objects_and_area_tiling():
    fake = FakeThorController(render=False)
    vis = visible_objects(fake.last_event.metadata)
    assert vis and all(o["visible"] for o in vis)
    assert area_positions_from_reachable(fake.sim.reachable_positions()) == default_area_positions("FloorPlan1")


def test_adapter_runs_the_same_skills_with_the_same_outcomes():
    plan = [C("PickupObject", object="Apple"), C("Explore", object="Apple"), C("GoToObject", object=APPLE),
            C("PickupObject", object="Apple"), C("GoToObject", object=FRIDGE), C("PutObject", receptacle="Fridge"),
            C("OpenObject", object="Fridge"), C("PutObject", receptacle="Fridge"), C("CloseObject", object="Fridge"),
            C("SliceObject", object="Bread"), C("Explore", object="Unicorn")]
    fake = FakeThorController(render=False)
    thor = ThorSkillExecutor(fake)
    assert isinstance(thor, SkillExecutor)
    assert "GetReachablePositions" in fake.calls  # the grid comes from THOR's own query
    sim = SimSkillExecutor(EmbeddedController("FloorPlan1", render_images=False))
    assert thor.area_positions == sim.area_positions
    for call in plan:
        a, b = thor.execute(call), sim.execute(call)
        assert (a.success, a.message, a.object_id, a.areas_visited) == (b.success, b.message, b.object_id,
                                                                         b.areas_visited), str(call)
        assert a.cost.steps == b.cost.steps and a.cost.distance_m == pytest.approx(b.cost.distance_m)
        assert a.cost.sim_time_s == pytest.approx(b.cost.sim_time_s)
    apple = next(o for o in fake.last_event.metadata["objects"] if o["objectId"] == APPLE)
    assert apple["parentReceptacles"][0] == FRIDGE


def test_adapter_camera_frame_and_failures():
    fake = FakeThorController(width=64, height=48)
    thor = ThorSkillExecutor(fake, area_positions={"kitchen": (-1.0, 0.0)}, grid_size=0.25)
    frame = thor.camera_frame()
    assert frame.rgb.shape == (48, 64, 3) and frame.labels
    r = thor.execute(C("Explore", object="Apple", areas=["bedroom"]))
    assert not r.success and "unknown area" in r.message
    r = thor.execute(SkillCall("Fly", {}))
    assert not r.success and "unknown skill" in r.message
    r = thor.execute(C("PutObject", receptacle="CounterTop"))
    assert not r.success and "not holding anything" in r.message
