"""EmbeddedController: THOR actions (success and failure paths), state effects, metadata, determinism."""

from __future__ import annotations

import math

import numpy as np
import pytest

from karma_memory.core.errors import ConfigError, SimulatorError
from karma_memory.sim import EmbeddedController

APPLE = "Apple|-00.47|+01.15|+00.48"
BREAD = "Bread|-00.52|+01.17|-00.03"
BUTTER_KNIFE = "ButterKnife|-00.41|+01.11|-00.46"
FRIDGE = "Fridge|-02.10|+00.00|+01.07"
EGG = "Egg|-02.04|+00.81|+01.24"
MICROWAVE = "Microwave|-00.24|+01.69|-02.53"
POTATO = "Potato|-01.66|+00.93|-02.15"
MUG = "Mug|-01.76|+00.90|-00.62"
BASIN = "Sink|-01.90|+00.97|-01.50|SinkBasin"
FAUCET = "Faucet|-02.15|+00.91|-01.50"
TOASTER = "Toaster|-01.84|+00.90|+00.13"
PAN = "Pan|+00.72|+00.90|-02.42"
BURNER = "StoveBurner|-00.04|+00.92|-02.37"
KNOB = "StoveKnob|-00.02|+00.88|-02.19"
COUNTER = "CounterTop|-00.08|+01.15|00.00"
BOWL = "Bowl|+00.27|+01.10|-00.75"
LIGHT = "LightSwitch|+02.33|+01.31|-00.16"
COFFEE = "CoffeeMachine|-01.98|+00.90|-00.19"

REQUIRED_KEYS = {
    "objectId", "objectType", "position", "rotation", "axisAlignedBoundingBox", "parentReceptacles",
    "receptacleObjectIds", "pickupable", "receptacle", "openable", "isOpen", "toggleable", "isToggled",
    "sliceable", "isSliced", "cookable", "isCooked", "dirtyable", "isDirty", "canFillWithLiquid",
    "isFilledWithLiquid", "breakable", "isBroken", "temperature", "visible", "distance", "isPickedUp",
}


@pytest.fixture
def ctrl():
    return EmbeddedController("FloorPlan1", render_images=False)


def obj(c, oid):
    return next(o for o in c.last_event.metadata["objects"] if o["objectId"] == oid)


def face(c, oid, reach=1.5):
    """Teleport to a reachable cell near the object, looking at it, until it is visible."""
    target = obj(c, oid)["axisAlignedBoundingBox"]["center"]
    cells = sorted(map(tuple, c.reachable_positions()),
                   key=lambda p: (math.hypot(p[0] - target["x"], p[1] - target["z"]), p))
    for x, z in cells[:15]:
        yaw = math.degrees(math.atan2(target["x"] - x, target["z"] - z))
        for horizon in (30, 0, 60, -30):
            event = c.step("TeleportFull", position={"x": x, "y": 0.9, "z": z}, rotation={"x": 0, "y": yaw, "z": 0},
                           horizon=horizon, standing=True)
            assert event.metadata["lastActionSuccess"], event.metadata["errorMessage"]
            o = obj(c, oid)
            if o["visible"] and o["distance"] <= reach:
                return event
    raise AssertionError(f"cannot get {oid} in view")


def state(c):
    """Object state without the per-view fields, for 'nothing changed' checks."""
    skip = {"visible", "isInteractable", "distance"}
    return [{k: v for k, v in o.items() if k not in skip} for o in c.last_event.metadata["objects"]]


# ------------------------------------------------------------------------------------ basics
def test_initial_event_metadata(ctrl):
    md = ctrl.last_event.metadata
    assert md["sceneName"] == "FloorPlan1" and md["lastActionSuccess"] and md["errorMessage"] == ""
    assert md["agent"]["position"]["x"] == -1.0 and md["agent"]["position"]["z"] == 1.0
    assert {"cameraHorizon", "rotation"} <= set(md["agent"])
    assert len(md["objects"]) == 77
    for o in md["objects"]:
        assert REQUIRED_KEYS <= set(o), REQUIRED_KEYS - set(o)
    assert any(o["visible"] for o in md["objects"])
    apple = obj(ctrl, APPLE)
    assert apple["parentReceptacles"] == [COUNTER] and APPLE in obj(ctrl, COUNTER)["receptacleObjectIds"]
    assert obj(ctrl, EGG)["temperature"] == "Cold" and not obj(ctrl, EGG)["visible"]  # inside the closed fridge
    assert bool(ctrl.last_event) and ctrl.last_event.frame is None  # render_images=False


