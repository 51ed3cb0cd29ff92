"""Goal-condition language (ON/INSIDE/STATE/HOLD ...): parser, checker on THOR metadata, validation, tracker."""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from karma_memory.core.errors import GoalConditionError, UnknownObjectError
from karma_memory.core.lexicon import (
    PIECE_BASES,
    PIECE_TYPES,
    TYPE_CAPABILITIES,
    resolve_type,
    type_of_object_id,
)

__all__ = [
    "PREDICATES",
    "STATES",
    "EVALUATION_MODES",
    "COORDINATE_TOLERANCE_M",
    "GoalCondition",
    "GoalHistory",
    "InvalidCondition",
    "ConditionStatus",
    "GoalTracker",
    "parse_goal",
    "parse_goals",
    "parse_state",
    "check",
    "validate_for_scene",
]

#: Canonical predicates; TOGGLEON, SWITCHOFF, OPEN, CLOSED, ... are parsed into STATE, HOLDON into HOLD.
PREDICATES: tuple[str, ...] = ("ON", "INSIDE", "STATE", "HOLD")
#: Canonical states a STATE condition can ask for.
STATES: tuple[str, ...] = (
    "sliced", "cooked", "clean", "dirty", "filled", "empty", "hot", "cold", "broken", "open", "closed", "on", "off",
)
#: ``ordered``: each condition counts when it first holds at or after the update at which the previous one
#: counted (the world after each sub-task, in order). ``end_state``: all conditions hold at the last update.
EVALUATION_MODES: tuple[str, ...] = ("ordered", "end_state")
#: A coordinate target ``ON(obj, (x, y, z))`` holds when the object's centre is this close (metres, 3-D).
COORDINATE_TOLERANCE_M = 0.5

_STATE_WORDS: dict[str, str] = {
    **dict.fromkeys(["sliced", "slice", "cut", "chopped", "diced"], "sliced"),
    **dict.fromkeys(["cooked", "cook", "fried", "boiled", "baked", "roasted", "toasted"], "cooked"),
    **dict.fromkeys(["clean", "cleaned", "washed", "wash", "rinsed"], "clean"),
    **dict.fromkeys(["dirty", "soiled"], "dirty"),
    **dict.fromkeys(["filled", "fill", "full", "filledwithliquid", "filledwithwater"], "filled"),
    **dict.fromkeys(["empty", "emptied"], "empty"),
    **dict.fromkeys(["hot", "heated", "heat", "warm", "warmed"], "hot"),
    **dict.fromkeys(["cold", "cooled", "cool", "chilled"], "cold"),
    **dict.fromkeys(["broken", "broke", "break", "smashed", "shattered"], "broken"),
    **dict.fromkeys(["open", "opened"], "open"),
    **dict.fromkeys(["closed", "close", "shut"], "closed"),
    **dict.fromkeys(["on", "toggledon", "switchedon", "turnedon"], "on"),
    **dict.fromkeys(["off", "toggledoff", "switchedoff", "turnedoff"], "off"),
}

# Unary predicates that are a STATE in disguise (the paper's TOGGLEN typo included). ON/INSIDE are not here:
# "ON(desk)" is malformed, not "the desk is on".
_UNARY_STATE_PREDICATES: dict[str, str] = {
    **dict.fromkeys(["TOGGLEON", "TOGGLEN", "SWITCHON", "TURNON", "TOGGLEDON"], "on"),
    **dict.fromkeys(["TOGGLEOFF", "SWITCHOFF", "TURNOFF", "TOGGLEDOFF"], "off"),
    **dict.fromkeys(["OPEN", "OPENED", "ISOPEN"], "open"),
    **dict.fromkeys(["CLOSED", "CLOSE", "ISCLOSED"], "closed"),
    **dict.fromkeys(["SLICED", "SLICE", "ISSLICED"], "sliced"),
    **dict.fromkeys(["COOKED", "COOK", "ISCOOKED"], "cooked"),
    **dict.fromkeys(["CLEAN", "CLEANED", "WASHED", "ISCLEAN"], "clean"),
    **dict.fromkeys(["DIRTY", "ISDIRTY"], "dirty"),
    **dict.fromkeys(["HEATED", "HOT", "ISHOT"], "hot"),
    **dict.fromkeys(["COOLED", "COLD", "ISCOLD"], "cold"),
    **dict.fromkeys(["FILLED", "ISFILLED"], "filled"),
    **dict.fromkeys(["EMPTY", "EMPTIED"], "empty"),
    **dict.fromkeys(["BROKEN", "ISBROKEN"], "broken"),
}
_HOLD_PREDICATES = frozenset(["HOLD", "HOLDON", "HOLDING", "PICKEDUP", "INHAND"])
_RELATION_PREDICATES = {"ON": "ON", "ONTOP": "ON", "INSIDE": "INSIDE", "IN": "INSIDE", "INTO": "INSIDE"}
_ROBOT_ARG = re.compile(r"^(robot|agent|robots)\d*$", re.IGNORECASE)
_CONDITION = re.compile(r"^\s*([A-Za-z_ ]+?)\s*\((.*)\)\s*(?::\s*([^\s:]+))?\s*$", re.DOTALL)
_TRUE_WORDS = frozenset(["1", "true", "yes"])
_FALSE_WORDS = frozenset(["0", "false", "no"])

