"""Task suites: loader errors, and every shipped task checked on the real iTHOR scenes (procthor's dump)."""

from __future__ import annotations

import copy
import importlib.util
import json
import math
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from karma_memory.core.errors import ConfigError, KarmaMemoryError
from karma_memory.core.goals import GoalCondition, GoalTracker, validate_for_scene
from karma_memory.core.lexicon import PIECE_BASES, PIECE_TYPES, TYPE_CAPABILITIES, resolve_type
from karma_memory.core.tasks import (
    CATEGORIES,
    ROOM_KINDS,
    SUITE_DIR,
    Task,
    TaskSuiteError,
    available_suites,
    load_all_suites,
    load_suite,
    room_kind,
    validate_task,
)

_FIRST_FLOOR_PLAN = {"kitchens": 1, "living_rooms": 201, "bedrooms": 301, "bathrooms": 401}


@pytest.fixture(scope="module")
def scenes() -> dict[str, list[dict[str, Any]]]:
    """FloorPlan name -> real THOR metadata objects (procthor's dump is in FloorPlan order, DESIGN.md §2)."""
    spec = importlib.util.find_spec("procthor")
    assert spec is not None and spec.origin, "procthor (requirements/scene-data.txt) is not installed"
    dump = json.loads((Path(spec.origin).parent / "databases" / "ai2thor-object-metadata.json").read_text())
    return {
        f"FloorPlan{first + i}": objects
        for room, first in _FIRST_FLOOR_PLAN.items()
        for i, objects in enumerate(dump[room])
    }


VALID_TASKS = load_all_suites()
ALL_TASKS = load_all_suites(include_invalid=True)
INVALID_TASKS = [t for t in ALL_TASKS if t.expect == "invalid"]


# ----------------------------------------------------------------------------------------------- shipped suites


def test_shipped_suites_and_their_sizes() -> None:
    assert available_suites() == ["complex", "composite", "invalid", "simple"]
    counts = Counter((t.category, t.room_kind) for t in VALID_TASKS)
    for category in CATEGORIES:
        assert sum(n for (c, _), n in counts.items() if c == category) >= 20, category
        for kind in ROOM_KINDS:
            assert counts[(category, kind)] >= 5, (category, kind)
    assert len(INVALID_TASKS) >= 10
    assert len({t.id for t in ALL_TASKS}) == len(ALL_TASKS)


def test_suite_files_hold_their_category() -> None:
    for name in ("simple", "composite", "complex"):
        tasks = load_suite(name)
        assert {t.category for t in tasks} == {name} and {t.suite for t in tasks} == {name}
    assert all(t.evaluation == "ordered" for t in VALID_TASKS if t.category != "simple")


def test_tasks_follow_the_paper_categories() -> None:
    for task in VALID_TASKS:
        n_goals = len(task.conditions)
        if task.category == "simple":
            assert len(task.subtasks) < 5 and 1 <= n_goals <= 3, task.id
        else:
            assert len(task.subtasks) >= 3 and 3 <= n_goals <= 7, task.id
        assert task.instruction and all(s.instruction for s in task.subtasks)
    composite = [len(t.conditions) for t in VALID_TASKS if t.category == "composite"]
    simple = [len(t.conditions) for t in VALID_TASKS if t.category == "simple"]
    assert sum(composite) / len(composite) >= 4.0 and sum(simple) / len(simple) <= 2.0


@pytest.mark.parametrize("task", VALID_TASKS, ids=lambda t: t.id)
def test_task_is_valid_in_its_real_scene(task: Task, scenes: dict[str, list[dict[str, Any]]]) -> None:
    assert validate_task(task, scenes[task.scene]) == []