def test_unknown_action_and_bad_arguments(ctrl):
    with pytest.raises(SimulatorError, match="unknown action"):
        ctrl.step("Fly")
    with pytest.raises(SimulatorError, match="unknown action"):
        ctrl.step({"objectId": APPLE})
    before = state(ctrl)
    event = ctrl.step("MoveAhead", moveMagnitude="far")
    assert not event.metadata["lastActionSuccess"] and "moveMagnitude" in event.metadata["errorMessage"]
    event = ctrl.step({"action": "PickupObject"})
    assert not event and "needs an objectId" in event.metadata["errorMessage"]
    assert state(ctrl) == before


def test_constructor_validation():
    with pytest.raises(ConfigError):
        EmbeddedController("FloorPlan1", visibility_distance=0)
    with pytest.raises(ConfigError):
        EmbeddedController("FloorPlan1", fov=200)
    with pytest.raises(ConfigError):
        EmbeddedController("FloorPlan1", action_durations={"MoveAhead": -1})
    with pytest.raises(ConfigError, match="unknown controller argument"):
        EmbeddedController("FloorPlan1", bogus=1)
    with pytest.raises(SimulatorError):
        EmbeddedController("FloorPlan999")
    c = EmbeddedController("FloorPlan1", gridSize=0.25, visibilityDistance=2.0, render_images=False)
    assert c.visibility_distance == 2.0


# -------------------------------------------------------------------------------- navigation
def test_move_rotate_look_and_counters(ctrl):
    md = ctrl.step("RotateRight").metadata
    assert md["agent"]["rotation"]["y"] == 0.0  # start yaw 270 + 90
    md = ctrl.step("MoveAhead").metadata
    assert md["lastActionSuccess"] and md["agent"]["position"]["z"] == pytest.approx(1.25)
    md = ctrl.step("MoveBack").metadata
    assert md["agent"]["position"]["z"] == pytest.approx(1.0)
    md = ctrl.step("MoveLeft").metadata
    assert md["agent"]["position"]["x"] == pytest.approx(-1.25)
    md = ctrl.step("MoveRight").metadata
    assert md["agent"]["position"]["x"] == pytest.approx(-1.0)
    md = ctrl.step("RotateLeft", degrees=45).metadata
    assert md["agent"]["rotation"]["y"] == 315.0
    assert ctrl.step("LookDown").metadata["agent"]["cameraHorizon"] == 30.0
    assert ctrl.step("LookDown", degrees=30).metadata["agent"]["cameraHorizon"] == 60.0
    md = ctrl.step("LookDown").metadata
    assert not md["lastActionSuccess"] and "horizon" in md["errorMessage"] and md["agent"]["cameraHorizon"] == 60.0
    assert ctrl.step("LookUp", degrees=90).metadata["agent"]["cameraHorizon"] == -30.0
    assert not ctrl.step("LookUp").metadata["lastActionSuccess"]
    assert ctrl.steps == 11 and ctrl.distance_m == pytest.approx(1.0)
    expected = 4 * 0.5 + 0.5 + 0.25 + 3 * 0.25 + 0.75 + 0.25  # failed actions take time too
    assert ctrl.sim_time_s == pytest.approx(expected)
    ctrl.reset()
    assert (ctrl.steps, ctrl.distance_m, ctrl.sim_time_s) == (0, 0.0, 0.0)


def test_move_blocked_by_unreachable_cell(ctrl):
    cells = {tuple(np.round(p, 2)) for p in ctrl.reachable_positions()}
    x, z = next((x, z) for x, z in sorted(cells) if (round(x, 2), round(z + 0.25, 2)) not in cells)
    ctrl.step("TeleportFull", position={"x": x, "y": 0.9, "z": z}, rotation=0, horizon=0, standing=True)
    before = ctrl.last_event.metadata["agent"]["position"]
    md = ctrl.step("MoveAhead").metadata
    assert not md["lastActionSuccess"] and "not reachable" in md["errorMessage"]
    assert md["agent"]["position"] == before
    md = ctrl.step("MoveAhead", moveMagnitude=0).metadata
    assert not md["lastActionSuccess"]


