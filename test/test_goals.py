"""Goal-condition parser, checker, validation and tracker (karma_memory.core.goals) on hand-built THOR metadata."""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

import pytest

from karma_memory.core.errors import GoalConditionError, KarmaMemoryError, UnknownObjectError
from karma_memory.core.goals import (
    COORDINATE_TOLERANCE_M,
    GoalCondition,
    GoalHistory,
    GoalTracker,
    check,
    parse_goal,
    parse_goals,
    parse_state,
    validate_for_scene,
)
from karma_memory.core.lexicon import TYPE_CAPABILITIES

# ----------------------------------------------------------------------------------------------- fixtures


def thor(object_type: str, oid: str | None = None, *, at: tuple[float, float, float] = (0.0, 0.0, 0.0),
         parents: tuple[str, ...] = (), **state: Any) -> dict[str, Any]:
    """One THOR metadata dict with the type's capability flags and default states."""
    obj: dict[str, Any] = {
        "objectId": oid or f"{object_type}|{at[0]:+.2f}|{at[1]:+.2f}|{at[2]:+.2f}",
        "objectType": object_type,
        "position": {"x": at[0], "y": at[1], "z": at[2]},
        "parentReceptacles": list(parents) or None,
        "receptacleObjectIds": [],
        "isOpen": False, "isToggled": False, "isSliced": False, "isCooked": False, "isDirty": False,
        "isFilledWithLiquid": False, "isBroken": False, "isPickedUp": False, "temperature": "RoomTemp",
        "controlledObjects": None,
    }
    for cap in ("pickupable", "receptacle", "openable", "toggleable", "sliceable", "cookable", "dirtyable",
                "canFillWithLiquid", "breakable", "isHeatSource", "isColdSource", "moveable"):
        obj[cap] = cap in TYPE_CAPABILITIES[object_type]
    obj.update(state)
    return obj


def kitchen() -> list[dict[str, Any]]:
    """A tiny kitchen: counter with apple, mug and knife; sink with faucet; fridge; microwave; stove; drawers."""
    return [
        thor("CounterTop", "CounterTop|1"),
        thor("Apple", "Apple|1", at=(0.5, 0.9, 0.0), parents=("CounterTop|1",)),
        thor("Mug", "Mug|1", at=(0.7, 0.9, 0.0), parents=("CounterTop|1",)),
        thor("Knife", "Knife|1", at=(0.9, 0.9, 0.0), parents=("CounterTop|1",)),
        thor("Plate", "Plate|1", at=(1.2, 0.9, 0.0), parents=("CounterTop|1",)),
        thor("Bowl", "Bowl|1", at=(1.4, 0.9, 0.0), parents=("CounterTop|1",)),
        thor("Potato", "Potato|1", at=(1.6, 0.9, 0.0), parents=("CounterTop|1",)),
        thor("Bread", "Bread|1", at=(1.8, 0.9, 0.0), parents=("CounterTop|1",)),
        thor("Sink", "Sink|1", at=(2.0, 0.9, 0.0)),
        thor("SinkBasin", "Sink|1|SinkBasin", at=(2.0, 0.8, 0.0)),
        thor("Faucet", "Faucet|1", at=(2.0, 1.0, -0.3)),
        thor("Fridge", "Fridge|1", at=(-1.0, 0.0, 0.0), parents=("Floor|1",), isColdSource=True),
        thor("Floor", "Floor|1"),
        thor("Microwave", "Microwave|1", at=(0.0, 1.5, 1.0)),
        thor("StoveBurner", "StoveBurner|1", at=(3.0, 0.9, 0.0)),
        thor("StoveKnob", "StoveKnob|1", at=(3.0, 0.8, 0.3), controlledObjects=["StoveBurner|1"]),
        thor("Drawer", "Drawer|1", at=(0.0, 0.5, 0.0)),
        thor("Drawer", "Drawer|2", at=(0.5, 0.5, 0.0)),
        thor("LightSwitch", "LightSwitch|1", isToggled=True),
    ]


