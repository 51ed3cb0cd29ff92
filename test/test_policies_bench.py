"""The replacement-policy benchmark: task generator, replay accounting, and a smoke run writing JSON + PNG."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from karma_memory.bench import policies as bench
from karma_memory.core.policies import FIFOPolicy, WTinyLFUPolicy


@pytest.fixture(scope="module")
def kitchens() -> dict[str, list[dict[str, object]]]:
    return bench.load_ithor_scenes(["kitchens"])


def test_load_ithor_scenes_names_floorplans_in_order(kitchens: dict[str, list[dict[str, object]]]) -> None:
    assert sorted(kitchens, key=lambda s: int(s[9:])) == [f"FloorPlan{i}" for i in range(1, 31)]
    types = {o["objectType"] for objects in kitchens.values() for o in objects}
    assert {"Apple", "Fridge", "Bowl", "Knife", "Sink"} <= types
    bathrooms = bench.load_ithor_scenes(["bathrooms"])
    assert min(bathrooms) == "FloorPlan401" and len(bathrooms) == 30
    with pytest.raises(KeyError, match="garage"):
        bench.load_ithor_scenes(["garage"])


def test_generator_is_seeded_and_draws_real_recallable_objects(kitchens: dict[str, list[dict[str, object]]]) -> None:
    cfg = bench.TaskGenConfig(sequences=4, tasks=50, seed=7)
    first, again = bench.generate_sequences(kitchens, cfg), bench.generate_sequences(kitchens, cfg)
    assert first == again
    assert first != bench.generate_sequences(kitchens, bench.TaskGenConfig(sequences=4, tasks=50, seed=8))
    for scene, tasks in first:
        ids = {o["objectId"]: o for o in kitchens[scene]}
        assert len(tasks) == 50
        for task in tasks:
            assert 1 <= len(task.recalled) <= 3 and len(set(task.recalled)) == len(task.recalled)
            assert len(task.witnessed) <= 1
            for obj in (*task.recalled, *task.witnessed):
                assert ids[obj]["objectType"] != "Floor"
    sizes = [len(t.recalled) for _, tasks in first for t in tasks]
    assert {1, 2, 3} <= set(sizes)


def test_replay_counts_hits_and_detects_warm_up() -> None:
    tasks = [bench.Task(("a",)), bench.Task(("b", "a")), bench.Task(("c",), ("d",)), bench.Task(("d", "a"))]
    hits, queries, warm = bench.replay(FIFOPolicy(4), tasks)
    assert hits == [0, 1, 0, 2] and queries == [1, 2, 1, 2]
    assert warm == 3  # four units stored after the third task: occupancy 4 > 0.95 x 4
    assert bench.replay(WTinyLFUPolicy(10), tasks)[2] is None


def test_zipf_trace_is_the_design_trace() -> None:
    trace = bench.zipf_trace(1000, seed=0)
    assert trace == bench.zipf_trace(1000, seed=0) and 0 <= min(trace) and max(trace) < 5000
    assert trace.count(1) > trace.count(2) > trace.count(3)


def test_benchmark_smoke_run_writes_json_and_png(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = bench.main([
        "--quick", "--out", str(tmp_path), "--accesses", "3000", "--sequences", "3", "--tasks", "40",
        "--tolerance", "1.0",
    ])
    assert code == 0
    result = json.loads((tmp_path / "policies.json").read_text())
    png = tmp_path / "policies_replacement.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    rows = result["zipf"]["rows"]
    assert {(r["policy"], r["capacity"]) for r in rows} == {
        (p, c) for p in ("fifo", "lru", "lfu", "wtinylfu") for c in (10, 100, 1000, 10_000)
    }
    assert all(r["ops_per_s"] > 0 and 0 <= r["hit_rate"] <= 1 and r["ratio_to_theine"] > 0 for r in rows)
    # exact policies must agree with their cachetools peers hit for hit
    for r in rows:
        if r["policy"] in ("fifo", "lru"):
            assert r["hit_rate"] == r["peer_hit_rate"]
    assert [c["capacity"] for c in result["zipf"]["theine_check"]] == [100, 1000]
    fig4 = result["replacement"]["fig4_capacity10"]
    assert [r["label"] for r in fig4][:2] == ["FIFO [10]", "W-TinyLFU [1,9]"] and len(fig4) == 12
    assert all(len(r["mean_cumulative_curve"]) == 40 for r in fig4)
    assert set(result["replacement"]["ratio_25_vs_5"]) == {"fifo", "wtinylfu", "wtinylfu_default"}
    assert "W-TinyLFU [9,1]" in capsys.readouterr().out