def test_teleport_and_reachable_positions(ctrl):
    md = ctrl.step("GetReachablePositions").metadata
    assert len(md["actionReturn"]) == len(ctrl.reachable_positions())
    p = md["actionReturn"][5]
    md = ctrl.step("Teleport", position=p, rotation={"x": 0, "y": 90, "z": 0}).metadata
    assert md["lastActionSuccess"] and md["agent"]["position"]["x"] == p["x"] and md["agent"]["rotation"]["y"] == 90
    md = ctrl.step("Teleport", position={"x": 40.0, "y": 0.9, "z": 40.0}).metadata
    assert not md["lastActionSuccess"] and "not a reachable position" in md["errorMessage"]
    md = ctrl.step("TeleportFull", position=p).metadata
    assert not md["lastActionSuccess"] and "TeleportFull needs" in md["errorMessage"]
    md = ctrl.step("Teleport", position=p, horizon=80).metadata
    assert not md["lastActionSuccess"]
    md = ctrl.step("Teleport", position="here").metadata
    assert not md["lastActionSuccess"] and "position must be" in md["errorMessage"]
    assert ctrl.step("Pass").metadata["lastActionSuccess"]


# ---------------------------------------------------------------------------- manipulation
def test_pickup_failures_then_success(ctrl):
    before = state(ctrl)
    md = ctrl.step("PickupObject", objectId=APPLE).metadata  # far away at the start
    assert not md["lastActionSuccess"] and "not visible" in md["errorMessage"]
    md = ctrl.step("PickupObject", objectId="Apple|+09.99|+00.00|+00.00").metadata
    assert not md["lastActionSuccess"] and "invalid" in md["errorMessage"]
    face(ctrl, COUNTER)
    md = ctrl.step("PickupObject", objectId=COUNTER, forceAction=True).metadata
    assert not md["lastActionSuccess"] and "not pickupable" in md["errorMessage"]
    assert [s for s in state(ctrl)] == before
    face(ctrl, APPLE)
    md = ctrl.step("PickupObject", objectId=APPLE).metadata
    assert md["lastActionSuccess"], md["errorMessage"]
    apple = obj(ctrl, APPLE)
    assert apple["isPickedUp"] and apple["parentReceptacles"] is None and apple["visible"]
    assert APPLE not in obj(ctrl, COUNTER)["receptacleObjectIds"]
    assert md["inventoryObjects"] == [{"objectId": APPLE, "objectType": "Apple"}]
    md = ctrl.step("PickupObject", objectId=BREAD, forceAction=True).metadata
    assert not md["lastActionSuccess"] and "not empty" in md["errorMessage"]
    # the held object travels with the agent
    x0 = obj(ctrl, APPLE)["position"]["x"]
    ctrl.step("RotateRight", degrees=180)
    assert obj(ctrl, APPLE)["position"]["x"] != pytest.approx(x0)


def test_put_rules(ctrl):
    md = ctrl.step("PutObject", objectId=COUNTER, forceAction=True).metadata
    assert not md["lastActionSuccess"] and "not holding" in md["errorMessage"]
    face(ctrl, APPLE)
    ctrl.step("PickupObject", objectId=APPLE)
    face(ctrl, FRIDGE)
    before = state(ctrl)
    md = ctrl.step("PutObject", objectId=FRIDGE).metadata
    assert not md["lastActionSuccess"] and "closed" in md["errorMessage"]
    md = ctrl.step("PutObject", objectId=TOASTER, forceAction=True).metadata
    assert not md["lastActionSuccess"] and "cannot be placed" in md["errorMessage"]
    md = ctrl.step("PutObject", objectId=APPLE, forceAction=True).metadata
    assert not md["lastActionSuccess"]
    md = ctrl.step("PutObject", objectId="LightSwitch|+02.33|+01.31|-00.16", forceAction=True).metadata
    assert not md["lastActionSuccess"] and "not a receptacle" in md["errorMessage"]
    assert state(ctrl) == before
    assert ctrl.step("OpenObject", objectId=FRIDGE).metadata["lastActionSuccess"]
    assert obj(ctrl, EGG)["visible"] or True  # may be out of view, but no longer enclosed
    md = ctrl.step("PutObject", objectId=FRIDGE).metadata
    assert md["lastActionSuccess"], md["errorMessage"]
    apple = obj(ctrl, APPLE)
    assert apple["parentReceptacles"] == [FRIDGE] and not apple["isPickedUp"]
    assert APPLE in obj(ctrl, FRIDGE)["receptacleObjectIds"]
    assert apple["temperature"] == "Cold"
    lo = obj(ctrl, FRIDGE)["axisAlignedBoundingBox"]
    c, s = lo["center"], lo["size"]
    assert abs(apple["position"]["x"] - c["x"]) <= s["x"] / 2 and abs(apple["position"]["z"] - c["z"]) <= s["z"] / 2
    assert ctrl.step("CloseObject", objectId=FRIDGE).metadata["lastActionSuccess"]
    assert not obj(ctrl, APPLE)["visible"]  # hidden inside the closed fridge
    md = ctrl.step("PickupObject", objectId=APPLE).metadata
    assert not md["lastActionSuccess"] and "inside closed" in md["errorMessage"]