@pytest.mark.parametrize("task", VALID_TASKS, ids=lambda t: t.id)
def test_task_needs_work_in_its_real_scene(task: Task, scenes: dict[str, list[dict[str, Any]]]) -> None:
    tracker = GoalTracker(task.goals_per_subtask, scenes[task.scene], task.evaluation)
    assert not tracker.satisfied
    assert not tracker.per_condition[0].holds_now, f"{task.conditions[0]} already holds in {task.scene}"


@pytest.mark.parametrize("task", INVALID_TASKS, ids=lambda t: t.id)
def test_bad_task_is_flagged_with_its_reason(task: Task, scenes: dict[str, list[dict[str, Any]]]) -> None:
    invalid = validate_task(task, scenes[task.scene])
    assert invalid, task.id
    assert any(task.reason in i.reason for i in invalid), [i.reason for i in invalid]
    tracker = GoalTracker(task.goals_per_subtask, scenes[task.scene], task.evaluation)
    assert tracker.invalid and not tracker.satisfied


# An oracle that makes each sub-task's goals true by editing the metadata the way THOR would. If a suite asked
# for contradictory things in one sub-task, or the checker could not see an effect, the replay would fail.


class _Oracle:
    def __init__(self, objects: list[dict[str, Any]]) -> None:
        self.objects = copy.deepcopy(objects)
        self.last: dict[str, Any] | None = None

    def _types(self) -> set[str]:
        return {o["objectType"] for o in self.objects}

    def _candidates(self, name: str) -> list[dict[str, Any]]:
        types = set(resolve_type(name, self._types()))
        pieces = [o for o in self.objects if o["objectType"] in {PIECE_TYPES.get(t) for t in types} | types
                  and o["objectType"] in PIECE_BASES]
        whole = [o for o in self.objects if o["objectType"] in types and o["objectType"] not in PIECE_BASES]
        return pieces or whole

    def _nearest(self, objects: list[dict[str, Any]]) -> dict[str, Any]:
        if self.last is None:
            return objects[0]
        here = self.last["position"]
        return min(objects, key=lambda o: math.dist([here[k] for k in "xyz"], [o["position"][k] for k in "xyz"]))

    def _move(self, obj: dict[str, Any], target: dict[str, Any]) -> None:
        for o in self.objects:
            if o.get("receptacleObjectIds") and obj["objectId"] in o["receptacleObjectIds"]:
                o["receptacleObjectIds"] = [i for i in o["receptacleObjectIds"] if i != obj["objectId"]]
        obj["parentReceptacles"] = [target["objectId"]]
        obj["position"] = dict(target["position"])
        obj["isPickedUp"] = False
        self.last = obj

    def _switch(self, obj: dict[str, Any], on: bool) -> None:
        if obj.get("toggleable"):
            obj["isToggled"] = on
        for knob in self.objects:
            if obj["objectId"] in (knob.get("controlledObjects") or ()):
                knob["isToggled"] = on

    def apply(self, cond: GoalCondition) -> None:
        cands = self._candidates(cond.obj)
        if cond.predicate in ("ON", "INSIDE"):
            assert cond.target is not None
            order = resolve_type(cond.target, self._types())
            targets = sorted((o for o in self.objects if o["objectType"] in order and o.get("receptacle")),
                             key=lambda o: order.index(o["objectType"]))
            self._move(cands[0], targets[0])
        elif cond.predicate == "HOLD":
            cands[0].update(isPickedUp=True, parentReceptacles=None)
        elif cond.state == "sliced":
            base = cands[0]
            base["isSliced"] = True
            piece = PIECE_TYPES[base["objectType"]]
            flags = {c: c in TYPE_CAPABILITIES[piece] for c in ("pickupable", "sliceable", "cookable", "receptacle")}
            for k in range(2):
                self.objects.append(dict(copy.deepcopy(base), objectId=f"{base['objectId']}|{piece}_{k}",
                                         objectType=piece, isSliced=False, **flags))
        elif cond.state == "cooked":
            target = next(o for o in cands if o.get("cookable"))
            target.update(isCooked=True, temperature="Hot")
        elif cond.state == "clean":
            cands[0]["isDirty"] = False
        elif cond.state in ("hot", "cold"):
            cands[0]["temperature"] = "Hot" if cond.state == "hot" else "Cold"
        elif cond.state in ("filled", "empty", "broken"):
            key = {"filled": "isFilledWithLiquid", "empty": "isFilledWithLiquid", "broken": "isBroken"}[cond.state]
            cands[0][key] = cond.state != "empty"
        elif cond.state in ("open", "closed"):
            for obj in cands if cond.state == "closed" else cands[:1]:
                obj["isOpen"] = cond.state == "open"
        elif cond.state == "on":
            self._switch(self._nearest(cands), True)
        elif cond.state == "off":
            for obj in cands:
                self._switch(obj, False)


