"""The offline, deterministic planner: instruction → intents → grounded objects → skill calls.

Grounding is where memory matters (karma_spec.md §1.3–1.5):
- the short-term memory resolves "the washed fruit", "the thing I cleaned earlier", "it" to an
  object id whose place it knows, so the robot goes straight there (no exploration);
- the long-term memory knows the furniture (GoToObject) and ranks areas for Explore;
- with no memory the robot explores systematically and grounds vague phrases by word meaning only.
The output is a :class:`Plan` of validated :class:`SkillCall` records — data, never code.
"""

from __future__ import annotations

import copy
import re
from dataclasses import dataclass, field
from typing import Sequence

import numpy as np

from karma_memory.core.embedding import Embedder
from karma_memory.core.errors import PlanValidationError, UnknownObjectError
from karma_memory.core.glosses import ATTRIBUTES, gloss, type_words, with_attributes, words
from karma_memory.core.lexicon import PIECE_BASES, PIECE_TYPES, capabilities, resolve_type
from karma_memory.core.planner.base import Plan, PlanningContext
from karma_memory.core.priors import receptacle_priors
from karma_memory.core.planner.language import Intent, Phrase, parse_instruction
from karma_memory.core.skills import SkillCall, validate_call

__all__ = ["SymbolicPlanner", "Grounded", "DialogueState"]

KNIVES = ("Knife", "ButterKnife")
SINK = "SinkBasin"
LIGHTS = ("LightSwitch", "DeskLamp", "FloorLamp")

#: capability a role needs (lexicon capability names)
ROLE_CAPABILITY = {"pick": "pickupable", "receptacle": "receptacle", "toggle": "toggleable",
                   "open": "openable", "slice": "sliceable"}


@dataclass
class Grounded:
    """A phrase resolved to a THOR type and, when memory knows it, an instance id."""

    object_type: str
    object_id: str | None = None
    via: str = "type"  # stm | ltm | dialogue | type | semantic
    movable: bool = True

    @property
    def ref(self) -> str:
        """What skill arguments name: the id when known, else the type."""
        return self.object_id or self.object_type


@dataclass
class DialogueState:
    """What the current high-level instruction has mentioned so far (pronouns, "there", "the same")."""

    mentions: list[Grounded] = field(default_factory=list)
    last_target: Grounded | None = None
    sliced: list[str] = field(default_factory=list)
    held: Grounded | None = None
    opened: list[Grounded] = field(default_factory=list)
    moved: Grounded | None = None  # the last object put somewhere: "put the phone on it" means on that

    def last(self, role: str | None = None) -> Grounded | None:
        for mention in reversed(self.mentions):
            if role is None or _can(mention.object_type, role):
                return mention
        return None

    def mention(self, grounded: Grounded) -> Grounded:
        self.mentions.append(grounded)
        return grounded


def _can(object_type: str, role: str) -> bool:
    need = ROLE_CAPABILITY.get(role)
    return need is None or need in capabilities(object_type)


#: areas the first Explore for an object visits, best ranked first (the long-term memory's guess)
FIRST_LOOK_AREAS = 3

#: added to a type's meaning score when iTHOR puts that type in the instruction's target receptacle
_FITS_BONUS = 0.1

#: phrases that describe rather than name ("something to read", "the knife for spreading butter")
_VAGUE = re.compile(r"^(thing|something|anything|what|stuff|one|device|item)\b|\s(for|to|that|which)\s")


