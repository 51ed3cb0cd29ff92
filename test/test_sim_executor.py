"""SimSkillExecutor: every skill of SKILL_SCHEMA, costs, failure messages, no omniscience."""

from __future__ import annotations

import math

import pytest

from karma_memory.core.errors import ConfigError
from karma_memory.core.skills import SKILL_SCHEMA, SkillCall, SkillExecutor
from karma_memory.sim import EmbeddedController, SimSkillExecutor
from karma_memory.sim.executor import ThorSkillExecutorBase, parse_object_id_position

APPLE = "Apple|-00.47|+01.15|+00.48"
FRIDGE = "Fridge|-02.10|+00.00|+01.07"
MUG = "Mug|-01.76|+00.90|-00.62"
POTATO = "Potato|-01.66|+00.93|-02.15"
BOWL = "Bowl|+00.27|+01.10|-00.75"
COUNTER = "CounterTop|-00.08|+01.15|00.00"
BASIN = "Sink|-01.90|+00.97|-01.50|SinkBasin"


def C(skill, **args):
    return SkillCall(skill, args)


@pytest.fixture
def env():
    c = EmbeddedController("FloorPlan1", render_images=False)
    return c, SimSkillExecutor(c)


def md_obj(c, oid):
    return next(o for o in c.last_event.metadata["objects"] if o["objectId"] == oid)


def run(ex, *calls):
    results = [ex.execute(call) for call in calls]
    for call, r in zip(calls, results):
        assert r.success, f"{call}: {r.message}"
    return results


def test_protocol_and_schema_coverage(env):
    c, ex = env
    assert isinstance(ex, SkillExecutor)
    for name in SKILL_SCHEMA:
        assert callable(getattr(ThorSkillExecutorBase, f"_skill_{name}"))
    assert ex.area_positions and all(a.startswith("area_") for a in ex.area_positions)
    visible = ex.visible_objects()
    assert visible and all(o["visible"] for o in visible)
    with pytest.raises(ConfigError):
        SimSkillExecutor(c, reach_m=0)
    with pytest.raises(ConfigError):
        SimSkillExecutor(c, area_positions={"a": "nowhere"})


def test_invalid_calls_fail_with_messages(env):
    _, ex = env
    r = ex.execute(SkillCall("Teleport", {}))
    assert not r.success and "unknown skill" in r.message and r.cost.steps == 0
    r = ex.execute(SkillCall("PickupObject", {}))
    assert not r.success and "missing argument" in r.message
    r = ex.execute(C("PickupObject", object="Unicorn"))
    assert not r.success and "no Unicorn in this scene" in r.message
    r = ex.execute(C("GoToObject", object="Apple|+09.00|+00.00|+00.00"))
    assert not r.success and "unknown objectId" in r.message


def test_no_omniscience_type_needs_visibility(env):
    c, ex = env
    r = ex.execute(C("PickupObject", object="Apple"))
    assert not r.success and r.message == "no visible Apple; Explore first" and r.cost.steps == 0
    r = ex.execute(C("GoToObject", object="apple"))
    assert not r.success and "Explore first" in r.message


def test_explore_then_pickup(env):
    c, ex = env
    r = ex.execute(C("Explore", object="Apple"))
    assert r.success and r.object_id == APPLE and r.areas_visited >= 1
    assert r.cost.steps > 0 and r.cost.sim_time_s > 0 and md_obj(c, APPLE)["visible"]
    assert APPLE in ex.known
    r = ex.execute(C("PickupObject", object="Apple"))
    if not r.success:  # visible but maybe out of reach: go there first
        assert "GoToObject first" in r.message
        run(ex, C("GoToObject", object=APPLE))
        r = ex.execute(C("PickupObject", object="Apple"))
    assert r.success and r.object_id == APPLE and md_obj(c, APPLE)["isPickedUp"]
    r = ex.execute(C("PickupObject", object="Bread"))
    assert not r.success and ("hands are full" in r.message or "no visible Bread" in r.message)


def test_explore_areas_argument(env):
    c, ex = env
    r = ex.execute(C("Explore", object="Apple", areas=["area_999"]))
    assert not r.success and "unknown area" in r.message and r.cost.steps == 0
    areas = list(ex.area_positions)
    far = max(areas, key=lambda a: math.dist(ex.area_positions[a], (-0.47, 0.48)))
    near = min(areas, key=lambda a: math.dist(ex.area_positions[a], (-0.47, 0.48)))
    r = ex.execute(C("Explore", object="Apple", areas=[far, near]))
    assert r.success and r.areas_visited in (1, 2) and far in r.message or near in r.message
    r2 = ex.execute(C("Explore", object="Apple", areas=[far]))
    assert r2.success and r2.areas_visited == 0 and "already visible" in r2.message


def test_explore_fails_for_hidden_objects_and_counts_areas(env):
    _, ex = env
    r = ex.execute(C("Explore", object="Egg"))  # inside the closed fridge: never visible
    assert not r.success and "not found" in r.message
    assert r.areas_visited == len(ex.area_positions) and r.cost.distance_m > 0