def by_id(objects: list[dict[str, Any]], oid: str) -> dict[str, Any]:
    return next(o for o in objects if o["objectId"] == oid)


def move(objects: list[dict[str, Any]], oid: str, into: str | None) -> list[dict[str, Any]]:
    """A copy of ``objects`` with ``oid`` moved into receptacle ``into`` (None: into the hand)."""
    out = copy.deepcopy(objects)
    for o in out:
        if o["objectId"] == oid:
            o["parentReceptacles"] = [into] if into else None
            o["isPickedUp"] = into is None
    return out


def setp(objects: list[dict[str, Any]], oid: str, **state: Any) -> list[dict[str, Any]]:
    """A copy of ``objects`` with state flags of ``oid`` changed."""
    out = copy.deepcopy(objects)
    by_id(out, oid).update(state)
    return out


def slice_apple(objects: list[dict[str, Any]], pieces: int = 3) -> list[dict[str, Any]]:
    """THOR slicing: the apple is flagged sliced and AppleSliced_k pieces appear where it was."""
    out = setp(objects, "Apple|1", isSliced=True)
    apple = by_id(out, "Apple|1")
    for k in range(pieces):
        out.append(thor("AppleSliced", f"Apple|1|AppleSliced_{k}", at=(0.5, 0.9, 0.05 * k),
                        parents=tuple(apple["parentReceptacles"] or ())))
    return out


def holds(text: str, objects: list[dict[str, Any]], **kwargs: Any) -> bool:
    return check(parse_goal(text), objects, **kwargs)


# ----------------------------------------------------------------------------------------------- parser


@pytest.mark.parametrize(
    ("text", "canonical"),
    [
        ("ON(Apple, Plate): 1", "ON(Apple, Plate)"),
        ("ON(Apple,Plate)", "ON(Apple, Plate)"),
        ("INSIDE(apple, trash): 1", "INSIDE(apple, trash)"),
        ("inside( 'Apple' , \"Fridge\" ) : 1", "INSIDE(Apple, Fridge)"),
        ("STATE(apple, sliced): 1", "STATE(apple, sliced)"),
        ("STATE(apple, washed)", "STATE(apple, clean)"),
        ("STATE(apple, cleaned)", "STATE(apple, clean)"),
        ("STATE(mug, heated): 1", "STATE(mug, hot)"),
        ("STATE(fridge, opened)", "STATE(fridge, open)"),
        ("STATE(light, switched on)", "STATE(light, on)"),
        ("STATE(Mug, filled)", "STATE(Mug, filled)"),
        ("STATE(Mug, empty)", "STATE(Mug, empty)"),
        ("STATE(Apple, cold)", "STATE(Apple, cold)"),
        ("STATE(Vase, broken)", "STATE(Vase, broken)"),
        ("STATE(Plate, dirty)", "STATE(Plate, dirty)"),
        ("STATE(Potato, cooked)", "STATE(Potato, cooked)"),
        ("TOGGLEON(Faucet): 1", "STATE(Faucet, on)"),
        ("TOGGLEN(Faucet): 1", "STATE(Faucet, on)"),
        ("TOGGLEOFF(Faucet)", "STATE(Faucet, off)"),
        ("SWITCHON(LightSwitch): 1", "STATE(LightSwitch, on)"),
        ("SWITCHOFF(robot, LightSwitch)", "STATE(LightSwitch, off)"),
        ("OPEN(Fridge)", "STATE(Fridge, open)"),
        ("CLOSED(Fridge): 1", "STATE(Fridge, closed)"),
        ("HOLD(Apple)", "HOLD(Apple)"),
        ("HOLDON(robot, Apple): 1", "HOLD(Apple)"),
        ("HOLDON(robot1, Apple)", "HOLD(Apple)"),
        ("ON(soapbar,(-1.7, 0.8, 0.3))", "ON(soapbar, (-1.7, 0.8, 0.3))"),
        ("ON(soapbar, -1.7, 0.8, 0.3): 1", "ON(soapbar, (-1.7, 0.8, 0.3))"),
        ("ON(Apple, Plate): 0", "ON(Apple, Plate): 0"),
        ("TOGGLEON(Faucet): true", "STATE(Faucet, on)"),
    ],
)
def test_parse_goal_accepts_the_language(text: str, canonical: str) -> None:
    condition = parse_goal(text)
    assert str(condition) == canonical
    assert condition.text == text.strip()
    assert parse_goal(str(condition)) == condition  # canonical form round-trips


