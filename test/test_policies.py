"""Replacement policies: one contract over all policies, reference-model checks and per-policy behaviour."""

from __future__ import annotations

import dataclasses
import json
import random
import subprocess
import sys
from collections.abc import Callable, Hashable
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from karma_memory.core.errors import ConfigError, KarmaMemoryError, MemoryFileError
from karma_memory.core.policies import (
    FIFOPolicy,
    FrequencySketch,
    LFUPolicy,
    LRUPolicy,
    PolicyConfig,
    ReplacementPolicy,
    WTinyLFUPolicy,
    make_policy,
    policy_from_state,
    policy_names,
)
from karma_memory.core.policies.sketch import stable_key_hash

ROOT = Path(__file__).resolve().parent.parent

# Every policy shape the contract must hold for, built from a capacity.
FACTORIES: dict[str, Callable[[int], ReplacementPolicy]] = {
    "fifo": FIFOPolicy,
    "lru": LRUPolicy,
    "lfu": LFUPolicy,
    "wtinylfu": WTinyLFUPolicy,
    "wtinylfu-window-heavy": lambda c: WTinyLFUPolicy(c, window=c - 1, sample_window=7),
    "wtinylfu-no-window": lambda c: WTinyLFUPolicy(c, window=0, protected_ratio=0.5),
    "wtinylfu-all-window": lambda c: WTinyLFUPolicy(c, window=c),
    "wtinylfu-no-protected": lambda c: WTinyLFUPolicy(c, window=1, protected_ratio=0.0, sample_window=5),
}
CONTRACT_SETTINGS = settings(
    max_examples=60, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow]
)

KEYS = st.one_of(st.integers(0, 11), st.sampled_from(["Apple|1|0|2", "Bowl|0|1|1", "Knife|2|1|0", "1"]))
OPS = st.lists(st.tuples(st.sampled_from(["access", "insert", "insert", "remove"]), KEYS), max_size=120)


def apply(policy: ReplacementPolicy, op: str, key: Hashable) -> object:
    """Run one operation and return its result (for comparing two policies step by step)."""
    if op == "access":
        return policy.access(key)
    if op == "insert":
        return policy.insert(key)
    return policy.remove(key)


def check_invariants(policy: ReplacementPolicy) -> None:
    keys = policy.keys()
    assert len(keys) == len(set(keys)) == len(policy) <= policy.capacity
    assert all(key in policy for key in keys)


def roundtrip(policy: ReplacementPolicy) -> ReplacementPolicy:
    """Save and load through JSON text, as the STM persists it."""
    return policy_from_state(json.loads(json.dumps(policy.state())))


