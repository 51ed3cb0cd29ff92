"""Instruction parsing and memory-grounded symbolic planning (no simulator: plans are checked as data)."""

from __future__ import annotations

import pytest

from helpers import HashEmbedder, grid, obs
from karma_memory.core.errors import PlanValidationError
from karma_memory.core.long_term import LongTermMemory, LtmConfig
from karma_memory.core.memory_access import LocalMemory
from karma_memory.core.planner.base import PlannerBackend, PlanningContext
from karma_memory.core.planner.language import parse_instruction
from karma_memory.core.planner.symbolic import SymbolicPlanner
from karma_memory.core.short_term import ShortTermMemory, StmConfig
from karma_memory.core.tasks import load_all_suites
from karma_memory.core.types import ObservationKind

KITCHEN = ["Apple", "Tomato", "Knife", "Fridge", "SinkBasin", "Sink", "Faucet", "CounterTop", "Microwave", "Mug",
           "Cup", "Plate", "DiningTable", "GarbageCan", "Bread", "LightSwitch", "Cabinet", "Drawer", "StoveBurner"]


def test_every_suite_instruction_parses():
    for task in load_all_suites():
        for subtask in task.subtasks:
            assert parse_instruction(subtask.instruction), subtask.instruction


@pytest.mark.parametrize("text, expected", [
    ("Wash the apple, slice it, then put the washed fruit in the fridge.",
     [("WASH", "apple", None), ("SLICE", "it", None), ("PUT", "washed fruit", "fridge")]),
    ("Throw the egg away.", [("PUT", "egg", "garbage can")]),
    ("Turn the TV off and put the remote back where it was.", [("TOGGLE_OFF", "tv", None), ("PUT", "remote", "where it was")]),
    ("Slice the loaf and the red vegetable.", [("SLICE", "loaf", None), ("SLICE", "red vegetable", None)]),
    ("Put something to read on the sofa.", [("PUT", "something to read", "sofa")]),
    ("Serve the toast with something red on a plate.", [("PUT", "toast", "plate"), ("PUT", "something red", "plate")]),
    ("Serve what I cooked on a dish on the table.", [("PUT", "what i cooked", "dish")]),
    ("Put the apple and the mug in the sink.", [("PUT", "apple", "sink"), ("PUT", "mug", "sink")]),
    ("Light something with a flame.", [("TOGGLE_ON", "something with a flame", None)]),
])
def test_parse_examples(text, expected):
    got = [(i.action, i.obj.text if i.obj else None, i.target.text if i.target else None) for i in parse_instruction(text)]
    assert got == expected


@pytest.mark.parametrize("text", ["", "   ", "sing a song", "Put the apple"])
def test_unparseable_instructions_are_rejected_with_a_reason(text):
    with pytest.raises(PlanValidationError):
        parse_instruction(text)


def memories(use_ltm=True, use_stm=True):
    ltm = LongTermMemory(LtmConfig(), HashEmbedder())
    ltm.add_areas(grid(0, 4.5, 0, 4.5))
    for oid, pos in (("Fridge|1", (0.2, 1, 0.2)), ("SinkBasin|1", (4.3, 1, 0.2)), ("Faucet|1", (4.4, 1.2, 0.1)),
                     ("CounterTop|1", (2, 1, 0.2)), ("Microwave|1", (2.5, 1.2, 0.2))):
        ltm.observe(obs(oid, position=pos, movable=False))
    stm = ShortTermMemory(StmConfig(capacity=5), HashEmbedder())
    return LocalMemory(ltm if use_ltm else None, stm if use_stm else None), ltm, stm


def plan(planner, text, memory):
    return planner.plan(PlanningContext(instruction=text, known_types=KITCHEN, memory=memory))