def test_parse_goals_splits_at_top_level_separators() -> None:
    goals = parse_goals("INSIDE(Apple, Sink): 1, TOGGLEON(Faucet); STATE(Apple, clean): 1\nON(Soap, (1, 2, 3)),")
    assert [str(g) for g in goals] == [
        "INSIDE(Apple, Sink)", "STATE(Faucet, on)", "STATE(Apple, clean)", "ON(Soap, (1, 2, 3))",
    ]
    assert goals[3].point == (1.0, 2.0, 3.0)
    assert parse_goals("") == [] and parse_goals("  \n ") == []


def test_goal_condition_is_frozen_and_compares_by_meaning() -> None:
    a, b = parse_goal("TOGGLEON(Faucet): 1"), parse_goal("SWITCHON(Faucet)")
    assert a == b and hash(a) == hash(b)
    with pytest.raises(AttributeError):
        a.obj = "Mug"  # type: ignore[misc]
    assert parse_goal("ON(Apple, Plate)").names == ("Apple", "Plate")
    assert parse_goal("HOLD(Apple)").names == ("Apple",)


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("ON(desk): 1", "ON needs an object and a receptacle"),
        ("INSIDE(Fridge): 1", "INSIDE needs an object and a receptacle"),
        ("STATE(laptop, desk)", "did you mean ON(laptop, desk)?"),
        ("STATE(book, sofa): 1", "'sofa' is not a state"),
        ("STATE(apple, melted)", "'melted' is not a state"),
        ("STATE(apple)", "STATE needs an object and a state"),
        ("FLY(apple)", "unknown predicate 'FLY'"),
        ("ON(apple, plate", "unbalanced '('"),
        ("ON(apple, plate))", "unbalanced ')'"),
        ("ON apple plate", "expected NAME(arguments)"),
        ("ON(apple, (1, 2))", "is not three numbers"),
        ("ON(apple, (1, 2, nan))", "is not finite"),
        ("ON(apple, plate): 2", "value '2' is not 1 or 0"),
        ("ON(, plate)", "empty argument"),
        ("HOLD()", "HOLD needs one object"),
        ("TOGGLEON(Apple, Faucet)", "TOGGLEON needs exactly one object"),
        ("ON(a, b, c)", "ON needs an object and a receptacle"),
    ],
)
def test_malformed_conditions_raise_naming_the_condition(text: str, fragment: str) -> None:
    with pytest.raises(GoalConditionError) as info:
        parse_goals(f"ON(Apple, Plate): 1, {text}")
    message = str(info.value)
    assert fragment in message
    assert text.split(",")[0].strip() in message or "unbalanced" in message
    assert isinstance(info.value, KarmaMemoryError) and isinstance(info.value, ValueError)


def test_parse_goals_rejects_non_strings() -> None:
    with pytest.raises(GoalConditionError, match="must be a string"):
        parse_goals(["ON(Apple, Plate)"])  # type: ignore[arg-type]


def test_goal_condition_validates_direct_construction() -> None:
    with pytest.raises(GoalConditionError, match="unknown predicate"):
        GoalCondition("NEAR", "Apple", target="Plate")
    with pytest.raises(GoalConditionError, match="unknown state"):
        GoalCondition("STATE", "Apple", state="washed")  # canonical states only; the parser maps synonyms
    with pytest.raises(GoalConditionError, match="exactly one receptacle or coordinate"):
        GoalCondition("ON", "Apple", target="Plate", point=(0.0, 0.0, 0.0))
    with pytest.raises(GoalConditionError, match="empty object name"):
        GoalCondition("HOLD", " ")
    assert parse_state("Washed") == "clean" and parse_state("is_open") == "open"
    with pytest.raises(GoalConditionError, match="unknown state 'sofa'"):
        parse_state("sofa")


