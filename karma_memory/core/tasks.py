"""Task suites: typed, validated records of high-level instructions, their sub-tasks and goal conditions."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from karma_memory.core.errors import ConfigError, GoalConditionError
from karma_memory.core.goals import EVALUATION_MODES, GoalCondition, InvalidCondition, parse_goals, validate_for_scene

__all__ = [
    "CATEGORIES",
    "ROOM_KINDS",
    "SUITE_DIR",
    "Subtask",
    "Task",
    "TaskSuiteError",
    "available_suites",
    "load_all_suites",
    "load_suite",
    "room_kind",
    "validate_task",
]

#: Task categories of the paper (karma_spec.md §2.1).
CATEGORIES: tuple[str, ...] = ("simple", "composite", "complex")
#: iTHOR room kinds and their floor-plan numbers.
ROOM_KINDS: dict[str, range] = {
    "kitchen": range(1, 31),
    "living_room": range(201, 231),
    "bedroom": range(301, 331),
    "bathroom": range(401, 431),
}
#: Where the shipped suites live (package data ``karma_memory/sim/tasks/*.yaml``).
SUITE_DIR: Path = Path(__file__).resolve().parent.parent / "sim" / "tasks"

_TASK_KEYS = {"id", "scene", "category", "instruction", "evaluation", "subtasks", "expect", "reason", "notes"}
_REQUIRED_TASK_KEYS = ("id", "scene", "category", "instruction", "subtasks")
_SUITE_KEYS = {"suite", "description", "evaluation", "tasks"}
_SUBTASK_KEYS = {"instruction", "goals"}
_EXPECTATIONS = ("valid", "invalid")


class TaskSuiteError(ConfigError):
    """A task suite file is missing or malformed; the message names the file and the task id."""


def room_kind(scene: str) -> str:
    """Room kind of an iTHOR floor plan name.

    >>> room_kind("FloorPlan1"), room_kind("FloorPlan215"), room_kind("FloorPlan430")
    ('kitchen', 'living_room', 'bathroom')
    """
    match = re.fullmatch(r"FloorPlan(\d+)", scene or "")
    if match:
        number = int(match.group(1))
        for kind, numbers in ROOM_KINDS.items():
            if number in numbers:
                return kind
    raise ConfigError(f"{scene!r} is not an iTHOR floor plan (FloorPlan1-30, 201-230, 301-330, 401-430)")


@dataclass(frozen=True)
class Subtask:
    """One step of an instruction and the goal conditions that describe the world after it."""

    instruction: str
    goals: tuple[GoalCondition, ...]
    goal_text: str


@dataclass(frozen=True)
class Task:
    """A high-level instruction in one scene, as a sequence of sub-tasks with goal conditions.

    Attributes:
        id: unique id across all suites.
        scene: iTHOR floor plan, e.g. ``"FloorPlan1"``.
        category: one of CATEGORIES.
        instruction: the whole instruction as the user says it.
        evaluation: ``"ordered"`` or ``"end_state"`` (see goals.EVALUATION_MODES).
        subtasks: the sub-tasks in order.
        expect: ``"valid"``, or ``"invalid"`` for deliberately bad tasks.
        reason: for invalid tasks, a fragment of the expected validation reason.
        suite: the suite (file stem) the task came from.
    """

    id: str
    scene: str
    category: str
    instruction: str
    evaluation: str
    subtasks: tuple[Subtask, ...]
    expect: str = "valid"
    reason: str = ""
    suite: str = ""

    @property
    def room_kind(self) -> str:
        """``kitchen``, ``living_room``, ``bedroom`` or ``bathroom``."""
        return room_kind(self.scene)

    @property
    def goals_per_subtask(self) -> list[list[GoalCondition]]:
        """Goal conditions grouped by sub-task, the input of goals.GoalTracker."""
        return [list(s.goals) for s in self.subtasks]

    @property
    def conditions(self) -> list[GoalCondition]:
        """All goal conditions in order."""
        return [g for s in self.subtasks for g in s.goals]


def validate_task(task: Task, scene_objects: Any) -> list[InvalidCondition]:
    """Conditions of ``task`` its scene cannot satisfy (see goals.validate_for_scene)."""
    return validate_for_scene(task.conditions, scene_objects)


def _text(value: Any, where: str, key: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise TaskSuiteError(f"{where}: '{key}' must be a non-empty string, got {value!r}")
    return value.strip()


def _parse_task(raw: Any, index: int, path: Path, default_evaluation: str | None) -> Task:
    where = f"{path}: task #{index}"
    if not isinstance(raw, dict):
        raise TaskSuiteError(f"{where}: expected a mapping, got {type(raw).__name__}")
    task_id = raw.get("id")
    if isinstance(task_id, str) and task_id.strip():
        where = f"{path}: task {task_id.strip()!r}"
    unknown = set(raw) - _TASK_KEYS
    if unknown:
        raise TaskSuiteError(f"{where}: unknown key(s) {sorted(unknown)}; allowed {sorted(_TASK_KEYS)}")
    missing = [k for k in _REQUIRED_TASK_KEYS if k not in raw]
    if missing:
        raise TaskSuiteError(f"{where}: missing key(s) {missing}")
    task_id = _text(raw["id"], where, "id")
    scene = _text(raw["scene"], where, "scene")
    try:
        room_kind(scene)
    except ConfigError as err:
        raise TaskSuiteError(f"{where}: {err}") from err
    category = _text(raw["category"], where, "category")
    if category not in CATEGORIES:
        raise TaskSuiteError(f"{where}: category {category!r} is not one of {CATEGORIES}")
    evaluation = raw.get("evaluation", default_evaluation)
    if evaluation not in EVALUATION_MODES:
        raise TaskSuiteError(f"{where}: evaluation {evaluation!r} is not one of {EVALUATION_MODES}")
    expect = raw.get("expect", "valid")
    if expect not in _EXPECTATIONS:
        raise TaskSuiteError(f"{where}: expect {expect!r} is not one of {_EXPECTATIONS}")
    reason = raw.get("reason", "")
    if not isinstance(reason, str):
        raise TaskSuiteError(f"{where}: 'reason' must be a string, got {reason!r}")
    raw_subtasks = raw["subtasks"]
    if not isinstance(raw_subtasks, list) or not raw_subtasks:
        raise TaskSuiteError(f"{where}: 'subtasks' must be a non-empty list")
    subtasks = []
    for k, sub in enumerate(raw_subtasks):
        sub_where = f"{where}, sub-task #{k}"
        if not isinstance(sub, dict):
            raise TaskSuiteError(f"{sub_where}: expected a mapping with instruction and goals, got {sub!r}")
        unknown = set(sub) - _SUBTASK_KEYS
        if unknown or "instruction" not in sub or "goals" not in sub:
            raise TaskSuiteError(f"{sub_where}: needs exactly the keys {sorted(_SUBTASK_KEYS)}, got {sorted(sub)}")
        goal_text = _text(sub["goals"], sub_where, "goals")
        try:
            goals = tuple(parse_goals(goal_text))
        except GoalConditionError as err:
            raise TaskSuiteError(f"{sub_where}: {err}") from err
        if not goals:
            raise TaskSuiteError(f"{sub_where}: no goal conditions in {goal_text!r}")
        subtasks.append(Subtask(_text(sub["instruction"], sub_where, "instruction"), goals, goal_text))
    return Task(
        id=task_id,
        scene=scene,
        category=category,
        instruction=_text(raw["instruction"], where, "instruction"),
        evaluation=evaluation,
        subtasks=tuple(subtasks),
        expect=expect,
        reason=reason.strip(),
        suite=path.stem,
    )


def _suite_path(path_or_name: str | Path) -> Path:
    path = Path(path_or_name)
    if path.suffix in (".yaml", ".yml") or path.exists():
        if not path.is_file():
            raise TaskSuiteError(f"task suite file {str(path)!r} does not exist")
        return path
    candidate = SUITE_DIR / f"{path_or_name}.yaml"
    if not candidate.is_file():
        raise TaskSuiteError(f"no task suite named {str(path_or_name)!r}; available: {available_suites()}")
    return candidate


def load_suite(path_or_name: str | Path) -> list[Task]:
    """Load one suite: a YAML file path, or the name of a shipped suite (``"simple"``, ``"invalid"``...).

    The file holds ``suite``, ``description``, an optional default ``evaluation`` and ``tasks``; each task
    has ``id``, ``scene``, ``category``, ``instruction``, ``evaluation`` and ``subtasks`` (each with
    ``instruction`` and a ``goals`` string), plus ``expect: invalid`` and ``reason`` for bad tasks.

    Raises:
        TaskSuiteError: missing file, YAML syntax error, or a malformed task (naming file and task id).
    """
    path = _suite_path(path_or_name)
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as err:
        raise TaskSuiteError(f"{path}: invalid YAML: {err}") from err
    except (OSError, UnicodeDecodeError) as err:
        raise TaskSuiteError(f"{path}: cannot read: {err}") from err
    if not isinstance(data, dict) or not isinstance(data.get("tasks"), list):
        raise TaskSuiteError(f"{path}: expected a mapping with a 'tasks' list")
    unknown = set(data) - _SUITE_KEYS
    if unknown:
        raise TaskSuiteError(f"{path}: unknown top-level key(s) {sorted(unknown)}; allowed {sorted(_SUITE_KEYS)}")
    default_evaluation = data.get("evaluation")
    if default_evaluation is not None and default_evaluation not in EVALUATION_MODES:
        raise TaskSuiteError(f"{path}: evaluation {default_evaluation!r} is not one of {EVALUATION_MODES}")
    tasks = [_parse_task(raw, i, path, default_evaluation) for i, raw in enumerate(data["tasks"])]
    _check_unique(tasks, str(path))
    return tasks


def _check_unique(tasks: Sequence[Task], where: str) -> None:
    seen: dict[str, Task] = {}
    for task in tasks:
        if task.id in seen:
            first = seen[task.id].suite
            raise TaskSuiteError(f"{where}: duplicate task id {task.id!r} (suites {first!r} and {task.suite!r})")
        seen[task.id] = task


def available_suites(directory: str | Path | None = None) -> list[str]:
    """Names of the suites in ``directory`` (default: the shipped ones), sorted."""
    folder = Path(directory) if directory is not None else SUITE_DIR
    return sorted(p.stem for p in folder.glob("*.yaml"))


def load_all_suites(directory: str | Path | None = None, *, include_invalid: bool = False) -> list[Task]:
    """Every task of every suite in ``directory`` (default: the shipped ones), in suite-name order.

    Args:
        directory: folder of ``*.yaml`` suites.
        include_invalid: also return the deliberately bad tasks (``expect: invalid``).

    Raises:
        TaskSuiteError: a malformed suite, or a task id used twice across suites.
    """
    folder = Path(directory) if directory is not None else SUITE_DIR
    tasks = [t for name in available_suites(folder) for t in load_suite(folder / f"{name}.yaml")]
    _check_unique(tasks, str(folder))
    return [t for t in tasks if include_invalid or t.expect == "valid"]
