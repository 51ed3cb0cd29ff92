"""``karma bench load``: its command line, its workload, and a short run against real memory nodes."""

from __future__ import annotations

import json

import pytest

from karma_memory.bench import load
from karma_memory.core.types import ObservationKind


def test_help_describes_the_load_benchmark(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        load.main(["--help"])
    assert exit_info.value.code == 0
    text = capsys.readouterr().out
    assert text.startswith("usage: karma bench load")
    assert "1,000 observations/s for 60 s into the memory nodes" in text
    for option in ("--seconds", "--rate", "--batch", "--objects", "--snapshot-interval", "--out"):
        assert option in text
    assert "processing latency of each node" in text and "``" not in text


@pytest.mark.parametrize("argv", [["--batch", "1"], ["--rate", "0"], ["--seconds", "-1"],
                                  ["--objects", "5", "--batch", "10"], ["--rate", "fast"]])
def test_bad_arguments_are_refused(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        load.main(argv)
    assert exit_info.value.code == 2 and "karma bench load: error" in capsys.readouterr().err


def test_workload_moves_one_object_and_reports_one_skill_per_message() -> None:
    workload = load.Workload(objects=40, batch=10, seed=3)
    seen_ids = set()
    for k in range(8):
        batch = workload.next_batch(100.0 + k)
        assert len(batch) == 10 and len({o.object_id for o in batch}) == 10
        kinds = [(o.kind, o.source) for o in batch]
        movable = batch[0].movable
        if movable:
            assert kinds[0] == (ObservationKind.MOVED, "perception")
        assert sum(source == "skill:PutObject" for _, source in kinds) == int(batch[1].movable)
        seen_ids |= {o.object_id for o in batch}
    assert len(seen_ids) == 40  # it cycles through the world
    first, again = load.Workload(40, 10, seed=3).next_batch(0.0), load.Workload(40, 10, seed=3).next_batch(0.0)
    assert first == again  # deterministic


def test_a_short_run_processes_everything(tmp_path, capsys: pytest.CaptureFixture[str]) -> None:
    """5 s at 300 observations/s into both nodes at their default parameters: nothing lost, figures written."""
    status = load.main(["--seconds", "5", "--rate", "300", "--batch", "10", "--objects", "300",
                        "--out", str(tmp_path)])
    result = json.loads((tmp_path / "load.json").read_text())
    printed = capsys.readouterr().out
    assert result["messages_sent"] >= 140
    assert result["lost_messages"] == {"ltm": 0, "stm": 0}, printed
    assert result["messages_processed"] == {"ltm": result["messages_sent"], "stm": result["messages_sent"]}
    assert result["latency_ms"]["count"] == result["messages_sent"]  # every message changed the graph: a delta each
    for node in ("ltm", "stm"):
        lat = result["processing_latency_ms"][node]
        assert lat["count"] == result["messages_sent"] and 0 < lat["p50"] <= lat["p95"] <= lat["p99"] <= lat["max"]
    assert set(result["rss_mb"]) == {"long_term_memory", "short_term_memory"}
    assert len(result["load_average"]["before"]) == 3 and result["load_average"]["cpus"] >= 1
    assert status == (0 if result["keeps_up"] else 1)
    assert "processed (STM ack)" in printed and "machine load average" in printed
    assert (tmp_path / "load.png").is_file()