# ----------------------------------------------------------------------------------------------- checker


def test_on_and_inside_use_parent_receptacles_and_tolerant_names() -> None:
    scene = kitchen()
    assert holds("ON(Apple, CounterTop)", scene)
    assert holds("ON(apples, kitchen counter)", scene)
    assert not holds("INSIDE(Apple, Fridge)", scene)
    in_fridge = move(scene, "Apple|1", "Fridge|1")
    assert holds("INSIDE(Apple, Fridge)", in_fridge) and holds("INSIDE(apple, refrigerator)", in_fridge)
    assert not holds("ON(Apple, CounterTop)", in_fridge)
    assert holds("ON(Apple, CounterTop): 0", in_fridge)


def test_containment_from_receptacle_object_ids_only() -> None:
    scene = setp(kitchen(), "Apple|1", parentReceptacles=None)
    by_id(scene, "Plate|1")["receptacleObjectIds"] = ["Apple|1"]
    assert holds("ON(Apple, Plate)", scene)


def test_parent_ids_missing_from_the_list_are_typed_from_the_id() -> None:
    scene = [thor("Apple", "Apple|1", parents=("Sink|7|SinkBasin",))]
    assert holds("INSIDE(Apple, Sink)", scene) and holds("INSIDE(Apple, Sink|7|SinkBasin)", scene)
    assert not holds("INSIDE(Apple, Fridge)", scene)


def test_containment_follows_carried_containers_but_not_furniture() -> None:
    scene = move(move(kitchen(), "Apple|1", "Bowl|1"), "Bowl|1", "Fridge|1")
    assert holds("INSIDE(Apple, Bowl)", scene)
    assert holds("INSIDE(Apple, Fridge)", scene)  # apple in a bowl in the fridge
    assert not holds("ON(Apple, Floor)", scene)  # the fridge stands on the floor; the apple is not on it


def test_coordinate_target_within_tolerance() -> None:
    scene = kitchen()  # apple at (0.5, 0.9, 0.0)
    assert holds("ON(Apple, (0.5, 0.9, 0.4))", scene)
    assert not holds(f"ON(Apple, (0.5, 0.9, {COORDINATE_TOLERANCE_M + 0.01}))", scene)
    assert holds("ON(Apple, 0.9, 0.9, 0.0)", scene)


def test_toggles_switches_and_stove_knobs() -> None:
    scene = kitchen()
    assert holds("SWITCHON(LightSwitch)", scene) and not holds("SWITCHOFF(light)", scene)
    assert holds("TOGGLEOFF(Faucet)", scene) and not holds("TOGGLEON(Faucet)", scene)
    assert not holds("TOGGLEON(stove)", scene)
    knob_on = setp(scene, "StoveKnob|1", isToggled=True)
    assert holds("TOGGLEON(StoveBurner)", knob_on) and not holds("TOGGLEOFF(StoveBurner)", knob_on)


def test_off_and_closed_need_every_instance_open_and_on_need_one() -> None:
    scene = setp(kitchen(), "Drawer|2", isOpen=True)
    assert holds("OPEN(Drawer)", scene)
    assert not holds("CLOSED(Drawer)", scene)  # one drawer is still open
    assert holds("CLOSED(Drawer)", setp(scene, "Drawer|2", isOpen=False))
    assert holds("CLOSED(Drawer|1)", scene)  # an objectId names one drawer
    assert holds("CLOSED(Fridge)", scene) and not holds("OPEN(Fridge)", scene)