def test_goto_costs_follow_the_grid(env):
    c, ex = env
    start = c.last_event.metadata["agent"]["position"]
    steps0, metres0 = c.steps, c.distance_m
    r = ex.execute(C("GoToObject", object=FRIDGE))  # an id: its position is encoded in it
    assert r.success and r.object_id == FRIDGE and md_obj(c, FRIDGE)["visible"]
    assert r.cost.steps == c.steps - steps0
    assert r.cost.distance_m == pytest.approx(c.distance_m - metres0)
    end = c.last_event.metadata["agent"]["position"]
    assert r.cost.distance_m >= math.hypot(end["x"] - start["x"], end["z"] - start["z"]) - 1e-6
    assert r.cost.sim_time_s > 0


def test_goto_fails_when_a_human_moved_the_object(env):
    c, ex = env
    run(ex, C("Explore", object="Apple"))
    c.disturb(APPLE, FRIDGE)
    c.step("CloseObject", objectId=FRIDGE)  # already closed: harmless failure, refreshes the event
    r = ex.execute(C("GoToObject", object=APPLE))
    assert not r.success and "not visible near its last known position" in r.message and "Explore" in r.message
    assert APPLE not in ex.known


def test_goto_object_inside_closed_fridge_then_open_and_take(env):
    c, ex = env
    egg = "Egg|-02.04|+00.81|+01.24"
    r = ex.execute(C("GoToObject", object=egg))
    assert r.success and "inside closed" in r.message
    r = ex.execute(C("PickupObject", object=egg))
    assert not r.success and "not visible" in r.message
    run(ex, C("OpenObject", object="Fridge"), C("PickupObject", object=egg), C("CloseObject", object="Fridge"))
    assert md_obj(c, egg)["isPickedUp"] and not md_obj(c, FRIDGE)["isOpen"]


def test_open_close_of_what_already_is_so_is_a_checked_no_op(env):
    c, ex = env
    run(ex, C("GoToObject", object=FRIDGE), C("OpenObject", object="Fridge"))
    r = ex.execute(C("OpenObject", object="Fridge"))
    assert r.success and "already open" in r.message and r.cost.steps == 0 and r.object_id == FRIDGE
    md = c.step("OpenObject", objectId=FRIDGE).metadata  # the controller keeps THOR's semantics
    assert not md["lastActionSuccess"] and "already open" in md["errorMessage"]
    run(ex, C("CloseObject", object="Fridge"))
    r = ex.execute(C("CloseObject", object=FRIDGE))
    assert r.success and "already closed" in r.message and r.cost.steps == 0
    c.step("TeleportFull", position={"x": 1.75, "y": 0.9, "z": 1.5}, rotation=270, horizon=30)
    r = ex.execute(C("OpenObject", object=FRIDGE))  # still has to see it to know
    assert not r.success and ("not visible" in r.message or "m away" in r.message)


def test_put_in_closed_fridge_needs_opening(env):
    c, ex = env
    run(ex, C("Explore", object="Apple"), C("GoToObject", object=APPLE), C("PickupObject", object="Apple"),
        C("GoToObject", object=FRIDGE))
    r = ex.execute(C("PutObject", receptacle="Fridge"))
    assert not r.success and "closed; OpenObject first" in r.message
    run(ex, C("OpenObject", object="Fridge"), C("PutObject", receptacle="Fridge"), C("CloseObject", object="Fridge"))
    assert md_obj(c, APPLE)["parentReceptacles"][0] == FRIDGE
    r = ex.execute(C("PutObject", receptacle="Fridge"))
    assert not r.success and "not holding anything" in r.message


def test_manipulation_needs_reach(env):
    c, ex = env
    run(ex, C("Explore", object="Apple"))
    c.step("TeleportFull", position={"x": 1.75, "y": 0.9, "z": 1.5}, rotation=270, horizon=30, standing=True)
    c.step("Pass")
    apple = md_obj(c, APPLE)
    r = ex.execute(C("PickupObject", object=APPLE))
    if apple["visible"]:
        assert not r.success and "m away" in r.message and "GoToObject first" in r.message
    else:
        assert not r.success and "not visible" in r.message


def test_slice_needs_knife_and_makes_pieces(env):
    c, ex = env
    run(ex, C("Explore", object="Bread"), C("GoToObject", object="Bread"))
    r = ex.execute(C("SliceObject", object="Bread"))
    assert not r.success and "PickupObject a knife first" in r.message
    run(ex, C("Explore", object="ButterKnife"), C("GoToObject", object="ButterKnife"),
        C("PickupObject", object="ButterKnife"), C("Explore", object="Bread"), C("GoToObject", object="Bread"),
        C("SliceObject", object="Bread"))
    assert any(o["objectType"] == "BreadSliced" for o in c.last_event.metadata["objects"])
    bread = next(o["objectId"] for o in c.last_event.metadata["objects"] if o["objectType"] == "Bread")
    r = ex.execute(C("GoToObject", object=bread))  # the whole loaf is gone: fail at once, pointing at the pieces
    assert not r.success and "has been sliced" in r.message and r.cost.steps == 0 and r.object_id == bread