_BASIN_TYPES = frozenset(["SinkBasin", "BathtubBasin", "Sink", "Bathtub"])
_HEAT_TYPES = frozenset(["Microwave", "StoveBurner", "Toaster", "CoffeeMachine"])
_SLICERS = frozenset(["Knife", "ButterKnife"])
_CONTAINER_DEPTH = 4  # apple in bowl in fridge: follow at most this many carried containers


@dataclass(frozen=True)
class GoalCondition:
    """One symbolic goal: ``ON(obj, target)``, ``INSIDE(obj, target)``, ``STATE(obj, state)``, ``HOLD(obj)``.

    Object names are kept as written (a THOR type, a synonym, or an objectId); they are resolved against a
    scene only when checked, so the same condition works in every floor plan.

    Attributes:
        predicate: one of PREDICATES.
        obj: the object name.
        target: receptacle name for ON/INSIDE (None with a coordinate target).
        point: coordinate target (x, y, z) in the THOR world frame, metres, for ON/INSIDE.
        state: one of STATES for STATE.
        value: False for a negated condition (``: 0``), which holds when the positive one does not.
        text: the source text, for messages (not part of equality).
    """

    predicate: str
    obj: str
    target: str | None = None
    point: tuple[float, float, float] | None = None
    state: str | None = None
    value: bool = True
    text: str = field(default="", compare=False, repr=False)

    def __post_init__(self) -> None:
        where = self.text or f"{self.predicate}({self.obj})"
        if self.predicate not in PREDICATES:
            raise GoalConditionError(f"goal condition {where!r}: unknown predicate {self.predicate!r}")
        if not isinstance(self.obj, str) or not self.obj.strip():
            raise GoalConditionError(f"goal condition {where!r}: empty object name")
        if self.predicate in ("ON", "INSIDE"):
            if (self.target is None) == (self.point is None):
                raise GoalConditionError(f"goal condition {where!r}: needs exactly one receptacle or coordinate")
            if self.point is not None:
                if len(self.point) != 3 or not all(math.isfinite(v) for v in self.point):
                    raise GoalConditionError(f"goal condition {where!r}: coordinate must be 3 finite numbers")
            elif not self.target or not self.target.strip():
                raise GoalConditionError(f"goal condition {where!r}: empty receptacle name")
        if self.predicate == "STATE" and self.state not in STATES:
            raise GoalConditionError(f"goal condition {where!r}: unknown state {self.state!r}; expected {STATES}")

    def __str__(self) -> str:
        if self.predicate == "STATE":
            body = f"STATE({self.obj}, {self.state})"
        elif self.predicate == "HOLD":
            body = f"HOLD({self.obj})"
        elif self.point is not None:
            body = f"{self.predicate}({self.obj}, ({self.point[0]:g}, {self.point[1]:g}, {self.point[2]:g}))"
        else:
            body = f"{self.predicate}({self.obj}, {self.target})"
        return body if self.value else f"{body}: 0"

    @property
    def names(self) -> tuple[str, ...]:
        """Object names the condition refers to (object, then receptacle)."""
        return (self.obj,) if self.target is None else (self.obj, self.target)


@dataclass(frozen=True)
class GoalHistory:
    """Object ids to which something happened at some earlier update (THOR keeps no such record).

    Attributes:
        washed: ids that were in a basin under a running faucet, or went from dirty to clean.
        heated: ids that were hot, cooked, or in a heat source that was on.
        cooled: ids that were cold or inside a cold source (the fridge).
    """

    washed: frozenset[str] = frozenset()
    heated: frozenset[str] = frozenset()
    cooled: frozenset[str] = frozenset()


@dataclass(frozen=True)
class InvalidCondition:
    """A condition that cannot be checked or reached in a scene, and why."""

    condition: GoalCondition
    reason: str

    def __str__(self) -> str:
        return f"{self.condition}: {self.reason}"


@dataclass(frozen=True)
class ConditionStatus:
    """Where one condition of a GoalTracker stands.

    Attributes:
        subtask: index of its sub-task.
        index: index in the flattened condition list.
        condition: the condition.
        achieved: counted (ordered) or holding at the last update (end_state).
        achieved_at: update index at which it counted (0 = the initial scene), or None.
        holds_now: it holds at the last update.
        invalid_reason: why it can never count in this scene, or None.
    """

    subtask: int
    index: int
    condition: GoalCondition
    achieved: bool
    achieved_at: int | None
    holds_now: bool
    invalid_reason: str | None = None


# --------------------------------------------------------------------------------------------- parsing


