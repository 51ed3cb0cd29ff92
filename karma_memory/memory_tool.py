"""``karma memory``: build, inspect, validate and export memory directories — the typed way to get memory out.

A memory directory holds ``scene_graph.json`` (long-term memory) and optionally
``short_term_memory.json``; both are checksummed, versioned envelopes (see core/persistence.py)
that any program can read as JSON: ``payload`` is networkx node-link data / the STM units.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import networkx as nx

from karma_memory.core import scene_graph as sg
from karma_memory.core.errors import KarmaMemoryError
from karma_memory.core.long_term import GRAPH_FILE, LongTermMemory, LtmConfig
from karma_memory.core.short_term import STM_FILE, ShortTermMemory, StmConfig

__all__ = ["main"]


def _load_ltm(directory: Path) -> LongTermMemory:
    memory = LongTermMemory(LtmConfig(), directory=directory)
    memory.load()
    return memory


def cmd_build(args: argparse.Namespace) -> int:
    memory = LongTermMemory.from_scene(args.scene, config=LtmConfig(area_spacing=args.area_spacing),
                                       directory=args.out)
    path = memory.save()
    print(f"built the long-term memory of {args.scene}: {len(memory)} objects, "
          f"{len(sg.area_ids(memory.graph))} areas -> {path}")
    return 0


def cmd_show(args: argparse.Namespace) -> int:
    memory = _load_ltm(args.directory)
    graph = memory.graph
    print(f"scene {graph.graph.get('scene') or '?'}: version {graph.graph['version']}, {len(memory)} objects, "
          f"{len(sg.area_ids(graph))} areas, {sum(1 for *_, d in graph.edges(data=True) if d['relation'] == 'navigable') // 2}"
          " navigable pairs")
    print(memory.to_prompt(include_movable=not args.fixed_only))
    if (args.directory / STM_FILE).exists():
        stm = ShortTermMemory(StmConfig(capacity=args.stm_capacity), directory=args.directory)
        stm.load()
        print(f"\nshort-term memory ({len(stm)} units, hit rate {stm.stats.hit_rate:.2f}):")
        print(stm.to_prompt())
    return 0


def cmd_validate(args: argparse.Namespace) -> int:
    problems = 0
    for name in (GRAPH_FILE, STM_FILE):
        path = args.directory / name
        if not path.exists():
            print(f"{name}: absent")
            continue
        try:
            if name == GRAPH_FILE:
                memory = _load_ltm(args.directory)
                issues = sg.validate_graph(memory.graph)
                if issues:
                    raise KarmaMemoryError("; ".join(issues[:5]))
                print(f"{name}: ok ({len(memory)} objects)")
            else:
                stm = ShortTermMemory(StmConfig(capacity=args.stm_capacity), directory=args.directory)
                used = stm.load()
                print(f"{name}: ok ({len(stm)} units{', restored from ' + used.name if used.name != name else ''})")
        except KarmaMemoryError as err:
            problems += 1
            print(f"{name}: INVALID: {err}")
    return 1 if problems else 0


def cmd_export(args: argparse.Namespace) -> int:
    memory = _load_ltm(args.directory)
    graph = memory.graph
    if args.format == "json":
        text = json.dumps(sg.graph_to_data(graph), indent=1)
    else:  # graphml wants scalar attributes
        flat = nx.DiGraph()
        for node, data in graph.nodes(data=True):
            flat.add_node(node, **{k: json.dumps(v) if not isinstance(v, (str, int, float, bool)) else v
                                   for k, v in data.items() if v is not None})
        for u, v, data in graph.edges(data=True):
            flat.add_edge(u, v, **data)
        text = "\n".join(nx.generate_graphml(flat))
    if args.output == "-":
        sys.stdout.write(text + "\n")
    else:
        Path(args.output).write_text(text)
        print(f"wrote {args.output}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="karma memory", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    build = sub.add_parser("build", help="build the long-term memory of a real iTHOR scene")
    build.add_argument("scene", help="FloorPlanN")
    build.add_argument("--out", type=Path, required=True)
    build.add_argument("--area-spacing", type=float, default=LtmConfig().area_spacing)
    build.set_defaults(func=cmd_build)
    for name, func, text in (("show", cmd_show, "print a memory directory as prompt text"),
                             ("validate", cmd_validate, "check schema versions, checksums and invariants")):
        p = sub.add_parser(name, help=text)
        p.add_argument("directory", type=Path)
        p.add_argument("--stm-capacity", type=int, default=1000, help="capacity to restore the STM with")
        if name == "show":
            p.add_argument("--fixed-only", action="store_true", help="only immovable objects, as the paper's LTM")
        p.set_defaults(func=func)
    export = sub.add_parser("export", help="export the scene graph as node-link JSON or GraphML")
    export.add_argument("directory", type=Path)
    export.add_argument("--format", choices=("json", "graphml"), default="json")
    export.add_argument("-o", "--output", default="-")
    export.set_defaults(func=cmd_export)
    args = parser.parse_args(argv)
    try:
        return int(args.func(args))
    except KarmaMemoryError as err:
        print(f"karma memory: {err}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    raise SystemExit(main())
