"""Simulator coverage: every object can be seen and reached, and the geometry fixes behind that."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from karma_memory.bench import sim_coverage
from karma_memory.core.errors import SimulatorError
from karma_memory.core.skills import SkillCall
from karma_memory.sim import EmbeddedController, SimSkillExecutor
from karma_memory.sim.geometry import aabb_of
from karma_memory.sim.rules import OBJECT_RESTRICTIONS, allowed_in
from karma_memory.sim.scenes import surface_parts
from karma_memory.sim.world import Pose, capsule_dist2

FP1_APPLE = "Apple|-00.47|+01.15|+00.48"
FP1_FRIDGE = "Fridge|-02.10|+00.00|+01.07"
FP2_DRAWER = "Drawer|+01.50|+00.78|+01.22"
FP2_COUNTER = "CounterTop|+00.00|+00.95|-01.51"


def md_obj(c, oid):
    return next(o for o in c.last_event.metadata["objects"] if o["objectId"] == oid)


def go_to_remembered(c, ex, oid):
    """GoToObject after the executor remembers ``oid`` at its box centre (as if seen there before)."""
    ex.remember(oid, tuple(md_obj(c, oid)["axisAlignedBoundingBox"]["center"][k] for k in "xyz"))
    return ex.execute(SkillCall("GoToObject", {"object": oid}))


def teleport(c, x, z, yaw, horizon):
    event = c.step("TeleportFull", position={"x": x, "y": 0.9, "z": z}, rotation=yaw, horizon=horizon)
    assert event.metadata["lastActionSuccess"], event.metadata["errorMessage"]
    return event


# ------------------------------------------------------------------------------------- the benchmark


def test_floorplan1_coverage_is_complete():
    result = sim_coverage.scene_coverage("FloorPlan1")
    rows = result["objects"]
    assert len(rows) > 60
    assert [r["objectId"] for r in rows if not r["oracle"]["ok"]] == []
    assert [r["objectId"] for r in rows if not r["goto"]["ok"]] == []
    assert any(r["enclosed"] for r in rows)  # things in closed cabinets/fridge are part of the count


def test_main_writes_totals(tmp_path, capsys):
    assert sim_coverage.main(["--scenes", "FloorPlan2", "--no-goto", "--quiet", "--out", str(tmp_path)]) == 0
    data = json.loads((tmp_path / "sim_coverage.json").read_text())
    assert data["summary"]["scenes"] == 1 and data["summary"]["oracle_rate"] == 1.0
    assert "goto_rate" not in data["summary"]
    assert "oracle visible+in reach" in capsys.readouterr().out
    with pytest.raises(SimulatorError, match="FloorPlan999"):
        sim_coverage.main(["--scenes", "FloorPlan999", "--out", str(tmp_path)])


def test_interactable_and_task_scenes():
    assert sim_coverage.interactable({"objectType": "Drawer", "openable": True})
    assert not sim_coverage.interactable({"objectType": "Floor", "receptacle": True})
    assert not sim_coverage.interactable({"objectType": "Sink"})
    scenes = sim_coverage.task_scenes()
    assert "FloorPlan1" in scenes and scenes == sorted(scenes, key=lambda n: int(n[9:]))


# ------------------------------------------------------------------------------- visibility model


def test_visibility_range_is_horizontal_from_the_agent_like_thor():
    agent = np.array([0.0, 0.9, 0.0])
    on_floor = (np.array([1.4, 0.0, -0.1]), np.array([1.6, 0.25, 0.1]))  # 1.4 m away, 1.3 m below the camera
    assert capsule_dist2(agent, *on_floor, 1.5)[0] == pytest.approx(1.4 ** 2)
    high = (np.array([-0.1, 2.9, -0.1]), np.array([0.1, 3.1, 0.1]))  # overhead, within the stretched capsule
    assert capsule_dist2(agent, *high, 1.5)[0] == 0.0
    far_up = (np.array([-0.1, 4.0, -0.1]), np.array([0.1, 4.2, 0.1]))
    assert capsule_dist2(agent, *far_up, 1.5)[0] == pytest.approx((4.0 - (0.9 + 0.7 + 1.5)) ** 2)


def test_drawer_under_counter_is_visible_from_the_cell_in_front():
    c = EmbeddedController("FloorPlan2", render_images=False)
    teleport(c, 1.0, 1.25, 90.0, 30.0)
    assert md_obj(c, FP2_DRAWER)["visible"]
    snap, pose = c._world.snapshot(), c._world.pose
    assert snap.explain(pose, 1.5, c.fov, c.width / c.height, FP2_DRAWER)["reason"] == "visible"
    teleport(c, 1.0, 1.25, 270.0, 30.0)  # looking away
    why = c._world.snapshot().explain(c._world.pose, 1.5, c.fov, c.width / c.height, FP2_DRAWER)
    assert why == {"visible": False, "reason": "out_of_view", "occluders": []}
    assert c._world.snapshot().explain(c._world.pose, 1.5, c.fov, 4 / 3, "Nope|1|2|3")["reason"] == "missing"


def test_l_shaped_counter_is_carved_to_its_arms():
    c = EmbeddedController("FloorPlan2", render_images=False)
    parts = c.scene.surface_parts[FP2_COUNTER]
    assert len(parts) == 2
    lo, hi = aabb_of(md_obj(c, FP2_COUNTER))
    corner = np.array([0.0, 0.91, 0.5])  # inside the AABB, in the empty corner of the L
    assert np.all(corner >= lo) and np.all(corner <= hi)
    boxes = [(np.array(plo), np.array(phi)) for plo, phi in parts]
    assert not any(np.all(corner >= plo) and np.all(corner <= phi) for plo, phi in boxes)
    c.disturb(FP1_APPLE if FP1_APPLE in c._world.objects else "Apple|-01.65|+00.81|+00.07", FP2_COUNTER)
    apple = next(o for o in c.last_event.metadata["objects"] if o["objectType"] == "Apple")
    centre = apple["axisAlignedBoundingBox"]["center"]
    assert any(p[0][0] <= centre["x"] <= p[1][0] and p[0][2] <= centre["z"] <= p[1][2] for p in parts)


def _box(oid, lo, hi, **flags):
    lo, hi = np.array(lo, float), np.array(hi, float)
    c, s = (lo + hi) / 2, hi - lo
    return {"objectId": oid, "objectType": oid.split("|")[0], "parentReceptacles": None,
            "axisAlignedBoundingBox": {"center": dict(zip("xyz", c)), "size": dict(zip("xyz", s))}, **flags}


def test_surface_parts_cut_the_l_but_keep_islands():
    objects = [
        _box("CounterTop|L", (0, 0.9, 0), (3, 0.92, 3)),
        _box("Cabinet|a", (0, 0.1, 0), (3, 0.88, 0.6)),  # along z = 0
        _box("Cabinet|b", (2.4, 0.1, 0.6), (3, 0.88, 3)),  # along x = 3
        _box("CounterTop|I", (5, 0.9, 0), (6.2, 0.92, 2.0)),  # island: cabinets on one side, stools under the rest
        _box("Cabinet|c", (5, 0.1, 0), (5.5, 0.88, 2.0)),
        _box("Stool|s", (5.7, 0, 0.5), (6.1, 0.7, 0.9), moveable=True),
    ]
    parts = surface_parts(objects)
    assert set(parts) == {"CounterTop|L"}
    area = sum((hi[0] - lo[0]) * (hi[2] - lo[2]) for lo, hi in parts["CounterTop|L"])
    assert 0.3 * 9 < area < 0.6 * 9  # two arms ~0.64 m deep, not the 3×3 m box
    assert all(lo[1] == 0.9 and hi[1] == 0.92 for lo, hi in parts["CounterTop|L"])


def test_shelving_unit_does_not_hide_what_is_on_its_shelves():
    c = EmbeddedController("FloorPlan1", render_images=False)
    ex = SimSkillExecutor(c)
    vase = "Vase|+01.56|+00.56|-02.50"
    r = go_to_remembered(c, ex, vase)
    assert r.success and md_obj(c, vase)["visible"], r.message


def test_shower_glass_is_see_through():
    c = EmbeddedController("FloorPlan411", render_images=False)
    ex = SimSkillExecutor(c)
    head = next(o for o in c.last_event.metadata["objects"] if o["objectType"] == "ShowerHead")
    r = go_to_remembered(c, ex, head["objectId"])
    assert r.success and md_obj(c, head["objectId"])["visible"], r.message
    assert ex.execute(SkillCall("ToggleOn", {"object": head["objectId"]})).success


def test_floor_and_furniture_are_never_enclosed():
    # the dump lists FloorPlan16's floor inside a cabinet, and FloorPlan5's double-door cabinets inside each other
    c = EmbeddedController("FloorPlan16", render_images=False)
    enclosed = c._world.snapshot().enclosed()
    fridge = next(o for o in c.last_event.metadata["objects"] if o["objectType"] == "Fridge")
    assert fridge["objectId"] not in enclosed and c._world.parent[fridge["objectId"]].startswith("Floor|")
    c5 = EmbeddedController("FloorPlan5", render_images=False)
    cabinets = [oid for oid, o in c5._world.objects.items() if o["objectType"] == "Cabinet"]
    assert not set(cabinets) & c5._world.snapshot().enclosed()


# ------------------------------------------------------------------------------ receptacles


def test_apple_in_an_open_fridge_is_visible_and_on_a_shelf():
    c = EmbeddedController("FloorPlan1", render_images=False)
    ex = SimSkillExecutor(c)
    c.disturb(FP1_APPLE, FP1_FRIDGE)
    apple = md_obj(c, FP1_APPLE)
    assert apple["axisAlignedBoundingBox"]["center"]["y"] - c.scene.floor_y == pytest.approx(0.95, abs=0.1)
    r = go_to_remembered(c, ex, FP1_APPLE)
    assert r.success and "inside closed" in r.message and not md_obj(c, FP1_APPLE)["visible"]
    assert ex.execute(SkillCall("OpenObject", {"object": FP1_FRIDGE})).success
    r = ex.execute(SkillCall("GoToObject", {"object": FP1_APPLE}))
    assert r.success and md_obj(c, FP1_APPLE)["visible"], r.message
    assert ex.execute(SkillCall("PickupObject", {"object": FP1_APPLE})).success


def test_drawer_slides_out_with_its_contents_and_back():
    c = EmbeddedController("FloorPlan2", render_images=False)
    lo0, hi0 = aabb_of(md_obj(c, FP2_DRAWER))
    spatula = next(o["objectId"] for o in c.last_event.metadata["objects"] if o["objectType"] == "Spatula")
    assert c.step("OpenObject", objectId=FP2_DRAWER, forceAction=True).metadata["lastActionSuccess"]
    c.disturb(spatula, FP2_DRAWER)
    lo1, hi1 = aabb_of(md_obj(c, FP2_DRAWER))
    shift = lo1 - lo0
    assert shift[0] == pytest.approx(-0.8 * (hi0[0] - lo0[0])) and shift[1] == shift[2] == 0.0  # towards the room
    s_lo, _ = aabb_of(md_obj(c, spatula))
    assert c.step("CloseObject", objectId=FP2_DRAWER, forceAction=True).metadata["lastActionSuccess"]
    lo2, hi2 = aabb_of(md_obj(c, FP2_DRAWER))
    assert np.allclose(lo2, lo0) and np.allclose(hi2, hi0)
    assert np.allclose(aabb_of(md_obj(c, spatula))[0], s_lo - shift)
    assert md_obj(c, spatula)["parentReceptacles"][0] == FP2_DRAWER and not md_obj(c, spatula)["visible"]


def test_pen_stands_up_in_a_mug_as_in_thor():
    c = EmbeddedController("FloorPlan301", render_images=False)
    pen, mug = "Pen|+01.93|+00.81|-01.18", "Mug|+02.82|+00.80|-01.22"
    size0 = aabb_of(md_obj(c, pen))[1] - aabb_of(md_obj(c, pen))[0]
    assert max(size0[0], size0[2]) > 0.19  # longer than the mug is wide: it cannot lie in it
    c.disturb(pen, mug)
    lo, hi = aabb_of(md_obj(c, pen))
    assert hi[1] - lo[1] == pytest.approx(max(size0), abs=1e-6)  # stood on end
    assert md_obj(c, pen)["parentReceptacles"][0] == mug
    mlo, mhi = aabb_of(md_obj(c, mug))
    assert mlo[0] - 0.05 <= lo[0] and hi[0] <= mhi[0] + 0.05 and mlo[2] - 0.05 <= lo[2] and hi[2] <= mhi[2] + 0.05


def test_towels_only_hang_on_their_holders():
    assert OBJECT_RESTRICTIONS["Towel"] == {"TowelHolder"}
    assert not allowed_in("Towel", "Drawer") and not allowed_in("HandTowel", "CounterTop")
    assert allowed_in("SoapBar", "Drawer") and allowed_in("Pen", "Mug")
    c = EmbeddedController("FloorPlan416", render_images=False)
    towel = next(o["objectId"] for o in c.last_event.metadata["objects"] if o["objectType"] == "Towel")
    drawer = "Drawer|-01.34|+00.30|+03.33"
    c.step("OpenObject", objectId=drawer, forceAction=True)
    assert c.step("PickupObject", objectId=towel, forceAction=True).metadata["lastActionSuccess"]
    md = c.step("PutObject", objectId=drawer, forceAction=True).metadata
    assert not md["lastActionSuccess"] and "Towel cannot be placed" in md["errorMessage"]


def test_goto_steps_back_from_an_overhanging_counter():
    c = EmbeddedController("FloorPlan30", render_images=False)
    ex = SimSkillExecutor(c)
    drawer = "Drawer|-00.86|+00.77|+00.66"
    r = go_to_remembered(c, ex, drawer)
    assert r.success and md_obj(c, drawer)["visible"], r.message
    agent = c.last_event.metadata["agent"]["position"]
    assert math.hypot(agent["x"] + 0.86, agent["z"] - 0.66) > 0.9  # not from the cell right in front


def test_pose_axes_are_cached_and_read_only():
    a, b = Pose(0, 0.9, 0, 90.0, 30.0).axes(), Pose(1, 0.9, 1, 90.0, 30.0).axes()
    assert a is b and not a.flags.writeable