def _split_top_level(text: str, separators: str, what: str) -> list[str]:
    """Split at separators outside parentheses; raise GoalConditionError on unbalanced parentheses."""
    parts: list[str] = []
    depth = 0
    current: list[str] = []
    for char in text:
        if char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
            if depth < 0:
                raise GoalConditionError(f"unbalanced ')' in goal conditions {what!r}")
        if char in separators and depth == 0:
            parts.append("".join(current))
            current = []
        else:
            current.append(char)
    if depth != 0:
        raise GoalConditionError(f"unbalanced '(' in goal conditions {what!r}")
    parts.append("".join(current))
    return parts


def parse_state(word: str) -> str:
    """Canonical state for a state word (``"washed"`` -> ``"clean"``) or raise GoalConditionError.

    >>> parse_state("Heated"), parse_state("opened"), parse_state("switched on")
    ('hot', 'open', 'on')
    """
    key = re.sub(r"[^a-z]", "", word.lower())
    if key.startswith("is") and key[2:] in _STATE_WORDS:
        key = key[2:]
    if key not in _STATE_WORDS:
        raise GoalConditionError(f"unknown state {word!r}; expected one of {STATES}")
    return _STATE_WORDS[key]


def _parse_point(text: str, where: str) -> tuple[float, float, float]:
    inner = text.strip()
    if inner.startswith("(") and inner.endswith(")"):
        inner = inner[1:-1]
    values = [v.strip() for v in inner.split(",")]
    try:
        x, y, z = (float(v) for v in values)
    except ValueError as err:
        raise GoalConditionError(f"goal condition {where!r}: coordinate {text.strip()!r} is not three numbers") from err
    if not all(math.isfinite(v) for v in (x, y, z)):
        raise GoalConditionError(f"goal condition {where!r}: coordinate {text.strip()!r} is not finite")
    return (x, y, z)


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _looks_like_object(name: str) -> bool:
    try:
        resolve_type(name)
    except UnknownObjectError:
        return False
    return True


def parse_goal(text: str) -> GoalCondition:
    """Parse one condition such as ``"INSIDE(Apple, Fridge): 1"``.

    Accepted forms: ``ON(obj, recep)``, ``ON(obj, (x, y, z))``, ``INSIDE(obj, recep)``, ``STATE(obj, state)``,
    ``TOGGLEON(obj)`` (also the paper's ``TOGGLEN``), ``TOGGLEOFF``, ``SWITCHON``, ``SWITCHOFF``, ``OPEN``,
    ``CLOSED`` and other unary state predicates, ``HOLD(obj)``, ``HOLDON(robot, obj)``; an optional ``: 1``
    (``: 0`` negates). Names may be quoted; a leading robot argument is dropped.

    Raises:
        GoalConditionError: naming the condition, when it is malformed.

    >>> str(parse_goal("TOGGLEN(Faucet): 1"))
    'STATE(Faucet, on)'
    >>> parse_goal("ON(soapbar,(-1.7, 0.8, 0.3))").point
    (-1.7, 0.8, 0.3)
    >>> str(parse_goal("HOLDON(robot, Apple)"))
    'HOLD(Apple)'
    >>> parse_goal("ON(desk): 1")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    karma_memory.core.errors.GoalConditionError: malformed goal condition 'ON(desk): 1': ON needs an object and ...
    """
    source = text.strip()
    match = _CONDITION.match(source)
    if not match:
        raise GoalConditionError(
            f"malformed goal condition {source!r}: expected NAME(arguments) with an optional ': 1'"
        )
    raw_name, raw_args, raw_value = match.groups()
    name = re.sub(r"[\s_]", "", raw_name).upper()
    value = True
    if raw_value is not None:
        if raw_value.lower() in _TRUE_WORDS:
            value = True
        elif raw_value.lower() in _FALSE_WORDS:
            value = False
        else:
            raise GoalConditionError(f"malformed goal condition {source!r}: value {raw_value!r} is not 1 or 0")
    args = [a.strip().strip("'\"").strip() for a in _split_top_level(raw_args, ",", source)]
    if args == [""]:
        args = []
    if any(not a for a in args):
        raise GoalConditionError(f"malformed goal condition {source!r}: empty argument")

    def bad(reason: str) -> GoalConditionError:
        return GoalConditionError(f"malformed goal condition {source!r}: {reason}")

    if name in _RELATION_PREDICATES:
        predicate = _RELATION_PREDICATES[name]
        if len(args) == 2 and args[1].startswith("("):
            return GoalCondition(predicate, args[0], point=_parse_point(args[1], source), value=value, text=source)
        if len(args) == 4 and all(_is_number(a) for a in args[1:]):
            point = _parse_point(",".join(args[1:]), source)
            return GoalCondition(predicate, args[0], point=point, value=value, text=source)
        if len(args) != 2:
            raise bad(f"{predicate} needs an object and a receptacle")
        return GoalCondition(predicate, args[0], target=args[1], value=value, text=source)
    if len(args) > 1 and _ROBOT_ARG.match(args[0]):
        args = args[1:]
    if name == "STATE":
        if len(args) != 2:
            raise bad("STATE needs an object and a state")
        try:
            state = parse_state(args[1])
        except GoalConditionError as err:
            hint = f"; did you mean ON({args[0]}, {args[1]})?" if _looks_like_object(args[1]) else ""
            raise bad(f"{args[1]!r} is not a state (expected one of {', '.join(STATES)}){hint}") from err
        return GoalCondition("STATE", args[0], state=state, value=value, text=source)
    if name in _UNARY_STATE_PREDICATES:
        if len(args) != 1:
            raise bad(f"{name} needs exactly one object")
        return GoalCondition("STATE", args[0], state=_UNARY_STATE_PREDICATES[name], value=value, text=source)
    if name in _HOLD_PREDICATES:
        if len(args) != 1:
            raise bad(f"{name} needs one object (optionally after the robot)")
        return GoalCondition("HOLD", args[0], value=value, text=source)
    raise bad(f"unknown predicate {raw_name.strip()!r}")


