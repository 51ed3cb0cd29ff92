"""Object-state estimation: THOR metadata flags, or a VLM asked with the paper's chain-of-thought prompt."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Callable, Mapping, Protocol, Sequence, runtime_checkable

import cv2
import numpy as np

from karma_memory.core.errors import UnknownObjectError
from karma_memory.core.lexicon import resolve_type
from karma_memory.core.thor_states import thor_states
from karma_memory.core.types import OBJECT_STATES, CameraFrame

__all__ = [
    "ObjectInView",
    "StateEstimate",
    "StateEstimator",
    "MetadataStateEstimator",
    "VLMStateEstimator",
    "VlmClient",
    "build_state_prompt",
    "parse_state_reply",
]

#: A VLM behind any API: ``client(prompt, png_bytes) -> reply text``. Injected, so tests need no network.
VlmClient = Callable[[str, bytes], str]

_CONTRADICTIONS = (("on", "off"), ("opened", "closed"), ("dirty", "cleaned"))


@dataclass(frozen=True)
class ObjectInView:
    """An object detected in the frame whose state is wanted."""

    track_id: str
    object_type: str
    object_id: str | None
    position: tuple[float, float, float]


@dataclass(frozen=True)
class StateEstimate:
    """States per track id; ``reason`` says why nothing was estimated, ``notes`` list ignored reply lines."""

    states: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    reason: str | None = None
    notes: tuple[str, ...] = ()


@runtime_checkable
class StateEstimator(Protocol):
    """Anything that can tell object states from a frame (metadata reader, VLM, classifier)."""

    def estimate(self, frame: CameraFrame, objects: Sequence[ObjectInView]) -> StateEstimate:
        """States of ``objects`` as seen in ``frame``; must not raise on bad model output."""
        ...


class MetadataStateEstimator:
    """States from the simulator's object metadata (THOR flags), matched by objectId or by type and place.

    This is the paper's simulation setting for everything but the VLM (karma_spec.md §1.8). Objects
    without an id match the nearest metadata object of the same type within ``max_distance`` metres.
    """

    def __init__(self, max_distance: float = 0.5) -> None:
        self.max_distance = max_distance

    def estimate(self, frame: CameraFrame, objects: Sequence[ObjectInView]) -> StateEstimate:
        """Map each object's THOR flags to OBJECT_STATES; no metadata -> empty estimate with a reason."""
        meta = frame.metadata_objects
        if not meta:
            return StateEstimate(reason="frame has no metadata_objects")
        by_id = {m.get("objectId"): m for m in meta if isinstance(m, dict)}
        out: dict[str, tuple[str, ...]] = {}
        notes = []
        for obj in objects:
            entry = by_id.get(obj.object_id) if obj.object_id else None
            if entry is None:
                entry = self._nearest(meta, obj)
            if entry is None:
                notes.append(f"no metadata for {obj.track_id}")
                continue
            out[obj.track_id] = thor_states(entry)
        return StateEstimate(states=out, notes=tuple(notes))

    def _nearest(self, meta: Sequence[Mapping], obj: ObjectInView) -> Mapping | None:
        best, best_d = None, self.max_distance
        for m in meta:
            if not isinstance(m, dict) or m.get("objectType") != obj.object_type:
                continue
            centre = (m.get("axisAlignedBoundingBox") or {}).get("center") or m.get("position")
            if not centre:
                continue
            d = float(np.linalg.norm(np.array([centre["x"], centre["y"], centre["z"]]) - np.array(obj.position)))
            if d <= best_d:
                best, best_d = m, d
        return best


def build_state_prompt(task: str, object_types: Sequence[str]) -> str:
    """The paper's step-by-step state prompt (karma_spec.md §1.3, App. F): describe, extract, map, output.

    >>> p = build_state_prompt("wash the apple", ["Apple", "SinkBasin"])
    >>> "[Task]: wash the apple" in p and "Apple, SinkBasin" in p and p.rstrip().endswith("OUTPUT:")
    True
    """
    names = ", ".join(sorted(set(object_types))) or "(none detected)"
    states = ", ".join(OBJECT_STATES)
    return (
        "You are the vision module of a household robot. Analyse the image step by step.\n"
        f"[Task]: {task.strip() or '(no task given)'}\n"
        f"[Objects in view]: {names}\n"
        "Step 1: Describe the image.\n"
        "Step 2: Extract the content relevant to the objects named in [Task] and in [Objects in view].\n"
        f"Step 3: Map each of those objects to one state from this list: {states}.\n"
        "Step 4: Output the result. Write a line containing only 'OUTPUT:' and then one line per object in "
        "the form 'object: state' (one state per line; repeat the object for a second state), with "
        "nothing else after it.\n"
        "OUTPUT:"
    )


_MARKER = re.compile(r"^[\s#*>`_]*output[\s*_`]*:[\s*_`]*$", re.IGNORECASE)
_LINE = re.compile(r"^[\s\-*•]*([A-Za-z][A-Za-z0-9 _'\-]*?)\s*:\s*([A-Za-z][A-Za-z ]*?)\s*[.;]?\s*$")