def test_stm_grounds_the_washed_fruit_and_skips_exploration():
    memory, ltm, stm = memories()
    stm.observe(obs("Apple|1", position=(4.3, 1, 0.2), kind=ObservationKind.MOVED, states=["cleaned"],
                    relations=[("inside", "SinkBasin|1")], source="skill:PutObject"))
    stm.observe(obs("Mug|1", position=(1, 1, 1), kind=ObservationKind.MOVED, source="skill:PutObject"))
    planner = SymbolicPlanner(HashEmbedder())
    steps = plan(planner, "Put the washed fruit in the fridge.", memory).steps
    assert [s.skill for s in steps] == ["GoToObject", "PickupObject", "GoToObject", "OpenObject", "PutObject"]
    assert steps[0].args["object"] == "Apple|1" and steps[2].args["object"] == "Fridge|1"
    assert planner.recalled == ["Apple|1"]


def test_without_memory_the_robot_explores_systematically():
    memory, _, _ = memories(use_ltm=False, use_stm=False)
    steps = plan(SymbolicPlanner(HashEmbedder()), "Put the apple in the fridge.", memory).steps
    explores = [s for s in steps if s.skill == "Explore"]
    assert len(explores) == 2 and all("areas" not in s.args for s in explores)


def test_ltm_ranks_areas_for_explore_and_knows_the_furniture():
    memory, ltm, _ = memories(use_stm=False)
    steps = plan(SymbolicPlanner(HashEmbedder()), "Put the apple in the fridge.", memory).steps
    assert steps[0].skill == "Explore" and steps[0].args["areas"][0].startswith("area_")
    assert any(s.skill == "GoToObject" and s.args["object"] == "Fridge|1" for s in steps)


def test_pronouns_follow_the_dialogue_and_slicing_fetches_a_knife():
    memory, _, _ = memories()
    planner = SymbolicPlanner(HashEmbedder())
    plan(planner, "Wash the apple.", memory)
    steps = plan(planner, "Slice it.", memory).steps
    skills = [s.skill for s in steps]
    assert "SliceObject" in skills and any(s.args.get("object") == "Knife" for s in steps if s.skill == "PickupObject")
    after = plan(planner, "Put a piece of it on the plate.", memory).steps
    assert any(s.skill == "PickupObject" and s.args["object"] == "AppleSliced" for s in after)


def test_unknown_references_fail_with_a_reason():
    memory, _, _ = memories(use_ltm=False, use_stm=False)
    planner = SymbolicPlanner(HashEmbedder())
    with pytest.raises(PlanValidationError, match="refers to"):
        plan(planner, "Close it.", memory)
    with pytest.raises(PlanValidationError, match="remember"):
        plan(planner, "Put the mug where the apple was.", memory)
    with pytest.raises(PlanValidationError, match="known_types"):
        planner.plan(PlanningContext(instruction="Open the fridge", memory=memory))


def test_symbolic_planner_satisfies_the_backend_protocol():
    assert isinstance(SymbolicPlanner(HashEmbedder()), PlannerBackend)


def test_attribute_words_pick_the_kind_within_a_category():
    memory, _, _ = memories(use_ltm=False, use_stm=False)
    steps = plan(SymbolicPlanner(HashEmbedder()), "Put the red vegetable in the fridge.", memory).steps
    assert steps[0].args["object"] == "Tomato"


def test_the_washed_tomato_is_never_the_washed_mug():
    memory, _, stm = memories()
    stm.observe(obs("Mug|1", kind=ObservationKind.MOVED, states=["cleaned"], source="skill:PutObject"))
    steps = plan(SymbolicPlanner(HashEmbedder()), "Put the washed tomato on the plate.", memory).steps
    assert all(s.args.get("object") != "Mug|1" for s in steps)
    assert any(s.skill == "PickupObject" and s.args["object"].startswith("Tomato") for s in steps)


def test_it_after_moving_a_dish_means_the_dish():
    memory, _, _ = memories()
    planner = SymbolicPlanner(HashEmbedder())
    plan(planner, "Move the plate to the counter.", memory)
    steps = plan(planner, "Put the apple on it.", memory).steps
    assert steps[-1].skill == "PutObject" and steps[-1].args["receptacle"].startswith("Plate")