def parse_goals(text: str) -> list[GoalCondition]:
    """Parse a comma-, semicolon- or newline-separated list of goal conditions (blank text: no conditions).

    >>> [str(g) for g in parse_goals("INSIDE(apple, sink): 1, TOGGLEON(Faucet), STATE(apple, washed): 1")]
    ['INSIDE(apple, sink)', 'STATE(Faucet, on)', 'STATE(apple, clean)']
    """
    if not isinstance(text, str):
        raise GoalConditionError(f"goal conditions must be a string, got {type(text).__name__}: {text!r}")
    pieces = _split_top_level(text, ",;\n", text)
    return [parse_goal(p) for p in pieces if p.strip()]


# --------------------------------------------------------------------------------------------- checking


def _objects_of(scene: Any) -> Sequence[Mapping[str, Any]]:
    """The object list of a scene given as a list of THOR metadata dicts or anything with ``.objects``."""
    objects = getattr(scene, "objects", scene)
    if isinstance(objects, Mapping) or not isinstance(objects, Sequence):
        raise GoalConditionError(f"scene objects must be a list of THOR metadata dicts, got {type(objects).__name__}")
    return objects


def _xyz(obj: Mapping[str, Any]) -> tuple[float, float, float]:
    p = obj.get("position") or {}
    return (float(p.get("x", 0.0)), float(p.get("y", 0.0)), float(p.get("z", 0.0)))


class _Scene:
    """Indexes of one metadata snapshot: ids, types, containment, what is on, running basins, heat and cold."""

    def __init__(self, objects: Sequence[Mapping[str, Any]]) -> None:
        self.objects = objects
        self._containers: dict[str, set[str]] = {}
        self.by_id: dict[str, Mapping[str, Any]] = {}
        for obj in objects:
            oid = obj.get("objectId")
            if not isinstance(oid, str) or not isinstance(obj.get("objectType"), str):
                raise GoalConditionError(f"scene object without objectId/objectType: {dict(obj)!r:.200}")
            self.by_id[oid] = obj
        self.types = {o["objectType"] for o in objects}
        self.parents: dict[str, set[str]] = {
            oid: set(o.get("parentReceptacles") or ()) for oid, o in self.by_id.items()
        }
        for oid, obj in self.by_id.items():
            for child in obj.get("receptacleObjectIds") or ():
                self.parents.setdefault(child, set()).add(oid)
        self.on_ids = {oid for oid, o in self.by_id.items() if o.get("isToggled")}
        for oid in list(self.on_ids):
            self.on_ids.update(self.by_id[oid].get("controlledObjects") or ())
        self.controlled = {c for o in objects for c in (o.get("controlledObjects") or ())}
        self.running_basins = self._running_basins()
        self.hot_sources = {
            oid for oid, o in self.by_id.items()
            if (o.get("isHeatSource") or o["objectType"] in _HEAT_TYPES) and oid in self.on_ids
        }
        self.cold_sources = {
            oid for oid, o in self.by_id.items() if o.get("isColdSource") or o["objectType"] == "Fridge"
        }

    def _running_basins(self) -> set[str]:
        """Basins under a running faucet: each running faucet waters its nearest basin and any within 0.3 m more."""
        basins = [o for o in self.objects if o["objectType"] in _BASIN_TYPES]
        running: set[str] = set()
        for faucet in self.objects:
            if faucet["objectType"] != "Faucet" or faucet["objectId"] not in self.on_ids or not basins:
                continue
            dists = [(math.dist(_xyz(faucet), _xyz(b)), b["objectId"]) for b in basins]
            nearest = min(d for d, _ in dists)
            running.update(bid for d, bid in dists if d <= nearest + 0.3)
        return running

    def type_of(self, oid: str) -> str | None:
        obj = self.by_id.get(oid)
        return obj["objectType"] if obj is not None else type_of_object_id(oid)

    def containers(self, oid: str) -> set[str]:
        """Receptacles holding ``oid``: direct ones, and those holding a carried container it is in."""
        cached = self._containers.get(oid)
        if cached is not None:
            return cached
        found: set[str] = set()
        frontier = set(self.parents.get(oid, ()))
        for _ in range(_CONTAINER_DEPTH):
            nxt: set[str] = set()
            for pid in frontier - found:
                found.add(pid)
                parent = self.by_id.get(pid)
                if parent is not None and parent.get("pickupable"):
                    nxt |= self.parents.get(pid, set())
            if not nxt - found:
                break
            frontier = nxt
        self._containers[oid] = found
        return found

    def candidates(self, name: str) -> list[Mapping[str, Any]]:
        """Objects a name can mean here: instances of its types and the pieces sliced off them."""
        if "|" in name:
            return [o for oid, o in self.by_id.items() if oid == name or oid.startswith(name + "|")]
        types = set(resolve_type(name))
        types |= {PIECE_TYPES[t] for t in list(types) if t in PIECE_TYPES}
        return [o for o in self.objects if o["objectType"] in types]

    def in_target(self, oid: str, name: str) -> bool:
        """Is ``oid`` in a receptacle that ``name`` (a type name or an objectId) means?

        Receptacle ids missing from the list (THOR lists "Sink|...|SinkBasin" as a parent even where the
        basin is no separate object) are typed from the id itself.
        """
        holders = self.containers(oid)
        if "|" in name:
            return name in holders
        types = set(resolve_type(name))
        return any(self.type_of(pid) in types for pid in holders)

    def washing(self, oid: str) -> bool:
        return bool(self.containers(oid) & self.running_basins)

    def heating(self, oid: str) -> bool:
        return bool(self.containers(oid) & self.hot_sources)

    def cooling(self, oid: str) -> bool:
        return bool(self.containers(oid) & self.cold_sources)