# -- contract over every policy ------------------------------------------------------------
@pytest.mark.parametrize("kind", sorted(FACTORIES))
class TestContract:
    @CONTRACT_SETTINGS
    @given(capacity=st.integers(1, 6), ops=OPS)
    def test_operations_keep_invariants(self, kind: str, capacity: int, ops: list[tuple[str, Hashable]]) -> None:
        policy = FACTORIES[kind](capacity)
        assert isinstance(policy, ReplacementPolicy)
        for op, key in ops:
            before = set(policy.keys())
            result = apply(policy, op, key)
            after = set(policy.keys())
            if op == "access":
                assert result is (key in before)
                assert after == before  # access never admits or evicts
            elif op == "remove":
                assert result is (key in before)
                assert after == before - {key}
            else:
                assert isinstance(result, list)
                if key in before:  # merge: one entry per key, nothing evicted
                    assert result == [] and after == before
                else:
                    assert len(set(result)) == len(result) and set(result) <= before | {key}
                    assert after == (before | {key}) - set(result)
                    assert (key in after) != (result == [key])
            check_invariants(policy)

    @CONTRACT_SETTINGS
    @given(capacity=st.integers(1, 6), ops=st.lists(KEYS, max_size=80))
    def test_capacity_is_reached_and_never_exceeded(self, kind: str, capacity: int, ops: list[Hashable]) -> None:
        policy = FACTORIES[kind](capacity)
        seen: set[Hashable] = set()
        for key in ops:
            if not policy.access(key):
                policy.insert(key)
            seen.add(key)
            assert len(policy) <= capacity
        # only W-TinyLFU with no window may reject newcomers outright; the others fill up
        if kind != "wtinylfu-no-window":
            assert len(policy) == min(capacity, len(seen))

    @CONTRACT_SETTINGS
    @given(capacity=st.integers(1, 6), prefix=OPS, suffix=OPS)
    def test_state_roundtrip_preserves_behaviour(
        self, kind: str, capacity: int, prefix: list[tuple[str, Hashable]], suffix: list[tuple[str, Hashable]]
    ) -> None:
        policy = FACTORIES[kind](capacity)
        for op, key in prefix:
            apply(policy, op, key)
        clone = roundtrip(policy)
        assert type(clone) is type(policy) and clone.state() == policy.state()
        for op, key in suffix:
            assert apply(clone, op, key) == apply(policy, op, key)
            assert clone.keys() == policy.keys()
        assert clone.state() == policy.state()

    def test_merge_of_resident_key_keeps_one_entry(self, kind: str) -> None:
        policy = FACTORIES[kind](3)
        for key in ("Apple", "Bowl", "Apple", "Apple"):
            policy.insert(key)
        assert sorted(map(str, policy.keys())) == ["Apple", "Bowl"]
        assert policy.insert("Bowl") == [] and len(policy) == 2

    def test_remove_clear_and_contains(self, kind: str) -> None:
        policy = FACTORIES[kind](4)
        for key in ("a", "b", "c"):
            policy.insert(key)
        assert policy.remove("b") is True and policy.remove("b") is False and "b" not in policy
        assert policy.remove("never-seen") is False
        policy.clear()
        assert len(policy) == 0 and policy.keys() == [] and "a" not in policy
        assert policy.access("a") is False
        assert policy.insert("a") == [] and "a" in policy

    def test_from_state_rejects_bad_states(self, kind: str) -> None:
        policy = FACTORIES[kind](3)
        policy.insert("a")
        good = policy.state()
        cls = type(policy)
        for bad in (
            {**good, "policy": "arc"},
            {**good, "version": 99},
            {**good, "capacity": 0},
            {**good, "capacity": "3"},
            "not a mapping",
        ):
            with pytest.raises(MemoryFileError):
                cls.from_state(bad)  # type: ignore[arg-type]
        with pytest.raises(MemoryFileError, match="arc"):
            policy_from_state({**good, "policy": "arc"})


# -- reference models (exact policies) -------------------------------------------------------
class _ModelLRU:
    def __init__(self, capacity: int) -> None:
        self.capacity, self.order = capacity, []  # type: ignore[var-annotated]

    def access(self, key: Hashable) -> bool:
        if key in self.order:
            self.order.remove(key)
            self.order.append(key)
            return True
        return False

    def insert(self, key: Hashable) -> list[Hashable]:
        if self.access(key):
            return []
        out = [self.order.pop(0)] if len(self.order) >= self.capacity else []
        self.order.append(key)
        return out


class _ModelFIFO(_ModelLRU):
    def access(self, key: Hashable) -> bool:
        return key in self.order


class _ModelLFU:
    """Evict min (uses, last-use tick); one use per request (insert after access not recounted)."""

    def __init__(self, capacity: int) -> None:
        self.capacity, self.uses, self.last, self.tick, self.pending = capacity, {}, {}, 0, None  # type: ignore[var-annotated]

    def _use(self, key: Hashable) -> None:
        self.tick += 1
        self.uses[key] += 1
        self.last[key] = self.tick

    def access(self, key: Hashable) -> bool:
        self.pending = (key,)
        if key in self.uses:
            self._use(key)
            return True
        return False

    def insert(self, key: Hashable) -> list[Hashable]:
        counted, self.pending = self.pending == (key,), None
        if key in self.uses:
            if not counted:
                self._use(key)
            return []
        out = []
        if len(self.uses) >= self.capacity:
            victim = min(self.uses, key=lambda k: (self.uses[k], self.last[k]))
            del self.uses[victim], self.last[victim]
            out = [victim]
        self.uses[key] = 0
        self._use(key)
        return out


@pytest.mark.parametrize(("kind", "model"), [("fifo", _ModelFIFO), ("lru", _ModelLRU), ("lfu", _ModelLFU)])
@settings(max_examples=80, deadline=None, database=None)
@given(capacity=st.integers(1, 5), ops=st.lists(st.tuples(st.sampled_from(["access", "insert"]), st.integers(0, 9)), max_size=150))
def test_exact_policies_match_reference_model(kind: str, model: type, capacity: int, ops: list[tuple[str, int]]) -> None:
    policy, ref = make_policy(kind, capacity), model(capacity)
    for op, key in ops:
        assert getattr(policy, op)(key) == getattr(ref, op)(key)
    assert sorted(policy.keys()) == sorted(ref.order if hasattr(ref, "order") else ref.uses)