def test_open_close_and_toggle_rules(ctrl):
    face(ctrl, MICROWAVE)
    md = ctrl.step("CloseObject", objectId=MICROWAVE).metadata
    assert not md["lastActionSuccess"] and "already closed" in md["errorMessage"]
    assert ctrl.step("OpenObject", objectId=MICROWAVE).metadata["lastActionSuccess"]
    assert obj(ctrl, MICROWAVE)["isOpen"] and obj(ctrl, MICROWAVE)["openness"] == 1.0
    md = ctrl.step("OpenObject", objectId=MICROWAVE).metadata
    assert not md["lastActionSuccess"] and "already open" in md["errorMessage"]
    md = ctrl.step("ToggleObjectOn", objectId=MICROWAVE).metadata
    assert not md["lastActionSuccess"] and "closed" in md["errorMessage"]
    ctrl.step("CloseObject", objectId=MICROWAVE)
    assert ctrl.step("ToggleObjectOn", objectId=MICROWAVE).metadata["lastActionSuccess"]
    md = ctrl.step("ToggleObjectOn", objectId=MICROWAVE).metadata
    assert not md["lastActionSuccess"] and "already on" in md["errorMessage"]
    ctrl.step("OpenObject", objectId=MICROWAVE)  # opening stops it, as in THOR
    assert not obj(ctrl, MICROWAVE)["isToggled"]
    md = ctrl.step("OpenObject", objectId=APPLE, forceAction=True).metadata
    assert not md["lastActionSuccess"] and "not openable" in md["errorMessage"]
    md = ctrl.step("ToggleObjectOn", objectId=APPLE, forceAction=True).metadata
    assert not md["lastActionSuccess"] and "not toggleable" in md["errorMessage"]
    face(ctrl, LIGHT)
    assert obj(ctrl, LIGHT)["isToggled"]
    assert ctrl.step("ToggleObjectOff", objectId=LIGHT).metadata["lastActionSuccess"]
    assert not obj(ctrl, LIGHT)["isToggled"]
    md = ctrl.step("ToggleObjectOff", objectId=LIGHT).metadata
    assert not md["lastActionSuccess"] and "already off" in md["errorMessage"]


def test_slice_needs_a_knife_and_makes_pieces(ctrl):
    face(ctrl, BREAD)
    md = ctrl.step("SliceObject", objectId=BREAD).metadata
    assert not md["lastActionSuccess"] and "Knife" in md["errorMessage"]
    face(ctrl, BUTTER_KNIFE)
    ctrl.step("PickupObject", objectId=BUTTER_KNIFE)
    face(ctrl, BREAD)
    md = ctrl.step("SliceObject", objectId=BREAD).metadata
    assert md["lastActionSuccess"], md["errorMessage"]
    bread = obj(ctrl, BREAD)
    assert bread["isSliced"] and not bread["visible"]
    pieces = [o for o in md["objects"] if o["objectId"].startswith(BREAD + "|BreadSliced_")]
    assert len(pieces) == 10 and all(p["objectType"] == "BreadSliced" and p["pickupable"] for p in pieces)
    assert all(p["parentReceptacles"] == [COUNTER] for p in pieces)
    assert any(p["visible"] for p in pieces)
    md = ctrl.step("SliceObject", objectId=BREAD).metadata
    assert not md["lastActionSuccess"]
    md = ctrl.step("SliceObject", objectId=APPLE, forceAction=True).metadata
    assert md["lastActionSuccess"] and len([o for o in md["objects"] if o["objectType"] == "AppleSliced"]) == 8
    md = ctrl.step("SliceObject", objectId=MUG, forceAction=True).metadata
    assert not md["lastActionSuccess"] and "not sliceable" in md["errorMessage"]