def _in_history(oid: str, ids: frozenset[str]) -> bool:
    """True when ``oid`` or the object it was sliced from is in ``ids``."""
    while True:
        if oid in ids:
            return True
        if "|" not in oid or type_of_object_id(oid) not in PIECE_BASES:
            return False
        oid = oid.rsplit("|", 1)[0]


def _state_holds(scene: _Scene, cands: list[Mapping[str, Any]], state: str, history: GoalHistory) -> bool:
    if state == "sliced":
        return any(o.get("isSliced") or o["objectType"] in PIECE_BASES for o in cands)
    if state == "cooked":
        return any(o.get("isCooked") for o in cands)
    if state == "clean":
        return any(
            not o.get("isDirty") and (_in_history(o["objectId"], history.washed) or scene.washing(o["objectId"]))
            for o in cands
        )
    if state == "dirty":
        return any(o.get("isDirty") for o in cands)
    if state == "filled":
        return any(o.get("isFilledWithLiquid") for o in cands)
    if state == "empty":
        return any(o.get("canFillWithLiquid") and not o.get("isFilledWithLiquid") for o in cands)
    if state == "hot":
        return any(
            o.get("temperature") == "Hot" or _in_history(o["objectId"], history.heated) or scene.heating(o["objectId"])
            for o in cands
        )
    if state == "cold":
        return any(
            o.get("temperature") == "Cold" or _in_history(o["objectId"], history.cooled) or scene.cooling(o["objectId"])
            for o in cands
        )
    if state == "broken":
        return any(o.get("isBroken") for o in cands)
    if state == "open":
        return any(o.get("isOpen") for o in cands)
    if state == "closed":  # universal: "close the drawer" means no drawer is left open
        openable = [o for o in cands if o.get("openable", True)]
        return bool(openable) and not any(o.get("isOpen") for o in openable)
    if state == "on":
        return any(o["objectId"] in scene.on_ids for o in cands)
    if state == "off":  # universal: "turn off the stove" means every burner
        switchable = [o for o in cands if o.get("toggleable", True) or o["objectId"] in scene.controlled]
        return bool(switchable) and not any(o["objectId"] in scene.on_ids for o in switchable)
    raise GoalConditionError(f"unknown state {state!r}")  # unreachable: GoalCondition validates states


def _holds(scene: _Scene, condition: GoalCondition, held_object_id: str | None, history: GoalHistory) -> bool:
    cands = scene.candidates(condition.obj)
    if condition.predicate == "HOLD":
        if held_object_id is not None:
            result = any(o["objectId"] == held_object_id for o in cands)
        else:
            result = any(o.get("isPickedUp") for o in cands)
    elif condition.predicate == "STATE":
        assert condition.state is not None
        result = _state_holds(scene, cands, condition.state, history)
    elif condition.point is not None:
        result = any(math.dist(_xyz(o), condition.point) <= COORDINATE_TOLERANCE_M for o in cands)
    else:
        assert condition.target is not None
        result = any(scene.in_target(o["objectId"], condition.target) for o in cands)
    return result == condition.value