# -- policy-specific behaviour -----------------------------------------------------------------
def test_fifo_evicts_oldest_insertion_and_merge_keeps_position() -> None:
    fifo = FIFOPolicy(3)
    for key in ("Apple", "Bowl", "Knife"):
        assert fifo.insert(key) == []
    assert fifo.access("Apple") is True  # a use does not move it
    assert fifo.insert("Apple") == []  # merge: replaces its own unit in place
    assert fifo.keys() == ["Apple", "Bowl", "Knife"]
    assert fifo.insert("Mug") == ["Apple"]
    assert fifo.insert("Egg") == ["Bowl"]
    assert fifo.keys() == ["Knife", "Mug", "Egg"]


def test_lru_evicts_exactly_the_least_recently_used() -> None:
    lru = LRUPolicy(3)
    for key in ("Apple", "Bowl", "Knife"):
        lru.insert(key)
    lru.access("Apple")
    lru.insert("Bowl")  # a merge is a use
    assert lru.keys() == ["Knife", "Apple", "Bowl"]
    assert lru.insert("Mug") == ["Knife"]
    assert lru.insert("Egg") == ["Apple"]
    assert lru.access("Apple") is False


def test_lfu_evicts_exactly_the_least_frequently_used_with_lru_tie_break() -> None:
    lfu = LFUPolicy(3)
    for key in ("Apple", "Bowl", "Knife"):
        lfu.insert(key)
    for _ in range(3):
        lfu.access("Apple")
    lfu.access("Knife")
    assert lfu.insert("Knife") == []  # insert right after access(Knife): one use, not two
    assert [lfu.frequency(k) for k in ("Apple", "Bowl", "Knife")] == [4, 1, 2]
    assert lfu.insert("Mug") == ["Bowl"]  # fewest uses
    assert lfu.insert("Egg") == ["Mug"]  # Mug (1 use) is the only count-1 key
    lfu.access("Egg")
    lfu.access("Knife")  # Egg 2 (older), Knife 3
    assert lfu.insert("Cup") == ["Egg"]
    lfu.insert("Cup")  # merge not after an access counts: Cup 2
    lfu.access("Knife")  # Knife 4, Apple 4: Apple used less recently
    assert lfu.keys() == ["Cup", "Apple", "Knife"]


@pytest.mark.parametrize(("window", "main"), [(None, None), (9, 1), (5, 5), (1, 9)])
def test_wtinylfu_keeps_a_frequent_key_that_fifo_evicts_under_a_scan(window: int | None, main: int | None) -> None:
    tiny, fifo = WTinyLFUPolicy(10, window=window, main=main), FIFOPolicy(10)
    for policy in (tiny, fifo):
        for step in range(40):  # a hot object recalled between a few others
            for key in ("Apple", f"warm{step % 12}"):
                if not policy.access(key):
                    policy.insert(key)
        for step in range(200):  # then a scan of one-off objects
            key = f"scan{step}"
            if not policy.access(key):
                policy.insert(key)
    assert "Apple" in tiny and "Apple" not in fifo
    assert tiny.frequency("Apple") > tiny.frequency("scan199")


def test_wtinylfu_admission_compares_window_victim_with_probation_victim() -> None:
    p = WTinyLFUPolicy(3, window=1, main=2, protected_ratio=0.5)
    for key in "abc":
        p.insert(key)
    assert p.segments() == {"window": ["c"], "probation": ["a", "b"], "protected": []}
    p.access("b")  # probation hit -> protected
    assert p.segments() == {"window": ["c"], "probation": ["a"], "protected": ["b"]}
    assert p.insert("d") == ["c"]  # candidate c (1 use) vs victim a (1 use): ties reject the candidate
    for _ in range(3):
        p.access("d")
    assert p.insert("e") == ["a"]  # candidate d (4 uses) beats victim a
    assert p.segments() == {"window": ["e"], "probation": ["d"], "protected": ["b"]}
    p.access("d")  # promoted; protected (1 unit) overflows, b is demoted to probation
    assert p.segments() == {"window": ["e"], "probation": ["b"], "protected": ["d"]}


def test_wtinylfu_without_window_rejects_the_newcomer_itself() -> None:
    p = WTinyLFUPolicy(2, window=0)
    p.insert("a")
    p.insert("b")
    p.access("a")
    p.access("b")
    assert p.insert("c") == ["c"] and "c" not in p
    for _ in range(4):
        p.access("d")  # frequency builds up while it is not resident
    assert p.insert("d") in (["a"], ["b"]) and "d" in p


