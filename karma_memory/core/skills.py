"""The skill API shared by the simulator, the AI2-THOR adapter, the ROS action and the planner.

A plan is a list of :class:`SkillCall` records; :data:`SKILL_SCHEMA` says which skills exist and
which arguments each takes, so a call can be validated before anything moves.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping, Protocol, Sequence, runtime_checkable

from karma_memory.core.errors import PlanValidationError

__all__ = [
    "ArgKind",
    "SKILL_SCHEMA",
    "SkillCall",
    "SkillCost",
    "SkillResult",
    "SkillExecutor",
    "validate_call",
]

# Argument kinds: "object" = a THOR objectId or an object type; "areas" = ordered list of area node ids.
ArgKind = str

#: skill name -> {argument name: (kind, required)}. Object arguments accept an objectId
#: ("Apple|+01.20|+00.90|-00.30") or a type ("Apple"); a type resolves to the nearest visible instance.
SKILL_SCHEMA: dict[str, dict[str, tuple[ArgKind, bool]]] = {
    "Explore": {"object": ("object", True), "areas": ("areas", False)},
    "GoToObject": {"object": ("object", True)},
    "PickupObject": {"object": ("object", True)},
    "PutObject": {"receptacle": ("object", True)},  # puts the held object
    "DropHandObject": {},
    "ThrowObject": {"object": ("object", True)},  # the held object into a GarbageCan in reach
    "OpenObject": {"object": ("object", True)},
    "CloseObject": {"object": ("object", True)},
    "SliceObject": {"object": ("object", True)},  # needs a Knife/ButterKnife in hand
    "ToggleOn": {"object": ("object", True)},
    "ToggleOff": {"object": ("object", True)},
    "SwitchOn": {"object": ("object", True)},
    "SwitchOff": {"object": ("object", True)},
    "CleanObject": {"object": ("object", True)},
    "CookObject": {"object": ("object", True)},
    "FillObject": {"object": ("object", True)},
    "EmptyObject": {"object": ("object", True)},
    "BreakObject": {"object": ("object", True)},
}


@dataclass(frozen=True)
class SkillCall:
    """One step of a plan: a skill name and its arguments (strings, or a list of area ids)."""

    skill: str
    args: Mapping[str, str | tuple[str, ...]] = field(default_factory=dict)

    def __str__(self) -> str:
        inner = ", ".join(f"{k}={v!r}" for k, v in self.args.items())
        return f"{self.skill}({inner})"


@dataclass(frozen=True)
class SkillCost:
    """What a skill cost: primitive simulator steps, metres driven, simulated seconds."""

    steps: int = 0
    distance_m: float = 0.0
    sim_time_s: float = 0.0

    def __add__(self, other: SkillCost) -> SkillCost:
        return SkillCost(self.steps + other.steps, self.distance_m + other.distance_m,
                         self.sim_time_s + other.sim_time_s)


@dataclass(frozen=True)
class SkillResult:
    """Outcome of one skill. ``object_id`` is the object acted on or found (Explore)."""

    success: bool
    message: str
    cost: SkillCost = SkillCost()
    object_id: str | None = None
    areas_visited: int = 0  # Explore: how many areas it drove to (the exploration count)


@runtime_checkable
class SkillExecutor(Protocol):
    """Anything that runs skills: the embedded simulator, the AI2-THOR adapter, a ROS action client."""

    def execute(self, call: SkillCall) -> SkillResult:
        """Run one skill; never raises for a failed skill (success=False with a message)."""
        ...

    def visible_objects(self) -> list[dict]:
        """THOR metadata dicts of the objects the robot sees now (what observations are made from)."""
        ...


def validate_call(call: SkillCall, known_types: Sequence[str] | None = None) -> SkillCall:
    """Check a call against SKILL_SCHEMA (and object types, when given); return it normalised.

    Raises:
        PlanValidationError: naming the skill or argument that is wrong.

    >>> validate_call(SkillCall("PickupObject", {"object": "Apple"}))
    SkillCall(skill='PickupObject', args={'object': 'Apple'})
    """
    schema = SKILL_SCHEMA.get(call.skill)
    if schema is None:
        raise PlanValidationError(f"unknown skill {call.skill!r}; known: {sorted(SKILL_SCHEMA)}")
    if not isinstance(call.args, Mapping):
        raise PlanValidationError(f"{call.skill}: args must be a mapping, got {type(call.args).__name__}")
    extra = set(call.args) - set(schema)
    if extra:
        raise PlanValidationError(f"{call.skill}: unexpected argument(s) {sorted(extra)}; takes {sorted(schema)}")
    args: dict[str, str | tuple[str, ...]] = {}
    for name, (kind, required) in schema.items():
        if name not in call.args:
            if required:
                raise PlanValidationError(f"{call.skill}: missing argument {name!r}")
            continue
        value = call.args[name]
        if kind == "areas":
            if isinstance(value, str) or not isinstance(value, (list, tuple)) or \
                    not all(isinstance(a, str) and a for a in value):
                raise PlanValidationError(f"{call.skill}: {name!r} must be a list of area ids, got {value!r}")
            args[name] = tuple(value)
        else:
            if not isinstance(value, str) or not value.strip():
                raise PlanValidationError(f"{call.skill}: {name!r} must be a non-empty string, got {value!r}")
            value = value.strip()
            if known_types is not None and "|" not in value and value not in known_types:
                raise PlanValidationError(f"{call.skill}: unknown object type {value!r}")
            args[name] = value
    return SkillCall(call.skill, args)