def check(
    condition: GoalCondition,
    objects: Any,
    held_object_id: str | None = None,
    *,
    history: GoalHistory | None = None,
) -> bool:
    """Does ``condition`` hold in one THOR metadata snapshot?

    A name matches every instance of its types and the condition holds when one instance satisfies it
    (existential) — except ``off`` and ``closed``, which need every switchable / openable instance off or
    closed ("turn off the stove" means all burners). An Apple also matches the AppleSliced pieces cut from it.
    ON and INSIDE both mean "in the receptacle" (THOR's parentReceptacles does not tell them apart), also
    through a carried container (apple in a bowl in the fridge). ``clean``, ``hot`` and ``cold`` need
    history: an apple is never dirty in THOR, so "washed" means it sat in a basin under a running faucet —
    now, or at an earlier update recorded in ``history`` (GoalTracker keeps it, and also records an object
    it saw dirty and later clean as washed).

    Args:
        condition: the goal condition.
        objects: ``event.metadata['objects']`` (list of dicts), or anything with an ``objects`` list.
        held_object_id: the object in the robot's hand; None falls back to the ``isPickedUp`` flags.
        history: what happened at earlier updates (washing, heating, cooling).

    Raises:
        UnknownObjectError: a name in the condition means no THOR type.
        GoalConditionError: the objects are not THOR metadata dicts.

    >>> apple = {"objectId": "Apple|1", "objectType": "Apple", "parentReceptacles": ["Fridge|2"]}
    >>> fridge = {"objectId": "Fridge|2", "objectType": "Fridge", "isOpen": False, "openable": True}
    >>> check(parse_goal("INSIDE(apple, refrigerator)"), [apple, fridge])
    True
    >>> check(parse_goal("OPEN(fridge)"), [apple, fridge])
    False
    """
    return _holds(_Scene(_objects_of(objects)), condition, held_object_id, history or GoalHistory())


# --------------------------------------------------------------------------------------------- validation


def _caps_in_scene(scene: _Scene, types: Iterable[str]) -> set[str]:
    """Capability flags of the scene's instances of ``types`` (static flags for run-time piece types)."""
    caps: set[str] = set()
    for t in types:
        instances = [o for o in scene.objects if o["objectType"] == t]
        if not instances:
            caps |= TYPE_CAPABILITIES.get(t, frozenset())
        for obj in instances:
            caps |= {c for c in TYPE_CAPABILITIES.get(t, frozenset()) if obj.get(c, True)}
            if obj["objectId"] in scene.controlled:
                caps.add("toggleable")
    return caps


def _state_reason(scene: _Scene, name: str, types: list[str], state: str) -> str | None:
    """Why ``state`` is unreachable for ``types`` in this scene, or None when THOR can reach it."""
    own = _caps_in_scene(scene, types)
    pieces = [PIECE_TYPES[t] for t in types if t in PIECE_TYPES]
    with_pieces = own | _caps_in_scene(scene, pieces)
    label = "/".join(types)
    has_faucet = "Faucet" in scene.types and bool(scene.types & _BASIN_TYPES)
    has_heat = any(o.get("isHeatSource") or o["objectType"] in _HEAT_TYPES for o in scene.objects)
    if state == "sliced":
        if "sliceable" not in own:
            return f"{label} cannot be sliced in THOR (not sliceable)"
        if not (scene.types & _SLICERS) and not set(types) <= {"Egg"}:
            return f"scene has no Knife or ButterKnife to slice {name!r} with"
    elif state == "cooked":
        if "cookable" not in with_pieces:
            return f"{label} cannot be cooked in THOR (not cookable, nor are pieces sliced from it)"
        if not has_heat:
            return f"scene has no heat source (Microwave, StoveBurner, Toaster) to cook {name!r}"
    elif state == "clean":
        if "dirtyable" not in with_pieces and "pickupable" not in with_pieces:
            return f"{label} can neither get dirty nor be carried to a sink"
        if "dirtyable" not in with_pieces and not has_faucet:
            return f"{label} is never dirty in THOR and the scene has no basin with a Faucet to wash it under"
    elif state == "dirty":
        if "dirtyable" not in own:
            return f"{label} cannot be dirty in THOR (not dirtyable)"
    elif state in ("filled", "empty"):
        if "canFillWithLiquid" not in own:
            return f"{label} cannot hold liquid in THOR (canFillWithLiquid is false)"
        if state == "filled" and not ({"Faucet", "CoffeeMachine"} & scene.types):
            return f"scene has no Faucet or CoffeeMachine to fill {name!r} from"
    elif state in ("hot", "cold"):
        if "pickupable" not in with_pieces:
            return f"{label} cannot be carried to a {'heat' if state == 'hot' else 'cold'} source"
        if state == "hot" and not has_heat:
            return f"scene has no heat source (Microwave, StoveBurner, Toaster) to heat {name!r}"
        if state == "cold" and not any(o.get("isColdSource") or o["objectType"] == "Fridge" for o in scene.objects):
            return f"scene has no Fridge to cool {name!r} in"
    elif state == "broken":
        if "breakable" not in own:
            return f"{label} cannot be broken in THOR (not breakable)"
    elif state in ("open", "closed"):
        if "openable" not in own:
            return f"{label} cannot be opened or closed in THOR (not openable)"
    elif state in ("on", "off"):
        if "toggleable" not in own:
            return f"{label} cannot be switched on or off in THOR (not toggleable)"
    return None