def test_wtinylfu_counts_miss_then_fill_as_one_use() -> None:
    p = WTinyLFUPolicy(10, sample_window=1000)
    assert p.access("Apple") is False
    p.insert("Apple")
    assert p.frequency("Apple") == 1
    p.insert("Apple")  # a merge without an access is a use
    p.access("Apple")
    p.insert("Apple")
    assert p.frequency("Apple") == 3


def test_sketch_halves_counters_exactly_at_w() -> None:
    sketch = FrequencySketch(capacity=10, sample_window=20)
    for _ in range(9):
        sketch.increment("Apple")
    assert sketch.estimate("Apple") == 9  # 1 in the doorkeeper + 8 in the count-min rows
    for _ in range(10):
        sketch.increment("Bowl")
    assert sketch.additions == 19 and sketch.resets == 0 and sketch.estimate("Apple") == 9
    sketch.increment("Bowl")  # the W-th recorded use
    assert sketch.resets == 1 and sketch.additions == 0
    assert sketch.estimate("Apple") == 4  # counters 8 -> 4, doorkeeper cleared
    assert sketch.estimate("Bowl") == 5  # counters 10 -> 5


def test_wtinylfu_halving_happens_at_sample_window() -> None:
    p = WTinyLFUPolicy(10, sample_window=30)
    for _ in range(13):
        p.access("Apple")
    for i in range(16):
        p.access(f"other{i}")
    assert p.sketch.resets == 0 and p.frequency("Apple") == 13
    p.access("Mug")  # 30th recorded use
    assert p.sketch.resets == 1 and p.frequency("Apple") == 6
    assert WTinyLFUPolicy(7).sketch.sample_window == 70  # default W = 10 x capacity


def test_sketch_saturates_and_uses_the_doorkeeper() -> None:
    sketch = FrequencySketch(capacity=10, sample_window=10_000)
    sketch.increment("Apple")
    assert sketch.estimate("Apple") == 1 and sum(sketch._table) == 0  # only the doorkeeper holds it
    for _ in range(100):
        sketch.increment("Apple")
    assert sketch.estimate("Apple") == 16  # 4-bit counters cap at 15, + doorkeeper
    sketch.clear()
    assert sketch.estimate("Apple") == 0 and sketch.additions == 0


def test_sketch_state_rejects_mismatched_sizes() -> None:
    state = FrequencySketch(capacity=10).state()
    with pytest.raises(MemoryFileError, match="width"):
        FrequencySketch(capacity=100).load_state(state)
    with pytest.raises(MemoryFileError, match="hex"):
        FrequencySketch(capacity=10).load_state({**state, "counters": "z" * len(state["counters"])})
    with pytest.raises(MemoryFileError, match="additions"):
        FrequencySketch(capacity=10).load_state({**state, "additions": 10**6})


def test_stable_hash_is_identical_across_processes() -> None:
    """Saved sketches must match their keys after a restart, whatever PYTHONHASHSEED is."""
    code = (
        "from karma_memory.core.policies.sketch import stable_key_hash as h;"
        "print(h('Apple|+1.0|+0.9|-2.3'), h(42), h(b'x'))"
    )
    outs = {
        subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT,
            env={"PYTHONHASHSEED": seed, "PATH": ""},
        ).stdout
        for seed in ("1", "2")
    }
    assert outs == {f"{stable_key_hash('Apple|+1.0|+0.9|-2.3')} {stable_key_hash(42)} {stable_key_hash(b'x')}\n"}


def test_wtinylfu_state_survives_json_and_keeps_frequencies() -> None:
    p = WTinyLFUPolicy(20, window=2, main=18, sample_window=500)
    rng = random.Random(3)
    for _ in range(300):
        key = f"obj{min(int(rng.paretovariate(1.0)), 40)}"
        if not p.access(key):
            p.insert(key)
    clone = roundtrip(p)
    assert isinstance(clone, WTinyLFUPolicy)
    assert clone.split == (2, 18) and clone.segments() == p.segments()
    assert all(clone.frequency(f"obj{i}") == p.frequency(f"obj{i}") for i in range(41))
    state = p.state()
    bad_segments = {**state["segments"], "window": state["segments"]["probation"][:1] + state["segments"]["window"]}
    with pytest.raises(MemoryFileError):
        WTinyLFUPolicy.from_state({**state, "segments": bad_segments})
    with pytest.raises(MemoryFileError, match="parameters"):
        WTinyLFUPolicy.from_state({**state, "params": {**state["params"], "window": 99}})


# -- correctness against theine (small version of the benchmark's check) ----------------------
def _zipf_trace(n: int, seed: int = 0) -> list[int]:
    """Zipf(1.2) folded onto 5,000 keys, as DESIGN.md §4's peer measurement."""
    return (np.random.default_rng(seed).zipf(1.2, n) % 5000).tolist()