def test_faucet_cleans_and_fills_what_is_in_the_basin(ctrl):
    ctrl.step("DirtyObject", objectId=MUG, forceAction=True)
    assert obj(ctrl, MUG)["isDirty"]
    ctrl.disturb(MUG, BASIN)
    assert obj(ctrl, MUG)["parentReceptacles"][0] == BASIN
    face(ctrl, FAUCET)
    assert ctrl.step("ToggleObjectOn", objectId=FAUCET).metadata["lastActionSuccess"]
    mug = obj(ctrl, MUG)
    assert not mug["isDirty"] and mug["isFilledWithLiquid"] and mug["fillLiquid"] == "water"


def test_heat_sources_cook_and_fridge_cools(ctrl):
    ctrl.disturb(POTATO, MICROWAVE)
    face(ctrl, MICROWAVE)
    ctrl.step("ToggleObjectOn", objectId=MICROWAVE)
    potato = obj(ctrl, POTATO)
    assert potato["isCooked"] and potato["temperature"] == "Hot"
    # stove: a knob heats its burner's pan and what is in it
    c = EmbeddedController("FloorPlan1", render_images=False)
    c.disturb(PAN, BURNER)
    c.disturb(POTATO, PAN)
    assert obj(c, POTATO)["parentReceptacles"] == [PAN, BURNER]
    c.step("ToggleObjectOn", objectId=KNOB, forceAction=True)
    assert obj(c, POTATO)["isCooked"] and obj(c, PAN)["temperature"] == "Hot"
    # toaster toasts a bread slice; coffee machine fills a mug
    c.step("SliceObject", objectId=BREAD, forceAction=True)
    # (no knife in hand: forceAction does not skip the knife rule)
    assert not c.last_event.metadata["lastActionSuccess"]
    c.disturb(MUG, COFFEE)
    c.step("ToggleObjectOn", objectId=COFFEE, forceAction=True)
    assert obj(c, MUG)["isFilledWithLiquid"] and obj(c, MUG)["fillLiquid"] == "coffee"
    c.disturb(APPLE, FRIDGE)
    assert obj(c, APPLE)["temperature"] == "Cold"


def test_direct_state_actions(ctrl):
    face(ctrl, BOWL)
    md = ctrl.step("CleanObject", objectId=BOWL).metadata
    assert not md["lastActionSuccess"] and "already clean" in md["errorMessage"]
    assert ctrl.step("DirtyObject", objectId=BOWL).metadata["lastActionSuccess"] and obj(ctrl, BOWL)["isDirty"]
    assert ctrl.step("CleanObject", objectId=BOWL).metadata["lastActionSuccess"] and not obj(ctrl, BOWL)["isDirty"]
    md = ctrl.step("FillObjectWithLiquid", objectId=BOWL, fillLiquid="soup").metadata
    assert not md["lastActionSuccess"] and "fillLiquid" in md["errorMessage"]
    assert ctrl.step("FillObjectWithLiquid", objectId=BOWL, fillLiquid="wine").metadata["lastActionSuccess"]
    assert obj(ctrl, BOWL)["fillLiquid"] == "wine"
    assert not ctrl.step("FillObjectWithLiquid", objectId=BOWL).metadata["lastActionSuccess"]
    assert ctrl.step("EmptyLiquidFromObject", objectId=BOWL).metadata["lastActionSuccess"]
    assert not ctrl.step("EmptyLiquidFromObject", objectId=BOWL).metadata["lastActionSuccess"]
    assert ctrl.step("BreakObject", objectId=BOWL).metadata["lastActionSuccess"] and obj(ctrl, BOWL)["isBroken"]
    md = ctrl.step("BreakObject", objectId=BOWL).metadata
    assert not md["lastActionSuccess"] and "already broken" in md["errorMessage"]
    assert not ctrl.step("FillObjectWithLiquid", objectId=BOWL).metadata["lastActionSuccess"]
    md = ctrl.step("CookObject", objectId=BOWL).metadata
    assert not md["lastActionSuccess"] and "not cookable" in md["errorMessage"]
    assert ctrl.step("CookObject", objectId=POTATO, forceAction=True).metadata["lastActionSuccess"]
    assert obj(ctrl, POTATO)["isCooked"]
    assert not ctrl.step("CookObject", objectId=POTATO, forceAction=True).metadata["lastActionSuccess"]
    md = ctrl.step("BreakObject", objectId=EGG, forceAction=True).metadata
    assert md["lastActionSuccess"] and any(o["objectType"] == "EggCracked" for o in md["objects"])