def _name_types(scene: _Scene, name: str) -> tuple[list[str] | None, str | None]:
    """Scene types for a name, or a reason why the name is no THOR type or absent from the scene."""
    if "|" in name:
        if any(oid == name or oid.startswith(name + "|") for oid in scene.by_id):
            t = type_of_object_id(name)
            return ([t] if t else []), None
        base = name.rsplit("|", 1)[0]
        piece = type_of_object_id(name)
        if piece in PIECE_BASES and base in scene.by_id:
            return [piece], None
        return None, f"scene has no object with id {name!r}"
    try:
        resolve_type(name)
    except UnknownObjectError as err:
        return None, str(err)
    try:
        return resolve_type(name, scene.types), None
    except UnknownObjectError as err:
        return None, str(err)


def _condition_reason(scene: _Scene, condition: GoalCondition) -> str | None:
    types, reason = _name_types(scene, condition.obj)
    if types is None:
        return reason
    obj_caps = _caps_in_scene(scene, types)
    if condition.predicate in ("ON", "INSIDE", "HOLD") and "pickupable" not in obj_caps:
        return f"{'/'.join(types)} cannot be picked up in THOR, so it cannot be held or moved"
    if condition.predicate in ("ON", "INSIDE") and condition.target is not None:
        target_types, reason = _name_types(scene, condition.target)
        if target_types is None:
            return reason
        if "receptacle" not in _caps_in_scene(scene, target_types):
            return f"{'/'.join(target_types)} is not a receptacle in THOR"
        if set(types) & set(target_types):
            return f"{condition.obj!r} cannot be put in itself"
    if condition.predicate == "STATE" and condition.value:
        assert condition.state is not None
        return _state_reason(scene, condition.obj, types, condition.state)
    return None


def validate_for_scene(conditions: Iterable[GoalCondition], scene_objects: Any) -> list[InvalidCondition]:
    """Conditions a scene cannot satisfy, each with the reason; an empty list means all are reachable.

    Reasons: a name that is no THOR type, an object or receptacle the scene lacks, a state THOR cannot reach
    for the type (a cooked Apple, a sliced Mug), a receptacle that is not one, nothing to do it with (no knife,
    no faucet, no heat source).

    >>> mug = {"objectId": "Mug|1", "objectType": "Mug", "pickupable": True, "receptacle": True}
    >>> [i.reason for i in validate_for_scene(parse_goals("STATE(mug, sliced), INSIDE(mug, fridge)"), [mug])]
    ['Mug cannot be sliced in THOR (not sliceable)', "scene has no 'fridge' (looked for Fridge)"]
    """
    scene = _Scene(_objects_of(scene_objects))
    invalid = []
    for condition in conditions:
        reason = _condition_reason(scene, condition)
        if reason is not None:
            invalid.append(InvalidCondition(condition, reason))
    return invalid


# --------------------------------------------------------------------------------------------- tracking


