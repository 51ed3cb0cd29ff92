"""Short-term-memory replacement policies (FIFO-merge, LRU, LFU, W-TinyLFU) behind one protocol."""

from __future__ import annotations

from karma_memory.core.policies.base import ReplacementPolicy
from karma_memory.core.policies.fifo import FIFOPolicy
from karma_memory.core.policies.lfu import LFUPolicy
from karma_memory.core.policies.lru import LRUPolicy
from karma_memory.core.policies.registry import (
    POLICIES,
    PolicyConfig,
    make_policy,
    policy_from_state,
    policy_names,
)
from karma_memory.core.policies.sketch import FrequencySketch
from karma_memory.core.policies.wtinylfu import WTinyLFUPolicy

__all__ = [
    "ReplacementPolicy",
    "FIFOPolicy",
    "LRUPolicy",
    "LFUPolicy",
    "WTinyLFUPolicy",
    "FrequencySketch",
    "POLICIES",
    "PolicyConfig",
    "make_policy",
    "policy_from_state",
    "policy_names",
]
