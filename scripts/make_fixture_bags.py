#!/usr/bin/env python3
"""Regenerate the fixture bags in test/fixtures/ (deterministically) and their expected-memory JSON.

- ``explore_<scene>/``: camera topics of an exploration sweep of the embedded simulator (rgb, depth,
  instances + labels, camera_info, camera pose, base pose), 160×120, 12 frames, mcap with zstd chunks;
- ``task_<scene>/``: the observation topics of a short task run (apple into the fridge, mug onto the
  coffee machine);
- ``<bag>.expected.json``: the memory the core pipeline builds from the same messages (object set,
  positions, relations, short-term memory units) — what a replay into the nodes must reproduce.

Run from the repository root: ``.venv/bin/python scripts/make_fixture_bags.py [--out test/fixtures]``.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from karma_memory.bench.bags import FIXTURE_SCENE, SweepSpec, write_explore_bag, write_task_bag  # noqa: E402


def write_fixtures(out: Path, scene: str = FIXTURE_SCENE) -> dict[str, dict]:
    """Write both bags and their expected JSON into ``out``; return {bag name: expected document}."""
    out.mkdir(parents=True, exist_ok=True)
    documents = {
        f"explore_{scene}": write_explore_bag(out / f"explore_{scene}", SweepSpec(scene=scene)),
        f"task_{scene}": write_task_bag(out / f"task_{scene}", scene),
    }
    for name, document in documents.items():
        (out / f"{name}.expected.json").write_text(json.dumps(document, indent=1, sort_keys=True) + "\n")
    return documents


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "test" / "fixtures")
    parser.add_argument("--scene", default=FIXTURE_SCENE)
    args = parser.parse_args(argv)
    documents = write_fixtures(args.out, args.scene)
    for name, document in documents.items():
        size = sum(f.stat().st_size for f in (args.out / name).iterdir())
        print(f"{name}: {sum(document['messages'].values())} messages, {size / 1e3:.0f} kB, "
              f"{len(document['ltm']['objects'])} objects, {len(document['ltm']['relations'])} relations, "
              f"{len(document['stm'])} STM units")
    return 0


if __name__ == "__main__":
    sys.exit(main())