def _theine_hit_rate(capacity: int, trace: list[int]) -> float:
    from theine import Cache

    random.seed(0)  # theine's read buffer is striped with random bits
    cache: Cache[int, int] = Cache(capacity, nolock=True)
    hits = 0
    for key in trace:
        if cache.get(key)[1]:
            hits += 1
        else:
            cache.set(key, 1)
    return hits / len(trace)


@pytest.mark.parametrize("capacity", [100, 1000])
def test_wtinylfu_hit_rate_matches_theine_on_zipf(capacity: int) -> None:
    trace = _zipf_trace(40_000)
    policy = WTinyLFUPolicy(capacity)
    hits = 0
    for key in trace:
        if policy.access(key):
            hits += 1
        else:
            policy.insert(key)
    ours, theirs = hits / len(trace), _theine_hit_rate(capacity, trace)
    assert abs(ours - theirs) <= 0.03, (capacity, ours, theirs)
    lru, lru_hits = LRUPolicy(capacity), 0
    for key in trace:
        if lru.access(key):
            lru_hits += 1
        else:
            lru.insert(key)
    assert ours > lru_hits / len(trace)  # frequency beats recency on a skewed trace


# -- registry and config --------------------------------------------------------------------
def test_registry_builds_every_policy_by_name() -> None:
    assert policy_names() == ("fifo", "lru", "lfu", "wtinylfu")
    for name in policy_names():
        policy = make_policy(name, 5)
        assert isinstance(policy, ReplacementPolicy) and policy.name == name and policy.capacity == 5
    tiny = make_policy("wtinylfu", 10, window=9, main=1, protected_ratio=0.5, sample_window=40)
    assert isinstance(tiny, WTinyLFUPolicy) and tiny.split == (9, 1) and tiny.sketch.sample_window == 40
    assert WTinyLFUPolicy(10).split == (1, 9) and WTinyLFUPolicy(1000).split == (10, 990)
    assert WTinyLFUPolicy(10, main=8).split == (2, 8) and WTinyLFUPolicy(10, main=5).protected_capacity == 4


@pytest.mark.parametrize(
    ("kwargs", "needle"),
    [
        ({"name": "arc"}, "arc"),
        ({"capacity": 0}, "0"),
        ({"capacity": -3}, "-3"),
        ({"capacity": True}, "True"),
        ({"capacity": 2.5}, "2.5"),
        ({"capacity": "10"}, "'10'"),
        ({"window": 9, "main": 2}, "9"),
        ({"window": 11}, "11"),
        ({"main": 12}, "12"),
        ({"window": -1}, "-1"),
        ({"protected_ratio": 1.5}, "1.5"),
        ({"protected_ratio": -0.1}, "-0.1"),
        ({"sample_window": 0}, "sample_window"),
        ({"name": "lru", "window": 3}, "window=3"),
        ({"name": "fifo", "sample_window": 50}, "sample_window=50"),
    ],
)
def test_policy_config_rejects_bad_values(kwargs: dict[str, object], needle: str) -> None:
    values = {"name": "wtinylfu", "capacity": 10, **kwargs}
    with pytest.raises(ConfigError, match=needle.replace(".", r"\.")) as info:
        PolicyConfig(**values)  # type: ignore[arg-type]
    assert isinstance(info.value, KarmaMemoryError) and isinstance(info.value, ValueError)


def test_make_policy_and_from_mapping_reject_unknown_settings() -> None:
    with pytest.raises(ConfigError, match="windw"):
        make_policy("wtinylfu", 10, windw=9)
    with pytest.raises(ConfigError, match="nope"):
        make_policy("nope", 10)
    config = PolicyConfig.from_mapping({"name": "lfu", "capacity": 25})
    assert config == PolicyConfig("lfu", 25) and isinstance(config.build(), LFUPolicy)
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.capacity = 3  # type: ignore[misc]
    with pytest.raises(MemoryFileError, match="mapping"):
        policy_from_state([])  # type: ignore[arg-type]


def test_make_policy_accepts_a_ready_config() -> None:
    policy = make_policy(PolicyConfig("wtinylfu", 10, window=9, main=1))
    assert isinstance(policy, WTinyLFUPolicy) and policy.split == (9, 1)
    with pytest.raises(ConfigError, match="PolicyConfig"):
        make_policy(PolicyConfig("lru", 4), 4)
    with pytest.raises(ConfigError, match="capacity"):
        make_policy("lru")  # type: ignore[call-arg]