def test_sliced_apple_is_matched_by_its_pieces() -> None:
    scene = kitchen()
    assert not holds("STATE(Apple, sliced)", scene)
    sliced = slice_apple(scene)
    assert holds("STATE(Apple, sliced)", sliced)
    on_plate = move(sliced, "Apple|1|AppleSliced_1", "Plate|1")
    assert holds("ON(Apple, Plate)", on_plate)
    assert holds("ON(AppleSliced, Plate)", on_plate) and holds("ON(apple slice, Plate)", on_plate)
    assert holds("ON(Apple|1, Plate)", on_plate)  # the id of the whole apple covers its slices
    assert not holds("ON(Apple|2, Plate)", on_plate)
    # THOR may drop the whole apple from the metadata after slicing; the pieces alone still count.
    without_whole = [o for o in on_plate if o["objectId"] != "Apple|1"]
    assert holds("STATE(Apple, sliced)", without_whole) and holds("ON(Apple, Plate)", without_whole)


def test_washing_needs_a_running_faucet_over_the_basin() -> None:
    in_sink = move(kitchen(), "Apple|1", "Sink|1|SinkBasin")
    assert holds("INSIDE(Apple, Sink)", in_sink)
    assert not holds("STATE(Apple, clean)", in_sink)
    running = setp(in_sink, "Faucet|1", isToggled=True)
    assert holds("STATE(Apple, washed)", running)
    taken_out = move(running, "Apple|1", "CounterTop|1")
    assert not holds("STATE(Apple, clean)", taken_out)  # without history nothing says it was washed
    assert holds("STATE(Apple, clean)", taken_out, history=GoalHistory(washed=frozenset({"Apple|1"})))


def test_a_faucet_waters_only_its_own_basin() -> None:
    scene = move(kitchen(), "Apple|1", "Sink|1|SinkBasin")
    scene.append(thor("BathtubBasin", "Bathtub|1|BathtubBasin", at=(6.0, 0.4, 0.0)))
    scene.append(thor("Faucet", "Faucet|2", at=(6.0, 0.8, 1.0), isToggled=True))  # the bathtub's faucet
    assert holds("TOGGLEON(Faucet)", scene)
    assert not holds("STATE(Apple, clean)", scene)


def test_dirty_objects_and_temperature_states() -> None:
    scene = kitchen()
    assert not holds("STATE(Mug, dirty)", scene)
    assert holds("STATE(Mug, dirty)", setp(scene, "Mug|1", isDirty=True))
    assert not holds("STATE(Mug, clean)", setp(scene, "Mug|1", isDirty=True))
    assert holds("STATE(Mug, hot)", setp(scene, "Mug|1", temperature="Hot"))
    in_microwave = move(scene, "Mug|1", "Microwave|1")
    assert not holds("STATE(Mug, hot)", in_microwave)
    assert holds("STATE(Mug, heated)", setp(in_microwave, "Microwave|1", isToggled=True))
    assert holds("STATE(Apple, cold)", move(scene, "Apple|1", "Fridge|1"))
    assert holds("STATE(Apple, cold)", setp(scene, "Apple|1", temperature="Cold"))


def test_fill_cook_break_and_empty() -> None:
    scene = kitchen()
    assert holds("STATE(Mug, empty)", scene) and not holds("STATE(Mug, filled)", scene)
    assert holds("STATE(Mug, filled)", setp(scene, "Mug|1", isFilledWithLiquid=True))
    assert holds("STATE(Potato, cooked)", setp(scene, "Potato|1", isCooked=True))
    assert holds("STATE(Mug, broken)", setp(scene, "Mug|1", isBroken=True))


def test_hold_uses_the_held_object_or_the_picked_up_flag() -> None:
    scene = kitchen()
    assert not holds("HOLD(Apple)", scene)
    assert holds("HOLD(Apple)", scene, held_object_id="Apple|1")
    assert not holds("HOLD(Apple)", scene, held_object_id="Mug|1")
    assert holds("HOLDON(robot, apple)", move(scene, "Apple|1", None))


def test_check_accepts_scene_records_with_an_objects_list() -> None:
    @dataclass
    class SceneData:
        objects: list[dict[str, Any]]

    assert check(parse_goal("ON(Apple, CounterTop)"), SceneData(kitchen()))