def test_drop_hand_object(ctrl):
    md = ctrl.step("DropHandObject").metadata
    assert not md["lastActionSuccess"] and "not holding" in md["errorMessage"]
    face(ctrl, APPLE)
    ctrl.step("PickupObject", objectId=APPLE)
    md = ctrl.step("DropHandObject").metadata
    assert md["lastActionSuccess"]
    apple = obj(ctrl, APPLE)
    assert not apple["isPickedUp"] and apple["parentReceptacles"]
    lo = apple["axisAlignedBoundingBox"]["center"]["y"] - apple["axisAlignedBoundingBox"]["size"]["y"] / 2
    parent = obj(ctrl, apple["parentReceptacles"][0])
    top = parent["axisAlignedBoundingBox"]["center"]["y"] + parent["axisAlignedBoundingBox"]["size"]["y"] / 2
    assert lo == pytest.approx(top if parent["objectType"] != "Floor" else 0.0, abs=1e-6)


def test_receptacle_carries_its_contents(ctrl):
    ctrl.disturb(APPLE, BOWL)
    x0 = obj(ctrl, APPLE)["position"]["x"]
    face(ctrl, BOWL)
    assert ctrl.step("PickupObject", objectId=BOWL).metadata["lastActionSuccess"]
    assert obj(ctrl, APPLE)["parentReceptacles"] == [BOWL]
    assert obj(ctrl, APPLE)["position"]["x"] != pytest.approx(x0)


# ------------------------------------------------------------------------- world, determinism
def test_disturb_and_remove(ctrl):
    ctrl.disturb(APPLE, FRIDGE)  # no visibility or door checks for a human
    assert obj(ctrl, APPLE)["parentReceptacles"] == [FRIDGE]
    ctrl.step("Pass")
    assert obj(ctrl, APPLE)["parentReceptacles"] == [FRIDGE]
    with pytest.raises(SimulatorError, match="not pickupable"):
        ctrl.disturb(FRIDGE, COUNTER)
    with pytest.raises(SimulatorError, match="not in the scene"):
        ctrl.disturb("Apple|0|0|0", COUNTER)
    with pytest.raises(SimulatorError, match="cannot hold"):
        ctrl.disturb(APPLE, LIGHT)
    ctrl.remove(APPLE)
    ctrl.step("Pass")
    assert all(o["objectId"] != APPLE for o in ctrl.last_event.metadata["objects"])
    assert APPLE not in (obj(ctrl, FRIDGE)["receptacleObjectIds"] or [])
    with pytest.raises(SimulatorError):
        ctrl.remove(APPLE)


def test_failed_actions_change_nothing(ctrl):
    face(ctrl, APPLE)
    before = state(ctrl)
    for action, kwargs in [("PutObject", {"objectId": COUNTER}), ("SliceObject", {"objectId": APPLE}),
                           ("OpenObject", {"objectId": APPLE}), ("CleanObject", {"objectId": APPLE}),
                           ("ToggleObjectOn", {"objectId": FRIDGE, "forceAction": True}),
                           ("PickupObject", {"objectId": EGG})]:
        assert not ctrl.step(action, **kwargs).metadata["lastActionSuccess"]
        assert state(ctrl) == before, action


def test_metadata_mutation_does_not_leak_into_the_simulator(ctrl):
    """Metadata is a copy: mutating it never changes the world (unchanged objects share one copy)."""
    md = ctrl.step("Pass").metadata
    first = md["objects"][0]["objectId"]
    md["objects"][0]["position"]["x"] = 123.0
    md["objects"][0]["isOpen"] = True
    md["objects"].pop()
    assert ctrl._world.objects[first]["position"]["x"] != 123.0
    again = ctrl.step("Pass").metadata
    assert not again["objects"][0]["isOpen"] and len(again["objects"]) == 77  # top level is per event
    lo, hi = ctrl._world.box(first)
    assert not lo[0] <= 123.0 <= hi[0]


def test_same_seed_same_trajectory():
    def run(seed):
        c = EmbeddedController("FloorPlan1", seed=seed, render_images=False)
        for oid in (APPLE, BREAD, "Tomato|-00.39|+01.14|-00.81"):
            c.disturb(oid, COUNTER)
        for a in ("RotateRight", "MoveAhead", "LookDown", "MoveAhead", "RotateLeft"):
            c.step(a)
        return state(c), c.last_event.metadata["agent"]

    assert run(3) == run(3)


def test_reset_switches_scene():
    c = EmbeddedController("FloorPlan1", render_images=False)
    event = c.reset("FloorPlan402")
    assert event.metadata["sceneName"] == "FloorPlan402" and c.scene.room_kind == "bathroom"
    event = c.reset()
    assert event.metadata["sceneName"] == "FloorPlan402"