class GoalTracker:
    """Evaluates the goal conditions of one instruction over the updates of an episode.

    Call :meth:`update` after every skill with the new metadata. The tracker remembers washing, heating and
    cooling (THOR forgets them) and, in ``ordered`` mode, counts a condition only when it first holds at or
    after the update at which the previous one counted — so "switch the light on, later off" needs both.
    The initial scene is update 0. Conditions the scene cannot satisfy are reported (``invalid``,
    ``per_condition``) and never count; in ordered mode the next condition does not wait for them.

    >>> light = {"objectId": "LightSwitch|1", "objectType": "LightSwitch", "toggleable": True, "isToggled": False}
    >>> tracker = GoalTracker([parse_goals("SWITCHON(light)"), parse_goals("SWITCHOFF(light)")], [light])
    >>> [str(c) for c in tracker.update([dict(light, isToggled=True)])], tracker.progress
    (['STATE(light, on)'], 0.5)
    >>> _ = tracker.update([light]); tracker.satisfied
    True
    """

    def __init__(
        self,
        conditions_per_subtask: Sequence[Sequence[GoalCondition]],
        scene_objects: Any,
        mode: str = "ordered",
        held_object_id: str | None = None,
    ) -> None:
        """Validate the conditions against the initial scene and evaluate it as update 0.

        Args:
            conditions_per_subtask: the goal conditions after each sub-task, in order.
            scene_objects: initial THOR metadata objects (list of dicts, or anything with ``.objects``).
            mode: ``"ordered"`` or ``"end_state"`` (EVALUATION_MODES).
            held_object_id: the object in hand at the start, if any.

        Raises:
            GoalConditionError: unknown mode, or a sub-task list that holds something else than conditions.
        """
        if mode not in EVALUATION_MODES:
            raise GoalConditionError(f"unknown evaluation mode {mode!r}; expected one of {EVALUATION_MODES}")
        self.mode = mode
        self._conditions: list[GoalCondition] = []
        self._subtask_of: list[int] = []
        for k, subtask in enumerate(conditions_per_subtask):
            for cond in subtask:
                if not isinstance(cond, GoalCondition):
                    raise GoalConditionError(f"sub-task {k} holds {cond!r}, not a GoalCondition")
                self._conditions.append(cond)
                self._subtask_of.append(k)
        self._n_subtasks = len(conditions_per_subtask)
        objects = _objects_of(scene_objects)
        initial = _Scene(objects)
        self._invalid: dict[int, str] = {}
        for i, cond in enumerate(self._conditions):
            reason = _condition_reason(initial, cond)
            if reason is not None:
                self._invalid[i] = reason
        self._washed: set[str] = set()
        self._heated: set[str] = set()
        self._cooled: set[str] = set()
        self._seen_dirty: set[str] = set()
        self._achieved_at: list[int | None] = [None] * len(self._conditions)
        self._holds_now: list[bool] = [False] * len(self._conditions)
        self._next = 0
        self._updates = 0
        self.update(objects, held_object_id)

    def _record_history(self, scene: _Scene) -> None:
        for oid, obj in scene.by_id.items():
            if obj.get("isDirty"):
                self._seen_dirty.add(oid)
            elif oid in self._seen_dirty or scene.washing(oid):
                self._washed.add(oid)
            if obj.get("temperature") == "Hot" or obj.get("isCooked") or scene.heating(oid):
                self._heated.add(oid)
            if obj.get("temperature") == "Cold" or scene.cooling(oid):
                self._cooled.add(oid)

    def update(self, objects: Any, held_object_id: str | None = None) -> list[GoalCondition]:
        """Evaluate a new metadata snapshot; return the conditions that counted at this update.

        Args:
            objects: THOR metadata objects after the last skill.
            held_object_id: the object in the robot's hand, or None (then ``isPickedUp`` decides).
        """
        scene = _Scene(_objects_of(objects))
        self._record_history(scene)
        history = self.history
        now = self._updates
        for i, cond in enumerate(self._conditions):
            self._holds_now[i] = i not in self._invalid and _holds(scene, cond, held_object_id, history)
        newly: list[GoalCondition] = []
        if self.mode == "ordered":
            while self._next < len(self._conditions):
                if self._next in self._invalid:
                    self._next += 1
                elif self._holds_now[self._next]:
                    self._achieved_at[self._next] = now
                    newly.append(self._conditions[self._next])
                    self._next += 1
                else:
                    break
        else:
            for i, holds in enumerate(self._holds_now):
                if holds and self._achieved_at[i] is None:
                    self._achieved_at[i] = now
                    newly.append(self._conditions[i])
                elif not holds:
                    self._achieved_at[i] = None
        self._updates += 1
        return newly

    @property
    def conditions(self) -> tuple[GoalCondition, ...]:
        """All conditions, flattened in order."""
        return tuple(self._conditions)

    @property
    def history(self) -> GoalHistory:
        """Washing, heating and cooling recorded so far."""
        return GoalHistory(frozenset(self._washed), frozenset(self._heated), frozenset(self._cooled))

    @property
    def updates(self) -> int:
        """Number of snapshots evaluated, the initial scene included."""
        return self._updates

    @property
    def invalid(self) -> list[InvalidCondition]:
        """Conditions the scene cannot satisfy, with reasons."""
        return [InvalidCondition(self._conditions[i], r) for i, r in sorted(self._invalid.items())]

    def _achieved(self, i: int) -> bool:
        return self._achieved_at[i] is not None

    @property
    def satisfied(self) -> bool:
        """All conditions counted (ordered) or hold now (end_state), and none is invalid."""
        return not self._invalid and all(self._achieved(i) for i in range(len(self._conditions)))

    @property
    def progress(self) -> float:
        """Fraction of conditions achieved (invalid ones count as not achieved); 1.0 when there are none."""
        if not self._conditions:
            return 1.0
        return sum(self._achieved(i) for i in range(len(self._conditions))) / len(self._conditions)

    @property
    def subtasks_achieved(self) -> int:
        """Leading sub-tasks whose conditions are all achieved (ordered) / sub-tasks fully holding (end_state)."""
        done = [True] * self._n_subtasks
        for i, k in enumerate(self._subtask_of):
            done[k] = done[k] and self._achieved(i)
        if self.mode == "end_state":
            return sum(done)
        count = 0
        for ok in done:
            if not ok:
                break
            count += 1
        return count

    @property
    def pending(self) -> GoalCondition | None:
        """The next condition to achieve (ordered: in order; end_state: the first not holding), or None."""
        for i, cond in enumerate(self._conditions):
            if not self._achieved(i) and i not in self._invalid:
                return cond
        return None

    @property
    def per_condition(self) -> list[ConditionStatus]:
        """Status of every condition: sub-task, achieved, when, holds now, invalid reason."""
        return [
            ConditionStatus(
                subtask=self._subtask_of[i],
                index=i,
                condition=cond,
                achieved=self._achieved(i),
                achieved_at=self._achieved_at[i],
                holds_now=self._holds_now[i],
                invalid_reason=self._invalid.get(i),
            )
            for i, cond in enumerate(self._conditions)
        ]
