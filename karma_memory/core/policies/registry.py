"""Policy registry: build a ReplacementPolicy from a name or a validated PolicyConfig, or from saved state."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from karma_memory.core.errors import ConfigError, MemoryFileError
from karma_memory.core.policies.base import ReplacementPolicy, check_capacity, check_int
from karma_memory.core.policies.fifo import FIFOPolicy
from karma_memory.core.policies.lfu import LFUPolicy
from karma_memory.core.policies.lru import LRUPolicy
from karma_memory.core.policies.wtinylfu import WTinyLFUPolicy, check_ratio, resolve_split

__all__ = ["POLICIES", "PolicyConfig", "make_policy", "policy_from_state", "policy_names"]

#: Registry name -> policy class.
POLICIES: Mapping[str, type[Any]] = {
    FIFOPolicy.name: FIFOPolicy,
    LRUPolicy.name: LRUPolicy,
    LFUPolicy.name: LFUPolicy,
    WTinyLFUPolicy.name: WTinyLFUPolicy,
}

_TINYLFU_ONLY = ("window", "main", "sample_window")


def policy_names() -> tuple[str, ...]:
    """Registered policy names, e.g. for a ROS parameter description.

    >>> policy_names()
    ('fifo', 'lru', 'lfu', 'wtinylfu')
    """
    return tuple(POLICIES)


@dataclass(frozen=True)
class PolicyConfig:
    """Validated settings of the short-term memory's replacement policy.

    Attributes:
        name: Policy name, one of :func:`policy_names`.
        capacity: Units (memory units / object ids) the STM holds; >= 1. The paper uses 10
            (Fig. 4) and 5-25 (Figs 5-6).
        window: W-TinyLFU window segment in units; None = 1 % of capacity (at least 1), or
            ``capacity - main`` if ``main`` is given. Only for "wtinylfu".
        main: W-TinyLFU main (SLRU) segment in units; None = ``capacity - window``. The
            paper's ``[a, b]`` is ``window=a, main=b``. Only for "wtinylfu".
        protected_ratio: Fraction in [0, 1] of main kept for the protected segment (the
            paper does not give it; Caffeine uses 0.8). Used by "wtinylfu" only.
        sample_window: W, recorded uses between halvings of the frequency counters; None =
            10 × capacity. Only for "wtinylfu".

    >>> PolicyConfig("wtinylfu", 10, window=9).build().split
    (9, 1)
    """

    name: str = "wtinylfu"
    capacity: int = 10
    window: int | None = None
    main: int | None = None
    protected_ratio: float = 0.8
    sample_window: int | None = None

    def __post_init__(self) -> None:
        if self.name not in POLICIES:
            raise ConfigError(f"unknown replacement policy {self.name!r}; known: {', '.join(POLICIES)}")
        check_capacity(self.capacity)
        check_ratio(self.protected_ratio)
        if self.name == WTinyLFUPolicy.name:
            resolve_split(self.capacity, self.window, self.main)
            if self.sample_window is not None:
                check_int(self.sample_window, "sample_window", 1)
        else:
            for field in _TINYLFU_ONLY:
                value = getattr(self, field)
                if value is not None:
                    raise ConfigError(f"{field}={value!r} only applies to 'wtinylfu', not {self.name!r}")

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any]) -> PolicyConfig:
        """Build from a mapping (e.g. YAML or ROS parameters), rejecting unknown keys.

        Raises:
            ConfigError: naming unknown keys or bad values.
        """
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ConfigError(f"unknown policy setting(s) {unknown}; known: {sorted(known)}")
        return cls(**dict(values))

    def build(self) -> ReplacementPolicy:
        """Instantiate the configured (empty) policy."""
        if self.name == WTinyLFUPolicy.name:
            return WTinyLFUPolicy(
                self.capacity,
                window=self.window,
                main=self.main,
                protected_ratio=self.protected_ratio,
                sample_window=self.sample_window,
            )
        policy: ReplacementPolicy = POLICIES[self.name](self.capacity)
        return policy


def make_policy(name: str | PolicyConfig, capacity: int | None = None, **params: Any) -> ReplacementPolicy:
    """Build an empty policy by registry name (or from a ready PolicyConfig).

    Args:
        name: "fifo", "lru", "lfu" or "wtinylfu"; or a :class:`PolicyConfig`, in which case
            ``capacity`` and ``params`` must be omitted.
        capacity: Units the policy holds.
        **params: W-TinyLFU settings (window, main, protected_ratio, sample_window).

    Raises:
        ConfigError: naming the unknown policy, unknown parameter or bad value.

    >>> make_policy("lru", 3).capacity
    3
    >>> make_policy(PolicyConfig("wtinylfu", 10, window=9)).split
    (9, 1)
    """
    if isinstance(name, PolicyConfig):
        if capacity is not None or params:
            raise ConfigError("make_policy(PolicyConfig) takes no capacity or parameters")
        return name.build()
    return PolicyConfig.from_mapping({"name": name, "capacity": capacity, **params}).build()


def policy_from_state(state: Mapping[str, Any]) -> ReplacementPolicy:
    """Rebuild whichever policy wrote ``state`` (dispatch on its ``"policy"`` field).

    Raises:
        MemoryFileError: if the state names no known policy or is malformed.
    """
    if not isinstance(state, Mapping):
        raise MemoryFileError(f"policy state must be a mapping, got {type(state).__name__}")
    cls = POLICIES.get(state.get("policy"))  # type: ignore[arg-type]
    if cls is None:
        raise MemoryFileError(f"policy state names unknown policy {state.get('policy')!r}")
    policy: ReplacementPolicy = cls.from_state(state)
    return policy