@pytest.mark.parametrize("task", VALID_TASKS, ids=lambda t: t.id)
def test_task_goals_are_consistent_and_checkable(task: Task, scenes: dict[str, list[dict[str, Any]]]) -> None:
    oracle = _Oracle(scenes[task.scene])
    tracker = GoalTracker(task.goals_per_subtask, oracle.objects, task.evaluation)
    for k, subtask in enumerate(task.subtasks):
        for cond in subtask.goals:
            oracle.apply(cond)
            tracker.update(oracle.objects)  # one skill per condition
        now = [s for s in tracker.per_condition if s.subtask == k]
        assert all(s.holds_now for s in now), [str(s.condition) for s in now if not s.holds_now]
    assert tracker.satisfied, [str(s.condition) for s in tracker.per_condition if not s.achieved]


# ----------------------------------------------------------------------------------------------- loader


def test_task_records() -> None:
    task = next(t for t in VALID_TASKS if t.id == "composite-kitchen-01")
    assert task.scene == "FloorPlan1" and task.room_kind == "kitchen" and task.evaluation == "ordered"
    assert [len(g) for g in task.goals_per_subtask] == [3, 1, 1]
    assert [str(c) for c in task.conditions][:2] == ["INSIDE(Apple, Sink)", "STATE(Faucet, on)"]
    assert task.subtasks[0].goal_text.startswith("INSIDE(Apple, Sink)")
    with pytest.raises(AttributeError):
        task.scene = "FloorPlan2"  # type: ignore[misc]
    assert load_suite(SUITE_DIR / "simple.yaml") == load_suite("simple")


def test_room_kind() -> None:
    assert [room_kind(f"FloorPlan{n}") for n in (30, 201, 330, 401)] == ["kitchen", "living_room", "bedroom",
                                                                        "bathroom"]
    for bad in ("FloorPlan31", "FloorPlan0", "Kitchen1", ""):
        with pytest.raises(ConfigError, match="not an iTHOR floor plan"):
            room_kind(bad)


GOOD_TASK = """
  - id: t-1
    scene: FloorPlan1
    category: simple
    instruction: Put the apple in the fridge.
    evaluation: ordered
    subtasks:
      - instruction: Put the apple in the fridge.
        goals: "INSIDE(Apple, Fridge): 1"
"""


