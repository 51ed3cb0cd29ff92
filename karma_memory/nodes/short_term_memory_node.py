"""Short-term memory node: observations in; latched state and markers out; query/save/load/reset services."""

from __future__ import annotations

import dataclasses
from typing import Any

from karma_interfaces.msg import ShortTermMemoryState
from karma_interfaces.srv import QueryShortTermMemory
from visualization_msgs.msg import Marker

from karma_memory.core.errors import ConfigError, KarmaMemoryError, UnknownObjectError
from karma_memory.core.short_term import STM_FILE, MemoryUnit, ShortTermMemory, StmConfig
from karma_memory.core.types import ObjectObservation, ObservationKind
from karma_memory.nodes import memory_conversions as mc
from karma_memory.nodes.common import Param, run_node
from karma_memory.nodes.markers import MarkerStyle, stm_markers
from karma_memory.nodes.memory_base import MEMORY_PARAMETERS, MemoryNode, check_memory_parameters
from karma_memory.nodes.qos import LATCHED

__all__ = ["PARAMETERS", "ShortTermMemoryNode", "main"]

PARAMETERS: dict[str, Param] = {
    "policy": Param("wtinylfu", "replacement policy: fifo, lru, lfu or wtinylfu"),
    "capacity": Param(10, "number of memory units (paper Fig. 4: 10)"),
    "window": Param(0, "W-TinyLFU window in units; 0 = the policy default (main = capacity - window)"),
    "top_k": Param(1, "units a text query returns when the request's top_k is 0"),
    "admit_seen": Param(False, "also admit objects merely seen (default: only those moved, changed or used)"),
    "min_similarity": Param(0.0, "text recalls below this cosine similarity are not returned"),
    **MEMORY_PARAMETERS,
    **{f"markers.{f.name}": Param(f.default, f"MarkerStyle.{f.name}") for f in dataclasses.fields(MarkerStyle)
       if f.name in ("frame_id", "text_scale", "stm_radius")},
}


def _build(values: dict[str, Any]) -> tuple[StmConfig, MarkerStyle]:
    check_memory_parameters(values)
    if values["window"] < 0:
        raise ConfigError(f"window must be >= 0 (0 = policy default), got {values['window']}")
    config = StmConfig(policy=values["policy"], capacity=values["capacity"], window=values["window"] or None,
                       top_k=values["top_k"], admit_seen=values["admit_seen"], min_similarity=values["min_similarity"])
    style = MarkerStyle.from_mapping({k.split(".", 1)[1]: v for k, v in values.items() if k.startswith("markers.")})
    return config, style


def _fingerprint(memory: ShortTermMemory) -> list[tuple]:
    return [(u.object_id, u.last_seen, u.states, u.relation, u.hits) for u in memory.units()]


class ShortTermMemoryNode(MemoryNode):
    """Owns a ShortTermMemory (units under a replacement policy) and serves it over topics and services."""

    file_name = STM_FILE

    def __init__(self, **kwargs: Any) -> None:
        super().__init__("short_term_memory", PARAMETERS, _build, **kwargs)
        config, self.style = self.params.config
        self.memory = ShortTermMemory(config, directory=self.directory)
        self.changes = 0  # counts changes (units, hits, policy): decides whether to save
        self.unit_messages, self.marker_cache = mc.UnitMessages(), {}  # reuse what did not change
        self.state_pub = self.create_publisher(ShortTermMemoryState, "short_term_memory/state", LATCHED)
        self.create_service(QueryShortTermMemory, "short_term_memory/query", self._on_query)
        self.start()
        self.get_logger().info(f"short-term memory ready: {config.policy}, capacity {config.capacity}, "
                               f"{len(self.memory)} units")

    # ---- MemoryNode hooks ---------------------------------------------------------------------------
    def change_token(self) -> int:
        return self.changes

    def changed(self) -> None:
        self.changes += 1
        super().changed()

    def ack_token(self) -> str:
        return str(len(self.memory))

    def apply(self, observations: list[ObjectObservation]) -> bool:
        before = _fingerprint(self.memory)
        for obs in observations:
            if not (obs.kind is ObservationKind.REMOVED and obs.object_id not in self.memory):
                self.memory.observe(obs)
        return _fingerprint(self.memory) != before

    def publish_state(self) -> None:
        stamp = self.get_clock().now().nanoseconds * 1e-9
        self.state_pub.publish(mc.stm_state_to_msg(self.memory, stamp, self.unit_messages))

    def render_markers(self) -> list[Marker]:
        return stm_markers(self.memory.units(), self.style, 0.0, self.marker_cache)  # stamp 0: latest transform

    def reset_memory(self) -> str:
        self.memory.clear()
        self.changes += 1
        return "short-term memory and hit accounting cleared"

    def replaced(self) -> None:
        self.marker_cache.clear()
        super().replaced()

    def on_params(self, config: tuple[StmConfig, MarkerStyle], changed: dict[str, Any]) -> None:
        stm, self.style = config
        self.marker_cache.clear()
        if stm.policy_config() != self.memory.config.policy_config():  # new policy or size: re-admit, oldest first
            old, self.memory = self.memory, ShortTermMemory(stm, directory=self.directory)
            for unit in reversed(old.units()):
                self.memory.put(unit)
            self.memory.stats = old.stats
        else:
            self.memory.config = stm
        self.changed()

    # ---- queries --------------------------------------------------------------------------------------
    def _on_query(self, request: QueryShortTermMemory.Request,
                  response: QueryShortTermMemory.Response) -> QueryShortTermMemory.Response:
        try:
            units, response.hit = self._lookup(request, int(request.top_k) or self.memory.config.top_k,
                                               request.needed_object_id or None)
        except KarmaMemoryError as err:
            response.success, response.message = False, str(err)
            return response
        response.units = [self.unit_messages.message(u) for u in units]
        response.success, response.message = True, f"{len(units)} units"
        self.changed()
        return response

    def _lookup(self, request: QueryShortTermMemory.Request, k: int,
                needed: str | None) -> tuple[list[MemoryUnit], bool]:
        """The units a request asks for, and whether the needed object is resident (the paper's hit).

        An id lookup, text recall or type search counts as a use of the returned units; a request
        naming nothing lists every unit without using them. A needed_object_id is accounted once.
        """
        memory = self.memory
        hit = bool(needed) and needed in memory
        if request.object_id:
            if request.object_id not in memory:
                raise UnknownObjectError(f"object {request.object_id!r} is not in the short-term memory")
            units = [memory.get(request.object_id)]
        elif request.query.strip():
            wanted = request.object_type.lower()
            units = memory.retrieve(request.query, top_k=len(memory) if wanted else k, needed_object_id=needed)
            units = [u for u in units if not wanted or u.object_type.lower() == wanted][:k]
            needed = None  # retrieve accounted it
        elif request.object_type:
            units = memory.find(request.object_type)[:k]
        else:
            units = [] if needed else memory.units()
        if needed:
            memory.record_query(needed)
        return units, hit


def main(args: list[str] | None = None) -> int:
    """Console script ``short_term_memory``."""
    return run_node(ShortTermMemoryNode, args)


if __name__ == "__main__":
    raise SystemExit(main())