def test_check_rejects_bad_input() -> None:
    with pytest.raises(UnknownObjectError, match="Spaceship"):
        holds("ON(Spaceship, CounterTop)", kitchen())
    with pytest.raises(GoalConditionError, match="list of THOR metadata dicts"):
        check(parse_goal("ON(Apple, Plate)"), {"objects": []})
    with pytest.raises(GoalConditionError, match="without objectId"):
        check(parse_goal("ON(Apple, Plate)"), [{"objectType": "Apple"}])


# ----------------------------------------------------------------------------------------------- validation


def reasons(goals: str, scene: list[dict[str, Any]]) -> list[str]:
    return [i.reason for i in validate_for_scene(parse_goals(goals), scene)]


def test_reachable_conditions_validate_clean() -> None:
    goals = (
        "INSIDE(Apple, Sink), TOGGLEON(Faucet), STATE(Apple, clean), STATE(Apple, sliced), ON(AppleSliced, Plate), "
        "STATE(Potato, cooked), STATE(Bread, cooked), STATE(Mug, hot), STATE(Mug, filled), STATE(Apple, cold), "
        "TOGGLEON(StoveBurner), OPEN(Fridge), CLOSED(Drawer), STATE(Mug, dirty), STATE(Mug, broken), HOLD(Knife), "
        "ON(Apple, (0, 1, 0)), ON(Mug, Plate): 0, STATE(Apple, cooked): 0"
    )
    assert reasons(goals, kitchen()) == []


@pytest.mark.parametrize(
    ("goal", "fragment"),
    [
        ("ON(Spaceship, CounterTop)", "not an AI2-THOR object type"),
        ("ON(Apple, Spaceship)", "not an AI2-THOR object type"),
        ("INSIDE(Apple, GarbageCan)", "scene has no 'GarbageCan'"),
        ("ON(Apple, DiningTable)", "scene has no 'DiningTable'"),
        ("STATE(Mug, sliced)", "Mug cannot be sliced"),
        ("STATE(Apple, cooked)", "Apple cannot be cooked"),
        ("STATE(Apple, dirty)", "Apple cannot be dirty"),
        ("STATE(Apple, filled)", "Apple cannot hold liquid"),
        ("STATE(Apple, broken)", "Apple cannot be broken"),
        ("OPEN(Apple)", "Apple cannot be opened"),
        ("TOGGLEON(Apple)", "Apple cannot be switched on or off"),
        ("TOGGLEON(Drawer)", "Drawer cannot be switched on or off"),
        ("ON(Fridge, CounterTop)", "Fridge cannot be picked up"),
        ("HOLD(Microwave)", "Microwave cannot be picked up"),
        ("ON(Apple, Knife)", "Knife is not a receptacle"),
        ("INSIDE(Bowl, Bowl)", "cannot be put in itself"),
        ("ON(Apple|9, Plate)", "scene has no object with id 'Apple|9'"),
        ("STATE(AppleSliced, sliced)", "AppleSliced cannot be sliced"),
    ],
)
def test_unreachable_conditions_are_reported_with_a_reason(goal: str, fragment: str) -> None:
    invalid = validate_for_scene(parse_goals(f"ON(Apple, Plate), {goal}"), kitchen())
    assert len(invalid) == 1 and fragment in invalid[0].reason
    assert str(invalid[0].condition) in str(invalid[0]) and fragment in str(invalid[0])


def test_states_need_the_tools_the_scene_must_offer() -> None:
    bare = [thor("CounterTop", "CounterTop|1"), thor("Apple", "Apple|1", parents=("CounterTop|1",)),
            thor("Mug", "Mug|1", parents=("CounterTop|1",)), thor("Egg", "Egg|1")]
    assert "no Knife or ButterKnife" in reasons("STATE(Apple, sliced)", bare)[0]
    assert reasons("STATE(Egg, sliced)", bare) == []  # an egg cracks without a knife
    assert "no basin with a Faucet" in reasons("STATE(Apple, clean)", bare)[0]
    assert reasons("STATE(Mug, clean)", bare) == []  # a mug can get dirty, so CleanObject reaches clean
    assert "no Faucet or CoffeeMachine" in reasons("STATE(Mug, filled)", bare)[0]
    assert "no heat source" in reasons("STATE(Mug, hot)", bare)[0]
    assert "no Fridge" in reasons("STATE(Apple, cold)", bare)[0]
    assert "no heat source" in reasons("STATE(Egg, cooked)", bare)[0]  # cookable once cracked, but no stove


