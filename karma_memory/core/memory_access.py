"""One interface over both memories for the agent and planner, local (in-process) or remote (ROS).

The agent and the symbolic planner only talk to :class:`AgentMemory`; :class:`LocalMemory`
wraps in-process LTM/STM objects (either may be absent: the ablations), the planner node
implements the same protocol over ROS services.
"""

from __future__ import annotations

from typing import Any, Iterable, Protocol

from karma_memory.core import scene_graph as sg
from karma_memory.core.errors import UnknownObjectError
from karma_memory.core.long_term import AreaScore, LongTermMemory
from karma_memory.core.short_term import MemoryUnit, ShortTermMemory
from karma_memory.core.types import ObjectObservation

__all__ = ["AgentMemory", "LocalMemory", "ObjectRecord"]

ObjectRecord = dict[str, Any]  # {"id", "type", "position", "movable", "states", "parent", "area"}


class AgentMemory(Protocol):
    """What the agent needs from memory. ``use_ltm``/``use_stm`` say which memories exist."""

    use_ltm: bool
    use_stm: bool

    def observe(self, observations: Iterable[ObjectObservation]) -> None: ...

    def stm_units(self) -> list[MemoryUnit]: ...

    def stm_recall(self, query: str, top_k: int = 3) -> list[MemoryUnit]: ...

    def stm_use(self, object_id: str) -> None: ...

    def stm_forget(self, object_id: str) -> None: ...

    def ltm_objects_of_type(self, object_type: str) -> list[ObjectRecord]: ...

    def ltm_object(self, object_id: str) -> ObjectRecord | None: ...

    def ltm_previous_parent(self, object_id: str) -> str | None: ...

    def ltm_rank_areas(self, object_type: str, k: int | None = None) -> list[AreaScore]: ...

    def ltm_forget(self, object_id: str) -> None: ...

    def prompt_texts(self, instruction: str, object_type: str | None = None
                     ) -> tuple[str | None, str | None, list[AreaScore]]:
        """(STM facts, LTM graph text, area ranking) for a chat prompt; None for an absent memory."""
        ...


class LocalMemory:
    """AgentMemory over in-process memories; pass None for a memory to ablate it."""

    def __init__(self, ltm: LongTermMemory | None, stm: ShortTermMemory | None) -> None:
        self.ltm, self.stm = ltm, stm
        self.use_ltm, self.use_stm = ltm is not None, stm is not None

    def observe(self, observations: Iterable[ObjectObservation]) -> None:
        for obs in observations:
            if self.ltm is not None:
                self.ltm.observe(obs)
            if self.stm is not None:
                self.stm.observe(obs)

    # ---- STM -------------------------------------------------------------------------------------
    def stm_units(self) -> list[MemoryUnit]:
        return self.stm.units() if self.stm is not None else []

    def stm_recall(self, query: str, top_k: int = 3) -> list[MemoryUnit]:
        return self.stm.retrieve(query, top_k=top_k) if self.stm is not None else []

    def stm_use(self, object_id: str) -> None:
        if self.stm is not None and object_id in self.stm:
            self.stm.get(object_id)

    def stm_forget(self, object_id: str) -> None:
        if self.stm is not None:
            self.stm.forget(object_id)

    # ---- LTM -------------------------------------------------------------------------------------
    def _record(self, object_id: str) -> ObjectRecord:
        assert self.ltm is not None
        data = self.ltm.get_object(object_id)
        graph = self.ltm.graph
        parent = next((t for t in graph.successors(object_id)
                       if graph.edges[object_id, t].get("relation") in ("on", "inside")), None)
        return {"id": object_id, "type": data["object_type"], "position": data["position"],
                "movable": data["movable"], "states": list(data["states"]), "parent": parent,
                "area": data.get("area"), "last_seen": data["last_seen"]}

    def ltm_objects_of_type(self, object_type: str) -> list[ObjectRecord]:
        if self.ltm is None:
            return []
        return [self._record(o) for o in self.ltm.objects_of_type(object_type)]

    def ltm_object(self, object_id: str) -> ObjectRecord | None:
        if self.ltm is None:
            return None
        try:
            return self._record(object_id)
        except UnknownObjectError:
            return None

    def ltm_previous_parent(self, object_id: str) -> str | None:
        if self.ltm is None or object_id not in self.ltm.graph:
            return None
        return sg.previous_parent(self.ltm.graph, object_id)

    def ltm_rank_areas(self, object_type: str, k: int | None = None) -> list[AreaScore]:
        return self.ltm.rank_areas(object_type, k=k) if self.ltm is not None else []

    def prompt_texts(self, instruction: str, object_type: str | None = None
                     ) -> tuple[str | None, str | None, list[AreaScore]]:
        stm_text = self.stm.to_prompt(self.stm.retrieve(instruction)) if self.stm is not None else None
        ltm_text = self.ltm.to_prompt() if self.ltm is not None else None
        ranking = self.ltm.rank_areas(object_type) if self.ltm is not None and object_type else []
        return stm_text, ltm_text, ranking

    def ltm_forget(self, object_id: str) -> None:
        if self.ltm is not None and object_id in self.ltm.graph:
            from karma_memory.core.types import ObservationKind

            data = self.ltm.get_object(object_id)
            self.ltm.observe(ObjectObservation(object_id, data["object_type"], data["position"],
                                               ObservationKind.REMOVED, stamp=data["last_seen"], source="agent"))