def write(tmp_path: Path, text: str, name: str = "suite.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_load_suite_from_a_path_with_suite_default_evaluation(tmp_path: Path) -> None:
    text = "suite: mine\nevaluation: end_state\ntasks:" + GOOD_TASK.replace("    evaluation: ordered\n", "")
    (task,) = load_suite(write(tmp_path, text))
    assert task.evaluation == "end_state" and task.suite == "suite" and task.expect == "valid"


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("tasks: [\n", "invalid YAML"),
        ("- just a list\n", "expected a mapping with a 'tasks' list"),
        ("tasks: []\nauthor: me\n", "unknown top-level key(s) ['author']"),
        ("evaluation: sometimes\ntasks: []\n", "evaluation 'sometimes'"),
        ("tasks:\n  - 42\n", "task #0: expected a mapping"),
        ("tasks:" + GOOD_TASK.replace("    scene: FloorPlan1\n", ""), "task 't-1': missing key(s) ['scene']"),
        ("tasks:" + GOOD_TASK.replace("FloorPlan1", "FloorPlan99"), "task 't-1': 'FloorPlan99' is not an iTHOR"),
        ("tasks:" + GOOD_TASK.replace("category: simple", "category: hard"), "category 'hard'"),
        ("tasks:" + GOOD_TASK.replace("evaluation: ordered", "evaluation: any"), "task 't-1': evaluation 'any'"),
        ("tasks:" + GOOD_TASK.replace("evaluation: ordered", "evaluation: ordered\n    colour: red"),
         "task 't-1': unknown key(s) ['colour']"),
        ("tasks:" + GOOD_TASK.replace("evaluation: ordered", "evaluation: ordered\n    expect: maybe"),
         "expect 'maybe'"),
        ("tasks:" + GOOD_TASK.replace('"INSIDE(Apple, Fridge): 1"', '"ON(desk): 1"'),
         "task 't-1', sub-task #0: malformed goal condition 'ON(desk): 1'"),
        ("tasks:" + GOOD_TASK.replace('"INSIDE(Apple, Fridge): 1"', '", ,"'), "no goal conditions"),
        ("tasks:" + GOOD_TASK.replace('goals: "INSIDE(Apple, Fridge): 1"', "goal: x"), "needs exactly the keys"),
        ("tasks:" + GOOD_TASK.replace("instruction: Put the apple in the fridge.\n    evaluation",
                                      "instruction: ''\n    evaluation"), "'instruction' must be a non-empty"),
        ("tasks:" + GOOD_TASK.split("    subtasks:")[0] + "    subtasks: []\n", "'subtasks' must be a non-empty list"),
        ("tasks:" + GOOD_TASK + GOOD_TASK, "duplicate task id 't-1'"),
    ],
)
def test_malformed_suites_name_file_and_task(tmp_path: Path, text: str, fragment: str) -> None:
    path = write(tmp_path, text)
    with pytest.raises(TaskSuiteError) as info:
        load_suite(path)
    assert fragment in str(info.value) and str(path) in str(info.value)
    assert isinstance(info.value, ConfigError) and isinstance(info.value, KarmaMemoryError)


def test_missing_suites(tmp_path: Path) -> None:
    with pytest.raises(TaskSuiteError, match="no task suite named 'nonexistent'; available"):
        load_suite("nonexistent")
    with pytest.raises(TaskSuiteError, match="does not exist"):
        load_suite(tmp_path / "gone.yaml")


def test_load_all_suites_from_a_directory(tmp_path: Path) -> None:
    write(tmp_path, "tasks:" + GOOD_TASK, "a.yaml")
    bad = GOOD_TASK.replace("t-1", "t-2") + "    expect: invalid\n    reason: nothing\n"
    write(tmp_path, "tasks:" + bad, "b.yaml")
    assert available_suites(tmp_path) == ["a", "b"]
    assert [t.id for t in load_all_suites(tmp_path)] == ["t-1"]
    assert [t.id for t in load_all_suites(tmp_path, include_invalid=True)] == ["t-1", "t-2"]
    write(tmp_path, "tasks:" + GOOD_TASK, "c.yaml")
    with pytest.raises(TaskSuiteError, match="duplicate task id 't-1'"):
        load_all_suites(tmp_path)


def test_validate_task_on_a_hand_built_scene() -> None:
    task = load_suite("invalid")[0]
    mug = {"objectId": "Mug|1", "objectType": "Mug", "pickupable": True}
    assert [i.reason for i in validate_task(task, [mug])] == ["Mug cannot be sliced in THOR (not sliceable)"]
    assert validate_for_scene(task.conditions, [mug]) == validate_task(task, [mug])