def test_per_instance_flags_override_the_type_table() -> None:
    scene = [thor("Bowl", "Bowl|1", breakable=False), thor("Bed", "Bed|1", dirtyable=False)]
    assert "Bowl cannot be broken" in reasons("STATE(Bowl, broken)", scene)[0]
    assert "Bed cannot be dirty" in reasons("STATE(Bed, dirty)", scene)[0]


# ----------------------------------------------------------------------------------------------- tracker


def test_ordered_switch_on_then_off_needs_both_in_order() -> None:
    scene = setp(kitchen(), "LightSwitch|1", isToggled=False)
    goals = [parse_goals("SWITCHON(LightSwitch)"), parse_goals("SWITCHOFF(LightSwitch)")]
    ordered = GoalTracker(goals, scene, mode="ordered")
    end_state = GoalTracker(goals, scene, mode="end_state")
    assert ordered.progress == 0.0  # "off" holds at the start but must wait for "on"
    assert end_state.progress == 0.5
    on = setp(scene, "LightSwitch|1", isToggled=True)
    assert [str(c) for c in ordered.update(on)] == ["STATE(LightSwitch, on)"]
    end_state.update(on)
    assert ordered.progress == 0.5 and ordered.subtasks_achieved == 1 and not ordered.satisfied
    assert str(ordered.pending) == "STATE(LightSwitch, off)"
    assert [str(c) for c in ordered.update(scene)] == ["STATE(LightSwitch, off)"]
    end_state.update(scene)
    assert ordered.satisfied and ordered.progress == 1.0 and ordered.pending is None
    assert not end_state.satisfied and end_state.progress == 0.5  # the light is not on at the end
    assert [s.achieved_at for s in ordered.per_condition] == [1, 2]
    assert ordered.updates == 3


def test_ordered_later_condition_true_at_start_must_hold_again() -> None:
    scene = kitchen()  # the apple starts on the counter
    tracker = GoalTracker([parse_goals("INSIDE(Apple, Fridge)"), parse_goals("ON(Apple, CounterTop)")], scene)
    assert tracker.progress == 0.0
    in_fridge = move(scene, "Apple|1", "Fridge|1")
    tracker.update(in_fridge)
    assert tracker.progress == 0.5
    tracker.update(in_fridge)
    assert tracker.progress == 0.5
    tracker.update(move(in_fridge, "Apple|1", "CounterTop|1"))
    assert tracker.satisfied
    status = tracker.per_condition
    assert [s.achieved_at for s in status] == [1, 3] and [s.subtask for s in status] == [0, 1]


def test_several_conditions_may_count_at_one_update() -> None:
    scene = move(kitchen(), "Apple|1", "Sink|1|SinkBasin")
    tracker = GoalTracker([parse_goals("INSIDE(Apple, Sink), TOGGLEON(Faucet), STATE(Apple, clean)")], scene)
    assert tracker.progress == pytest.approx(1 / 3)
    newly = tracker.update(setp(scene, "Faucet|1", isToggled=True))
    assert len(newly) == 2 and tracker.satisfied


def test_tracker_remembers_washing_after_the_apple_leaves_the_sink() -> None:
    scene = kitchen()
    tracker = GoalTracker(
        [parse_goals("INSIDE(Apple, Sink), TOGGLEON(Faucet), STATE(Apple, clean)"),
         parse_goals("TOGGLEOFF(Faucet)"), parse_goals("STATE(Apple, sliced)"), parse_goals("INSIDE(Apple, Fridge)"),
         parse_goals("STATE(Apple, clean)")],
        scene,
    )
    scene = move(scene, "Apple|1", "Sink|1|SinkBasin")
    tracker.update(scene)
    scene = setp(scene, "Faucet|1", isToggled=True)
    tracker.update(scene)
    assert "Apple|1" in tracker.history.washed
    scene = setp(scene, "Faucet|1", isToggled=False)
    tracker.update(scene)
    scene = slice_apple(move(scene, "Apple|1", "CounterTop|1"))
    tracker.update(scene)
    scene = move(scene, "Apple|1|AppleSliced_0", "Fridge|1")
    tracker.update(scene)
    assert tracker.satisfied  # the slices in the fridge inherit the apple's washing
    assert tracker.subtasks_achieved == 5