def parse_state_reply(reply: object, object_types: Sequence[str]) -> tuple[dict[str, tuple[str, ...]], str | None,
                                                                       tuple[str, ...]]:
    """Parse ``object: state`` lines strictly into {THOR type: states}.

    The block after the last ``OUTPUT:`` line is read (the whole reply when it has no marker, but then every
    non-empty line must be an ``object: state`` line). Any malformed line, a state outside OBJECT_STATES,
    or contradictory states (on and off) rejects the whole reply: garbage in, no states out, with the
    reason. Object names are resolved to THOR types among ``object_types`` (synonyms and plurals allowed);
    lines naming an object not in view are skipped and reported in the notes.

    Returns:
        (states by type, reason or None, notes)

    >>> parse_state_reply("I see a sliced apple.\\nOUTPUT:\\napple: sliced\\nfridge: closed", ["Apple", "Fridge"])
    ({'Apple': ('sliced',), 'Fridge': ('closed',)}, None, ())
    >>> parse_state_reply("OUTPUT:\\napple is sliced", ["Apple"])[1]
    "line 1 of the output block is not 'object: state': 'apple is sliced'"
    """
    if not isinstance(reply, str) or not reply.strip():
        return {}, f"empty or non-text reply: {reply!r}"[:200], ()
    lines = reply.splitlines()
    marks = [i for i, line in enumerate(lines) if _MARKER.match(line)]
    block = lines[marks[-1] + 1:] if marks else lines
    block = [line for line in block if line.strip() and not line.strip().startswith("```")]
    if not block:
        return {}, "no 'object: state' lines after OUTPUT:" if marks else "reply has no OUTPUT: block", ()
    found: dict[str, list[str]] = {}
    notes: list[str] = []
    for n, line in enumerate(block, 1):
        m = _LINE.match(line)
        if m is None:
            return {}, f"line {n} of the output block is not 'object: state': {line.strip()!r}"[:200], ()
        name, state = m.group(1).strip(), " ".join(m.group(2).lower().split())
        if state not in OBJECT_STATES:
            return {}, f"line {n}: {state!r} is not one of {OBJECT_STATES}", ()
        try:
            types = resolve_type(name, scene_types=object_types)
        except UnknownObjectError:
            notes.append(f"line {n}: {name!r} is not an object in view")
            continue
        found.setdefault(types[0], [])
        if state not in found[types[0]]:
            found[types[0]].append(state)
    for obj_type, states in found.items():
        for a, b in _CONTRADICTIONS:
            if a in states and b in states:
                return {}, f"contradictory states for {obj_type}: {a!r} and {b!r}", tuple(notes)
        if "none" in states and len(states) > 1:
            states.remove("none")
    return {t: tuple(s) for t, s in found.items()}, None, tuple(notes)


class VLMStateEstimator:
    """States from a vision-language model given the frame's image and the task (the paper's GPT-4o step).

    Args:
        client: ``client(prompt, png_bytes) -> reply``; wraps whatever API serves the model.
        task: the instruction the robot is executing (the prompt's [Task]); can be changed between frames.

    A reply that cannot be parsed, or a client that raises, gives no states and a reason; it never raises
    into the perception pipeline. A state applies to every object of the named type in view. A VLM call
    costs seconds: call ``SceneGraphBuilder.process(frame, estimate_states=False)`` on the frames that
    need no state update (the paper asks the VLM once, after each PutObject).
    """

    def __init__(self, client: VlmClient, task: str = "") -> None:
        if not callable(client):
            raise TypeError(f"client must be callable (prompt, png_bytes) -> str, got {client!r}")
        self.client = client
        self.task = task
        self.last_prompt: str | None = None
        self.last_reply: str | None = None

    def estimate(self, frame: CameraFrame, objects: Sequence[ObjectInView]) -> StateEstimate:
        """Ask the model about the objects in view and parse its reply strictly."""
        if not objects:
            return StateEstimate(reason="no objects in view")
        types = sorted({o.object_type for o in objects})
        prompt = build_state_prompt(self.task, types)
        ok, png = cv2.imencode(".png", np.ascontiguousarray(frame.rgb[:, :, ::-1]))
        if not ok:
            return StateEstimate(reason="could not encode the image as PNG")
        self.last_prompt = prompt
        try:
            reply = self.client(prompt, png.tobytes())
        except Exception as err:  # a model/network failure must not kill perception: report it
            return StateEstimate(reason=f"VLM client failed: {type(err).__name__}: {err}"[:300])
        self.last_reply = reply if isinstance(reply, str) else None
        by_type, reason, notes = parse_state_reply(reply, types)
        if reason is not None:
            return StateEstimate(reason=reason, notes=notes)
        states = {o.track_id: by_type[o.object_type] for o in objects if o.object_type in by_type}
        return StateEstimate(states=states, notes=notes)
