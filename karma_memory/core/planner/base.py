"""What every planner backend shares: the plan record, the planning context, the backend protocol."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol, Sequence, runtime_checkable

from karma_memory.core.skills import SkillCall

__all__ = ["Plan", "ChatMessage", "PlanningContext", "PlannerBackend", "MemoryView"]


@dataclass(frozen=True)
class ChatMessage:
    """One chat message of a memory-augmented prompt (role: system | user | assistant)."""

    role: str
    content: str


@dataclass(frozen=True)
class Plan:
    """An ordered, validated list of skill calls — data, never code.

    Attributes:
        steps: the skill calls, each already checked by karma_memory.core.skills.validate_call.
        source: which backend produced it ("symbolic", "openai:<model>", ...).
        rationale: free text the backend gave (never executed, only logged).
        repaired: human-readable notes of what validation repaired (dropped/renamed steps).
    """

    steps: tuple[SkillCall, ...]
    source: str = ""
    rationale: str = ""
    repaired: tuple[str, ...] = ()


class MemoryView(Protocol):
    """Structured read access to both memories, for backends that plan without text."""

    def stm_find(self, object_type: str | None = None, state: str | None = None) -> list[Any]: ...

    def stm_recall(self, query: str, top_k: int = 1) -> list[Any]: ...

    def ltm_objects_of_type(self, object_type: str) -> list[str]: ...

    def ltm_rank_areas(self, object_type: str, k: int | None = None) -> list[Any]: ...


@dataclass(frozen=True)
class PlanningContext:
    """Everything a backend may use to plan one (sub-)instruction.

    Attributes:
        instruction: the natural-language instruction.
        messages: the memory-augmented chat prompt (role, skill API, examples, memory emphasis,
            STM facts, LTM graph, instruction), built by the prompt builder.
        known_types: THOR object types that exist in the scene (for validation).
        area_ids: area node ids Explore may name.
        completed: earlier instructions of the same session, in order.
        memory: structured memory access (None for text-only backends / the no-memory baseline).
        held_object: the object id in the robot's hand, if any.
    """

    instruction: str
    messages: tuple[ChatMessage, ...] = ()
    known_types: Sequence[str] = ()
    area_ids: Sequence[str] = ()
    completed: Sequence[str] = ()
    memory: MemoryView | None = None
    held_object: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)


@runtime_checkable
class PlannerBackend(Protocol):
    """Turns a planning context into a validated Plan; raises PlanValidationError with a reason."""

    name: str

    def plan(self, context: PlanningContext) -> Plan:
        ...