def test_tracker_counts_dirty_to_clean_as_washed() -> None:
    bed = [thor("Bed", "Bed|1", isDirty=True)]
    tracker = GoalTracker([parse_goals("STATE(Bed, clean)")], bed, mode="end_state")
    assert not tracker.satisfied
    tracker.update(setp(bed, "Bed|1", isDirty=False))
    assert tracker.satisfied and "Bed|1" in tracker.history.washed


def test_tracker_remembers_heating_and_cooling() -> None:
    scene = move(kitchen(), "Mug|1", "Microwave|1")
    tracker = GoalTracker([parse_goals("STATE(Mug, hot)"), parse_goals("ON(Mug, CounterTop), STATE(Mug, hot)")],
                          scene)
    tracker.update(setp(scene, "Microwave|1", isToggled=True))
    tracker.update(move(scene, "Mug|1", "CounterTop|1"))
    assert tracker.satisfied and "Mug|1" in tracker.history.heated
    cold = GoalTracker([parse_goals("STATE(Apple, cold)")], kitchen())
    cold.update(move(kitchen(), "Apple|1", "Fridge|1"))
    assert cold.satisfied and "Apple|1" in cold.history.cooled


def test_end_state_forgets_conditions_that_stop_holding() -> None:
    scene = kitchen()
    tracker = GoalTracker([parse_goals("INSIDE(Apple, Fridge)"), parse_goals("OPEN(Fridge)")], scene,
                          mode="end_state")
    opened = setp(move(scene, "Apple|1", "Fridge|1"), "Fridge|1", isOpen=True)
    assert len(tracker.update(opened)) == 2 and tracker.satisfied
    assert tracker.update(setp(opened, "Fridge|1", isOpen=False)) == []
    assert not tracker.satisfied and tracker.progress == 0.5
    assert [s.holds_now for s in tracker.per_condition] == [True, False]


def test_invalid_conditions_are_reported_and_never_count() -> None:
    scene = kitchen()
    tracker = GoalTracker(
        [parse_goals("STATE(Mug, sliced)"), parse_goals("INSIDE(Apple, Fridge)"), parse_goals("ON(Scone, Plate)")],
        scene,
    )
    assert [i.reason for i in tracker.invalid] == [
        "Mug cannot be sliced in THOR (not sliceable)",
        "unknown object 'Scone': not an AI2-THOR object type or a known synonym; did you mean sponge, shoe, counter?",
    ]
    tracker.update(move(scene, "Apple|1", "Fridge|1"))  # ordered mode does not wait for the invalid condition
    status = tracker.per_condition
    assert [s.achieved for s in status] == [False, True, False]
    assert status[0].invalid_reason and status[2].invalid_reason and status[1].invalid_reason is None
    assert not tracker.satisfied and tracker.progress == pytest.approx(1 / 3)
    assert tracker.pending is None and tracker.subtasks_achieved == 0


def test_tracker_rejects_bad_arguments() -> None:
    with pytest.raises(GoalConditionError, match="unknown evaluation mode 'sometimes'"):
        GoalTracker([parse_goals("OPEN(Fridge)")], kitchen(), mode="sometimes")
    with pytest.raises(GoalConditionError, match="not a GoalCondition"):
        GoalTracker([["OPEN(Fridge)"]], kitchen())  # type: ignore[list-item]
    empty = GoalTracker([], kitchen())
    assert empty.satisfied and empty.progress == 1.0 and empty.conditions == ()
