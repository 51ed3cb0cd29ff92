"""Fleet memory: several robots share one long-term memory on a Chroma server (backends, sync, outbox)."""

from __future__ import annotations

from karma_memory.core.fleet.backend import BACKENDS, FleetMemory, LocalBackend, LtmBackend, make_backend
from karma_memory.core.fleet.chroma_sync import (
    ChromaBackend, ChromaConfig, FleetLink, FleetStatus, TypeHashEmbedder,
)
from karma_memory.core.fleet.outbox import Outbox
from karma_memory.core.fleet.records import RECORD_SCHEMA_VERSION, InvalidRecordError, ObjectRecord, merge_records
from karma_memory.core.fleet.server import ChromaServer, free_port

__all__ = [
    "BACKENDS",
    "LtmBackend",
    "LocalBackend",
    "ChromaBackend",
    "ChromaConfig",
    "FleetLink",
    "FleetStatus",
    "TypeHashEmbedder",
    "FleetMemory",
    "make_backend",
    "Outbox",
    "ObjectRecord",
    "InvalidRecordError",
    "RECORD_SCHEMA_VERSION",
    "merge_records",
    "ChromaServer",
    "free_port",
]