def test_a_dish_on_the_table_goes_to_the_table_before_food_goes_on_it():
    memory, _, stm = memories()
    stm.observe(obs("Apple|1", kind=ObservationKind.STATE_CHANGED, states=["cooked"], source="skill:ToggleOn"))
    steps = plan(SymbolicPlanner(HashEmbedder()), "Serve what I cooked on a dish on the table.", memory).steps
    puts = [(s.args["receptacle"]) for s in steps if s.skill == "PutObject"]
    assert puts[0] == "DiningTable" and puts[-1].startswith("Plate")
    assert any(s.skill == "PickupObject" and s.args["object"] == "Apple|1" for s in steps)


def test_a_category_word_takes_the_kind_that_fits_the_description():
    memory, _, _ = memories(use_ltm=False, use_stm=False)
    planner = SymbolicPlanner(HashEmbedder())
    steps = planner.plan(PlanningContext("Cook the starchy vegetable in the microwave.",
                                         known_types=KITCHEN + ["Lettuce", "Potato"], memory=memory)).steps
    assert steps[0].args["object"] == "Potato"


def test_an_object_said_to_be_somewhere_is_looked_for_there_first():
    memory, ltm, _ = memories(use_stm=False)
    steps = plan(SymbolicPlanner(HashEmbedder()), "Wash the mug that is in the sink.", memory).steps
    assert steps[0].skill == "GoToObject" and steps[0].args["object"] == "SinkBasin|1"
    assert steps[1].skill == "Explore" and steps[1].args["object"] == "Mug"


def test_the_scene_graph_sends_the_robot_to_an_object_it_saw_on_the_way():
    memory, ltm, _ = memories(use_stm=False)
    ltm.observe(obs("Mug|7", position=(2, 1, 0.2), relations=[("on", "CounterTop|1")]))
    steps = plan(SymbolicPlanner(HashEmbedder()), "Put the mug in the microwave.", memory).steps
    assert steps[0].skill == "GoToObject" and steps[0].args["object"] == "Mug|7"
    assert not any(s.skill == "Explore" for s in steps)


def test_replanning_does_not_cut_again_what_memory_saw_cut():
    memory, ltm, _ = memories(use_stm=False)
    ltm.observe(obs("Bread|1", position=(2, 1, 0.2)))
    ltm.observe(obs("Bread|1|BreadSliced_1", "BreadSliced", position=(2, 1, 0.2)))
    planner = SymbolicPlanner(HashEmbedder())
    steps = planner.plan(PlanningContext("Slice the bread and toast a slice.",
                                         known_types=KITCHEN + ["Toaster", "BreadSliced"], memory=memory)).steps
    assert "SliceObject" not in [s.skill for s in steps]
    assert any(s.skill == "PickupObject" and s.args["object"].startswith("Bread|1|BreadSliced") or
               s.args.get("object") == "BreadSliced" for s in steps)


def test_next_to_the_pen_holder_means_where_the_mug_with_the_pen_stands():
    memory, ltm, stm = memories()
    ltm.observe(obs("Shelf|1", position=(1, 1, 1), movable=False))
    stm.observe(obs("Mug|1", kind=ObservationKind.MOVED, relations=[("on", "Shelf|1")], source="skill:PutObject"))
    stm.observe(obs("Pen|1", kind=ObservationKind.MOVED, relations=[("inside", "Mug|1")], source="skill:PutObject"))
    steps = SymbolicPlanner(HashEmbedder()).plan(PlanningContext(
        "Put the apple next to the pen holder.", known_types=KITCHEN + ["Pen", "Shelf"], memory=memory)).steps
    assert steps[-1].skill == "PutObject" and steps[-1].args["receptacle"] == "Shelf|1"