class SymbolicPlanner:
    """Deterministic memory-grounded planner (the default, offline backend).

    Args:
        embedder: sentence embedder for vague phrases (MiniLM); None disables semantic grounding.
        semantic_threshold: minimum cosine for an STM recall to count as the referent.
    """

    name = "symbolic"

    def __init__(self, embedder: Embedder | None = None, semantic_threshold: float = 0.45) -> None:
        self._embedder = embedder
        self.semantic_threshold = semantic_threshold
        self.dialogue = DialogueState()
        self.recalled: list[str] = []  # STM unit ids the last plan() grounded on (for retrieval accuracy)
        self._before = DialogueState()
        self._searched: set[str] = set()
        self._pending_open: list[Grounded] = []  # containers the phrase names ("the disc hidden in a drawer")
        self._failed_ids: set[str] = set()  # ids a skill failed on in this instruction: not used again
        self._target_hint: list[str] = []  # receptacle types of the PUT being grounded

    def reset(self) -> None:
        """Forget the dialogue (a new high-level instruction starts)."""
        self.dialogue = DialogueState()
        self._before = DialogueState()

    def rollback(self) -> None:
        """The last plan failed: forget what it assumed it sliced (referents stay for "it")."""
        self.dialogue.sliced = list(self._before.sliced)

    # ---- entry point ----------------------------------------------------------------------------
    def plan(self, context: PlanningContext) -> Plan:
        """Plan one (sub-)instruction. Raises PlanValidationError with the reason it cannot."""
        intents = parse_instruction(context.instruction)
        self._unavailable = set(context.extra.get("unavailable", ()))
        self._all_types = list(context.known_types)
        self._types = [t for t in context.known_types if t not in self._unavailable]
        if not self._all_types:
            raise PlanValidationError("the planner needs the scene's object types (known_types)")
        self._memory = context.memory
        self._steps: list[SkillCall] = []
        self._searched = set(context.extra.get("searched", ()))
        self._failed_ids = set(context.extra.get("failed_ids", ()))
        self._pending_open = []
        self._before = copy.deepcopy(self.dialogue)
        self.recalled = []
        if context.held_object:
            held_type = context.held_object.split("|", 1)[0]
            self.dialogue.held = Grounded(held_type, context.held_object, "dialogue")
        elif self.dialogue.held is not None and context.extra.get("held_known", True):
            self.dialogue.held = None
        for intent in intents:
            self._expand(intent)
        if not self._steps:
            raise PlanValidationError(f"nothing to do for {context.instruction!r}")
        steps = tuple(validate_call(s) for s in self._steps)
        return Plan(steps=steps, source=self.name, rationale="; ".join(i.clause for i in intents))

    # ---- grounding ------------------------------------------------------------------------------
    def _scene_types(self, names: Sequence[str]) -> list[str]:
        present = [t for t in names if t in self._types]
        return present

    def _lexical(self, text: str, role: str) -> list[str]:
        """Types the words name (attribute words narrow a category: "the red vegetable" → Tomato).

        A named type is never swapped for another one: when the robot searched everywhere for it
        (``unavailable``), planning fails with that reason instead of fetching something else.
        """
        try:
            found = resolve_type(text, self._all_types)
        except UnknownObjectError:
            return []
        found = with_attributes(text, [t for t in found if _can(t, role)] or found)
        if len(found) > 1 and not any(set(type_words(t).split()) <= set(text.split()) for t in found):
            scores = self._meaning(text, found)  # a category word ("the starchy vegetable"): the best fit first
            found = sorted(found, key=lambda t: -scores[t])
        present = [t for t in found if t not in self._unavailable]
        if not present:
            raise PlanValidationError(f"no {text} found: searched every area and where a {found[0]} is usually "
                                      "kept")
        return present

    def _meaning(self, text: str, object_types: list[str]) -> dict[str, float]:
        """How well each type's gloss means ``text`` (cosine of the sentence embeddings)."""
        vectors = self._embed([text] + [gloss(t) for t in object_types])
        return dict(zip(object_types, (vectors[1:] @ vectors[0]).tolist()))

    def _embed(self, texts: list[str]) -> np.ndarray | None:
        if self._embedder is None:
            from karma_memory.core.embedding import default_embedder

            self._embedder = default_embedder()
        return self._embedder.embed(texts)

    def ground(self, phrase: Phrase, role: str, owner: Grounded | None = None) -> Grounded:
        """Resolve an object phrase for a role ("pick", "receptacle", "toggle", "open", "slice")."""
        memory = self._memory
        if phrase.pronoun:
            moved = self.dialogue.moved
            if role == "receptacle" and moved is not None and _can(moved.object_type, role) and \
                    (owner is None or moved.ref != owner.ref):
                return self._refresh(moved)  # "move the plate to the table, put the phone on it"
            found = self.dialogue.last(role)
            if found is None:
                raise PlanValidationError(f"cannot tell what {phrase.text!r} refers to")
            return self._refresh(found)
        if phrase.there:
            if self.dialogue.last_target is None:
                raise PlanValidationError("'there' refers to no earlier place")
            return self.dialogue.last_target
        if phrase.where_was:
            anchor = owner if phrase.where_was in ("it", "them") and owner else \
                self.ground(Phrase(phrase.where_was), "pick")
            return self._previous_place(anchor, phrase.where_was)
        if phrase.next_to and not phrase.same:
            return self._place_of(self._anchor(phrase.next_to), phrase.next_to)
        if phrase.piece:
            return self._piece(phrase)
        if phrase.states and memory is not None and memory.use_stm:
            stated = self._stm_with_states(phrase, role)
            if stated is not None:
                return stated
        types = [] if _VAGUE.search(phrase.text) else self._lexical(phrase.text, role)
        if types:
            if phrase.same or phrase.next_to:
                anchor_place = self._place_of(self.ground(Phrase(phrase.next_to), "pick"), phrase.next_to) \
                    if phrase.next_to else None
                if anchor_place is not None and anchor_place.object_type in types:
                    return anchor_place
                for mention in reversed(self.dialogue.mentions):
                    if mention.object_type in types:
                        return mention
            return self._instance(types, phrase, role)
        return self._vague(phrase, role)

    def _stm_with_states(self, phrase: Phrase, role: str) -> Grounded | None:
        """"the heated cup": a resident unit with that state whose kind matches the words wins over the type name."""
        memory = self._memory
        assert memory is not None
        units = [u for u in memory.stm_units() if set(phrase.states) & set(u.states) and _can(u.object_type, role)]
        named = [] if _VAGUE.search(phrase.text) else self._lexical(phrase.text, role)
        if named:  # "the washed tomato" is a tomato (or its slices), never the washed mug; "the heated cup" a mug
            exact = [u for u in units if PIECE_BASES.get(u.object_type, u.object_type) in named or u.object_type in named]
            names = {w for t in named for w in type_words(t).split()}
            units = exact or [u for u in units if names & words(gloss(u.object_type))]
        if not units:
            return None
        vectors = self._embed([phrase.text] + [u.description() for u in units])
        sims = vectors[1:] @ vectors[0]
        best = int(np.argmax(sims))
        if sims[best] < self.semantic_threshold - 0.25:
            return None
        memory.stm_use(units[best].object_id)
        self.recalled.append(units[best].object_id)
        return self._sliced_view(Grounded(units[best].object_type, units[best].object_id, "stm"))

    def _refresh(self, grounded: Grounded) -> Grounded:
        """A dialogue referent, upgraded to the slices when we cut it since, and to the instance the
        short-term memory last saw the robot handle when the plan only knew its kind."""
        if grounded.object_type in self.dialogue.sliced and grounded.object_type in PIECE_TYPES:
            return Grounded(PIECE_TYPES[grounded.object_type], None, "dialogue")
        memory = self._memory
        if memory is None or not memory.use_stm:
            return grounded
        units = [u for u in memory.stm_units() if u.object_id not in self._failed_ids and (
            u.object_id == grounded.object_id if grounded.object_id else u.object_type == grounded.object_type)]
        if not units:
            return grounded
        unit = max(units, key=lambda u: u.last_seen)  # where the robot last saw it: retrieved from the STM
        if unit.object_id not in self.recalled:
            memory.stm_use(unit.object_id)
            self.recalled.append(unit.object_id)
        return Grounded(unit.object_type, unit.object_id, "stm", grounded.movable)

    def _instance(self, types: list[str], phrase: Phrase, role: str) -> Grounded:
        """Pick an instance of one of ``types``: STM unit, then LTM object, else the type alone."""
        memory = self._memory
        wanted_states = set(phrase.states)
        if memory is not None and memory.use_stm:
            units = [u for u in memory.stm_units() if PIECE_BASES.get(u.object_type, u.object_type) in types
                     or u.object_type in types]
            units.sort(key=lambda u: (not wanted_states <= set(u.states),
                                      not (phrase.location and phrase.location in u.relation.lower()),
                                      -u.last_seen))
            if units:
                memory.stm_use(units[0].object_id)
                self.recalled.append(units[0].object_id)
                return self._sliced_view(Grounded(units[0].object_type, units[0].object_id, "stm"))
        for mention in reversed(self.dialogue.mentions):  # mentioned earlier in this instruction
            if mention.object_type in types and mention.object_id:
                return self._refresh(mention)
        object_type = types[0]
        if phrase.location and "pickupable" in capabilities(object_type):
            self._pending_open = self._places(phrase.location)
        if memory is not None and memory.use_ltm:
            records = []
            for t in types:
                records += memory.ltm_objects_of_type(t)
            if phrase.location:
                loc_types = set(self._lexical(phrase.location, "receptacle"))
                located = [r for r in records if r["parent"] and r["parent"].split("|", 1)[0] in loc_types]
                records = located or records
            usable = [r for r in records if r["id"] not in self._failed_ids]
            if usable:  # where the scene graph last saw one (if it moved since, GoToObject fails and we replan)
                self._pending_open = []
                return Grounded(usable[0]["type"], usable[0]["id"], "ltm", movable=bool(usable[0]["movable"]))
            if records:
                object_type = records[0]["type"]
        return self._refresh(Grounded(object_type, None, "type", movable="pickupable" in capabilities(object_type)))

    def _sliced_view(self, grounded: Grounded) -> Grounded:
        memory = self._memory
        if memory is not None and grounded.object_id:
            unit = next((u for u in memory.stm_units() if u.object_id == grounded.object_id), None)
            if unit is not None and "sliced" in unit.states and grounded.object_type in PIECE_TYPES:
                return Grounded(PIECE_TYPES[grounded.object_type], None, "stm")
        return self._refresh(grounded)

    def _vague(self, phrase: Phrase, role: str) -> Grounded:
        """A phrase with no type name: the scene type whose gloss means it most, made concrete by the STM.

        The STM decides the referent outright when the phrase names what the robot did or saw happen
        ("the washed fruit", "the thing I cleaned earlier", "the thing I moved first"); otherwise it
        resolves the best-meaning type to the instance the robot last used.
        """
        memory = self._memory
        types = with_attributes(phrase.text, [t for t in self._types if _can(t, role)
                                              and t not in PIECE_TYPES.values() and t not in self._target_hint])
        if not types:
            raise PlanValidationError(f"no object in this scene can be {phrase.text!r}")
        type_sims = self._meaning(phrase.text, types)
        if self._target_hint:  # "something to wash myself with in the bathtub": things that go there
            priors = receptacle_priors()
            for t in types:
                type_sims[t] += _FITS_BONUS * any(r in priors.get(t, {}) for r in self._target_hint)
        best_type = max(types, key=type_sims.__getitem__)
        if memory is not None and memory.use_stm:
            units = [u for u in memory.stm_units() if _can(u.object_type, role)]
            chosen = None
            if phrase.recall == "moved":
                moved = sorted((u for u in units if u.relation), key=lambda u: u.last_seen)
                chosen = moved[0] if moved else None
            elif phrase.states:
                stated = [u for u in units if set(phrase.states) & set(u.states)]
                if stated:  # among units in that state, the one whose kind fits the words best
                    chosen = max(stated, key=lambda u: (type_sims.get(PIECE_BASES.get(u.object_type, u.object_type),
                                                                      -1.0), u.last_seen))
            else:  # the kind meant (any that fits when the words name a look: "a red food"), the one last handled
                kinds = set(types) if words(phrase.text) & ATTRIBUTES else {best_type}
                same = [u for u in units if PIECE_BASES.get(u.object_type, u.object_type) in kinds]
                chosen = max(same, key=lambda u: u.last_seen) if same else None
            if chosen is not None:
                memory.stm_use(chosen.object_id)
                self.recalled.append(chosen.object_id)
                return self._sliced_view(Grounded(chosen.object_type, chosen.object_id, "stm"))
        return self._instance([best_type], Phrase(best_type, location=phrase.location), role)

    def _piece(self, phrase: Phrase) -> Grounded:
        match = re.match(r"^(?:piece|slice|bit)s?(?: of (?:the |a |an )?(.+))?$", phrase.text)
        base = match.group(1) if match else None
        if base and base not in ("each", "it", "them", "bread"):
            types = self._lexical(base, "slice")
            if types and types[0] in PIECE_TYPES:
                return Grounded(PIECE_TYPES[types[0]], None, "type")
        if base == "bread":
            return Grounded(PIECE_TYPES.get("Bread", "BreadSliced"), None, "type")
        if self.dialogue.sliced:
            return Grounded(PIECE_TYPES.get(self.dialogue.sliced[-1], self.dialogue.sliced[-1]), None, "dialogue")
        memory = self._memory
        pieces = [u for u in memory.stm_units() if u.object_type in PIECE_BASES] if memory is not None else []
        if pieces:  # the robot remembers cutting something
            return Grounded(max(pieces, key=lambda u: u.last_seen).object_type, None, "stm")
        raise PlanValidationError(f"{phrase.text!r}: nothing was sliced yet")

    def _pieces_of(self, obj: Grounded) -> list[str]:
        """Ids of the pieces memory knows ``obj`` was cut into (its id is their prefix)."""
        memory, piece_type = self._memory, PIECE_TYPES.get(obj.object_type)
        if memory is None or obj.object_id is None or piece_type is None:
            return []
        ids = [u.object_id for u in memory.stm_units()] + [r["id"] for r in memory.ltm_objects_of_type(piece_type)]
        return [i for i in ids if i.startswith(obj.object_id + "|")]

    def _anchor(self, text: str) -> Grounded:
        """The object "next to the …" names; "the pen holder" (no such type) is whatever holds the pen."""
        held = re.match(r"^(.+?)\s+holder$", text)
        if held and not self._lexical(text, "pick"):
            return self._place_of(self.ground(Phrase(held.group(1)), "pick"), held.group(1))
        return self.ground(Phrase(text), "pick")

    def _place_of(self, anchor: Grounded, text: str) -> Grounded:
        """The receptacle an object is on/in now (memory), for "next to the remote"."""
        memory = self._memory
        parent = None
        if memory is not None and anchor.object_id:
            unit = next((u for u in memory.stm_units() if u.object_id == anchor.object_id), None)
            if unit is not None and unit.relation:
                parent = unit.relation.split(" ", 1)[1]
            record = memory.ltm_object(anchor.object_id) if parent is None else None
            if record is not None:
                parent = record["parent"]
        if parent is None and memory is not None and memory.use_ltm:
            for record in memory.ltm_objects_of_type(anchor.object_type):
                if record["parent"]:
                    parent = record["parent"]
                    break
        if parent is None:
            raise PlanValidationError(f"does not remember where the {text} is")
        return Grounded(parent.split("|", 1)[0], parent, "ltm", movable=False)

    def _previous_place(self, anchor: Grounded, text: str) -> Grounded:
        memory = self._memory
        parent = memory.ltm_previous_parent(anchor.object_id) if memory is not None and anchor.object_id else None
        if parent is None and memory is not None and anchor.object_id is None and memory.use_ltm:
            for record in memory.ltm_objects_of_type(anchor.object_type):
                parent = memory.ltm_previous_parent(record["id"])
                if parent:
                    break
        if parent is None:
            raise PlanValidationError(f"does not remember where the {text} was")
        return Grounded(parent.split("|", 1)[0], parent, "ltm", movable=False)

    # ---- skill expansion ------------------------------------------------------------------------
    def _emit(self, skill: str, **args: object) -> None:
        self._steps.append(SkillCall(skill, args))  # type: ignore[arg-type]

    def _go(self, target: Grounded) -> None:
        """Navigate to a grounded object: directly when memory knows where, else explore."""
        memory = self._memory
        if target.object_id is not None:
            self._emit("GoToObject", object=target.object_id)
            return
        if target.object_type in self._searched:  # not in sight anywhere: look inside where it usually is
            for container in self._likely_containers(target.object_type):
                self._go(container)
                self._emit("OpenObject", object=container.ref)
        areas: list[str] = []
        if memory is not None and memory.use_ltm:
            areas = [a.area_id for a in memory.ltm_rank_areas(target.object_type)]
            if target.object_type not in self._searched:  # trust the ranking first; the whole sweep comes after
                areas = areas[:FIRST_LOOK_AREAS]  # the containers where it is usually kept (a failed first look)
        if areas:
            self._emit("Explore", object=target.object_type, areas=tuple(areas))
        else:
            self._emit("Explore", object=target.object_type)
        self._emit("GoToObject", object=target.object_type)

    def _likely_containers(self, object_type: str, kinds: int = 2, limit: int = 8) -> list[Grounded]:
        """Openable receptacles where the type is usually kept (iTHOR statistics), best kind first, every
        instance memory knows of each kind (the robot opens them in turn; the agent stops once it sees it)."""
        priors = receptacle_priors().get(PIECE_BASES.get(object_type, object_type), {})
        ranked = sorted((t for t in priors if t in self._types and "openable" in capabilities(t)),
                        key=lambda t: (-priors[t], t))
        return [c for kind in ranked[:kinds] for c in self._every(kind)][:limit]

    def _furniture(self, text: str) -> list[str]:
        """The receptacle types a location phrase names, when they stay put (not a plate that is carried)."""
        try:
            place = self._lexical(text, "receptacle")
        except PlanValidationError:
            return []
        return [] if not place or "pickupable" in capabilities(place[0]) else place

    def _places(self, text: str, furniture_limit: int = 3) -> list[Grounded]:
        """Where a location phrase says to look ("from the sink", "hidden in a drawer"): every drawer it may
        mean, the nearest few sinks or tables; nothing for a place that is itself carried (a plate)."""
        place = self._furniture(text)
        if not place:
            return []
        found = self._every(place[0])
        return found if "openable" in capabilities(place[0]) else found[:furniture_limit]

    def _every(self, kind: str) -> list[Grounded]:
        """Every instance of a (furniture) kind the long-term memory knows, else the kind itself."""
        memory = self._memory
        records = memory.ltm_objects_of_type(kind) if memory is not None and memory.use_ltm else []
        ids = [r["id"] for r in records if r["id"] not in self._failed_ids]
        return [Grounded(kind, i, "ltm", movable=False) for i in ids] or [self._instance([kind], Phrase(kind), "open")]

    def _place_first(self, target: Grounded, phrase: Phrase) -> None:
        """"Serve it on a dish on the table": a movable target with a place of its own goes there first."""
        if not phrase.location or not target.movable or "pickupable" not in capabilities(target.object_type):
            return
        place = self._furniture(phrase.location)
        if not place:
            return
        try:
            if self._place_of(target, phrase.text).object_type in place:
                return  # already there ("the bowl on the counter" names which bowl)
        except PlanValidationError:
            pass  # memory does not know where it is: take it there
        self._acquire(target)
        self._put_into(self.dialogue.mention(self._instance(place, Phrase(phrase.location), "receptacle")))
        self.dialogue.moved = target

    def _free_hands(self, keep: Grounded | None = None) -> None:
        held = self.dialogue.held
        if held is None or (keep is not None and held.ref == keep.ref):
            return
        self._emit("DropHandObject")
        self.dialogue.held = None

    def _acquire(self, obj: Grounded) -> None:
        held = self.dialogue.held
        if held is not None and (held.ref == obj.ref or (obj.object_id is None and held.object_type == obj.object_type)):
            return
        self._free_hands()
        known = self._container_of(obj)
        containers = [known] if known is not None else self._pending_open
        self._pending_open = []
        for container in containers:  # where it is: open it (each in turn, when not sure which) or look there
            self._go(container)
            if "openable" in capabilities(container.object_type):
                self._emit("OpenObject", object=container.ref)
        self._go(obj)
        self._emit("PickupObject", object=obj.ref)
        self.dialogue.held = obj

    def _container_of(self, obj: Grounded) -> Grounded | None:
        """The openable receptacle memory last saw ``obj`` inside (fridge, microwave, drawer…), if any."""
        memory = self._memory
        if memory is None or obj.object_id is None:
            return None
        parent = None
        unit = next((u for u in memory.stm_units() if u.object_id == obj.object_id), None)
        if unit is not None and unit.relation.startswith("inside "):
            parent = unit.relation.split(" ", 1)[1]
        elif unit is None:
            record = memory.ltm_object(obj.object_id)
            parent = record["parent"] if record else None
        if parent and "openable" in capabilities(parent.split("|", 1)[0]):
            return Grounded(parent.split("|", 1)[0], parent, "stm", movable=False)
        return None

    def _put_into(self, target: Grounded) -> None:
        self._go(target)
        if "openable" in capabilities(target.object_type) and target.object_type not in ("Box", "Laptop"):
            self._emit("OpenObject", object=target.ref)
        self._emit("PutObject", receptacle=target.ref)
        self.dialogue.held = None
        self.dialogue.last_target = target

    def _expand(self, intent: Intent) -> None:
        action = intent.action
        if action == "DARKEN":
            for light in self._scene_types(LIGHTS):
                target = self._instance([light], Phrase(light), "toggle")
                self._go(target)
                self._emit("ToggleOff", object=target.ref)
            return
        assert intent.obj is not None
        role = {"PUT": "pick", "PICKUP": "pick", "WASH": "pick", "SLICE": "slice", "HEAT": "pick",
                "TOAST": "pick", "FILL": "pick", "COFFEE": "pick", "TOGGLE_ON": "toggle", "TOGGLE_OFF": "toggle",
                "OPEN": "open", "CLOSE": "open", "CLEAN": "pick", "BREAK": "pick"}[action]
        if action == "PUT" and intent.obj.piece and "each" in intent.obj.text:
            assert intent.target is not None
            for sliced in list(self.dialogue.sliced):
                piece = Grounded(PIECE_TYPES.get(sliced, sliced), None, "dialogue")
                self._acquire(piece)
                self._put_into(self.dialogue.mention(self.ground(intent.target, "receptacle")))
            return
        if action == "CLEAN":
            role = "any"
        self._target_hint = self._hint(intent.target) if intent.target is not None else []
        obj = self.dialogue.mention(self.ground(intent.obj, role))
        self._target_hint = []
        if action == "PUT":
            assert intent.target is not None
            target = self.ground(intent.target, "receptacle", owner=obj)
            self._place_first(target, intent.target)
            self._acquire(obj)
            self.dialogue.mention(target)
            self._put_into(target)
            self.dialogue.moved = obj
        elif action == "PICKUP":
            self._acquire(obj)
        elif action == "WASH":
            self._acquire(obj)
            sink = self._instance(self._scene_types([SINK, "Sink"]) or [SINK], Phrase("sink"), "receptacle")
            self._put_into(sink)
            faucet = self._instance(["Faucet"], Phrase("faucet"), "toggle")
            self._emit("ToggleOn", object=faucet.ref)
        elif action == "SLICE":
            base = PIECE_BASES.get(obj.object_type, obj.object_type)
            if obj.object_type in PIECE_BASES or self._pieces_of(obj):  # cut already (before a replan): done
                if base not in self.dialogue.sliced:
                    self.dialogue.sliced.append(base)
                return
            if not self.dialogue.held or self.dialogue.held.object_type not in KNIVES:
                knife_types = self._scene_types(KNIVES)
                if not knife_types:
                    raise PlanValidationError("no knife in this scene to slice with")
                if self.dialogue.held is not None and self.dialogue.held.ref == obj.ref:
                    self._go(self._instance(self._scene_types(["CounterTop", "DiningTable"]) or ["CounterTop"],
                                            Phrase("counter"), "receptacle"))
                    self._emit("PutObject", receptacle="CounterTop")
                    self.dialogue.held = None
                self._acquire(self._instance(knife_types, Phrase("knife"), "pick"))
            self._go(obj)
            self._emit("SliceObject", object=obj.ref)
            if base not in self.dialogue.sliced:
                self.dialogue.sliced.append(base)
        elif action in ("HEAT", "TOAST"):
            if action == "TOAST" and "Bread" in self.dialogue.sliced and obj.object_type != "BreadSliced":
                obj = self.dialogue.mention(Grounded("BreadSliced", None, "dialogue"))
            tool = "Toaster" if action == "TOAST" else intent.tool or \
                next(iter(self._scene_types(["Microwave", "StoveBurner"])), "Microwave")
            appliance = self.dialogue.mention(self._instance([tool], Phrase(tool), "receptacle"))
            held = self.dialogue.held
            already_inside = action == "HEAT" and self.dialogue.last_target is not None and \
                self.dialogue.last_target.object_type == tool and held is None
            if not already_inside and not (tool == "StoveBurner" and obj.object_type not in ("Pot", "Pan", "Kettle")
                                           and self._container_on_stove(obj)):
                self._acquire(obj)
                self._put_into(appliance)
            if tool == "Microwave":
                self._emit("CloseObject", object=appliance.ref)
            self._emit("ToggleOn", object=appliance.ref)
        elif action == "FILL":
            self._acquire(obj)
            sink = self._instance(self._scene_types([SINK, "Sink"]) or [SINK], Phrase("sink"), "receptacle")
            self._put_into(sink)
            faucet = self._instance(["Faucet"], Phrase("faucet"), "toggle")
            self._emit("ToggleOn", object=faucet.ref)
        elif action == "COFFEE":
            machine = self.dialogue.mention(self._instance(["CoffeeMachine"], Phrase("coffee machine"), "receptacle"))
            self._acquire(obj)
            self._put_into(machine)
            self._emit("ToggleOn", object=machine.ref)
        elif action in ("TOGGLE_ON", "TOGGLE_OFF"):
            self._go(obj)
            self._emit("ToggleOn" if action == "TOGGLE_ON" else "ToggleOff", object=obj.ref)
        elif action in ("OPEN", "CLOSE"):
            self._go(obj)
            self._emit("OpenObject" if action == "OPEN" else "CloseObject", object=obj.ref)
        elif action == "CLEAN":
            self._go(obj)
            self._emit("CleanObject", object=obj.ref)
        elif action == "BREAK":
            self._go(obj)
            self._emit("BreakObject", object=obj.ref)

    def _hint(self, target: Phrase) -> list[str]:
        """Receptacle types a plainly named target means (no pronouns, no memory), to ground the object by."""
        if target.pronoun or target.there or target.where_was or target.next_to or _VAGUE.search(target.text):
            return []
        try:
            return self._lexical(target.text, "receptacle")
        except PlanValidationError:
            return []

    def _container_on_stove(self, obj: Grounded) -> bool:
        """True when the object was just put in a pot/pan (so the pot goes on the stove instead)."""
        target = self.dialogue.last_target
        if target is not None and target.object_type in ("Pot", "Pan"):
            self._acquire(target)
            stove = self._instance(["StoveBurner"], Phrase("stove"), "receptacle")
            self._put_into(stove)
            return True
        return False