def test_cook_with_microwave(env):
    c, ex = env
    r = ex.execute(C("CookObject", object=POTATO))
    assert not r.success  # potato not visible/known, nothing known to cook with
    run(ex, C("Explore", object="Potato"), C("GoToObject", object="Potato"), C("Explore", object="Microwave"))
    run(ex, C("GoToObject", object=POTATO))
    r = ex.execute(C("CookObject", object="Potato"))
    assert r.success, r.message
    potato = md_obj(c, POTATO)
    assert potato["isCooked"] and potato["temperature"] == "Hot" and potato["isPickedUp"]
    microwave = next(o for o in c.last_event.metadata["objects"] if o["objectType"] == "Microwave")
    assert not microwave["isOpen"] and not microwave["isToggled"]
    assert r.cost.steps >= 8


def test_clean_in_sink(env):
    c, ex = env
    c.step("DirtyObject", objectId=MUG, forceAction=True)
    run(ex, C("Explore", object="SinkBasin"), C("Explore", object="Mug"), C("GoToObject", object=MUG))
    r = ex.execute(C("CleanObject", object="Mug"))
    assert r.success, r.message
    mug = md_obj(c, MUG)
    assert not mug["isDirty"] and mug["isPickedUp"] and mug["isFilledWithLiquid"]
    assert not any(o["isToggled"] for o in c.last_event.metadata["objects"] if o["objectType"] == "Faucet")


def test_clean_without_known_sink_fails_early(env):
    c, ex = env
    run(ex, C("Explore", object="Apple"), C("GoToObject", object=APPLE))
    ex.known.clear()  # forget everything seen on the way
    assert not any(o["objectType"] == "SinkBasin" for o in ex.visible_objects())
    r = ex.execute(C("CleanObject", object="Apple"))
    assert not r.success and "no known SinkBasin or BathtubBasin" in r.message and "Explore first" in r.message
    assert not md_obj(c, APPLE)["isPickedUp"] and r.cost.steps == 0  # failed before touching anything


def test_throw_switch_toggle_fill_empty_break_drop(env):
    c, ex = env
    run(ex, C("Explore", object="GarbageCan"), C("Explore", object="Bowl"), C("GoToObject", object=BOWL))
    run(ex, C("FillObject", object="Bowl"))
    assert md_obj(c, BOWL)["isFilledWithLiquid"]
    run(ex, C("EmptyObject", object="Bowl"))
    assert not md_obj(c, BOWL)["isFilledWithLiquid"]
    run(ex, C("PickupObject", object="Bowl"), C("DropHandObject"))
    assert not md_obj(c, BOWL)["isPickedUp"]
    r = ex.execute(C("DropHandObject"))
    assert not r.success and "not holding" in r.message
    run(ex, C("GoToObject", object=BOWL), C("ThrowObject", object="Bowl"))
    assert md_obj(c, BOWL)["parentReceptacles"][0].startswith("GarbageCan")
    light = "LightSwitch|+02.33|+01.31|-00.16"
    run(ex, C("Explore", object="LightSwitch"), C("GoToObject", object=light), C("SwitchOff", object="LightSwitch"))
    assert not md_obj(c, light)["isToggled"]
    r = ex.execute(C("SwitchOff", object="LightSwitch"))
    assert not r.success and "already off" in r.message
    run(ex, C("SwitchOn", object="LightSwitch"), C("ToggleOff", object=light), C("ToggleOn", object=light))
    assert md_obj(c, light)["isToggled"]
    run(ex, C("Explore", object="Mug"), C("GoToObject", object=MUG), C("BreakObject", object="Mug"))
    assert md_obj(c, MUG)["isBroken"]
    r = ex.execute(C("OpenObject", object=MUG))
    assert not r.success and "not openable" in r.message


def test_sink_argument_means_its_basin(env):
    c, ex = env
    run(ex, C("Explore", object="Mug"), C("GoToObject", object=MUG), C("PickupObject", object="Mug"),
        C("Explore", object="Sink"), C("GoToObject", object=BASIN), C("PutObject", receptacle="Sink"))
    assert md_obj(c, MUG)["parentReceptacles"][0] == BASIN


def test_same_plan_same_outcome():
    plan = [C("Explore", object="Apple"), C("GoToObject", object=APPLE), C("PickupObject", object="Apple"),
            C("GoToObject", object=FRIDGE), C("OpenObject", object="Fridge"), C("PutObject", receptacle="Fridge")]

    def go():
        c = EmbeddedController("FloorPlan1", render_images=False, seed=5)
        ex = SimSkillExecutor(c)
        return [(r.success, r.message, r.cost, r.object_id, r.areas_visited) for r in map(ex.execute, plan)]

    assert go() == go()


def test_remember_and_parse_ids(env):
    _, ex = env
    assert parse_object_id_position("Sink|-01.90|+00.97|-01.50|SinkBasin") == (-1.90, 0.97, -1.50)
    assert parse_object_id_position("nonsense") is None
    ex.remember(APPLE, (-0.47, 1.15, 0.48))
    assert ex.known[APPLE] == (-0.47, 1.15, 0.48)
