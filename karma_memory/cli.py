"""The ``karma`` command: demo, benchmarks, memory tools, and (on pip-only machines) the stack runner.

Subcommands are modules with ``main(argv) -> int``, imported only when used so that
``karma --help`` stays fast.
"""

from __future__ import annotations

import argparse
import importlib
import os
import pkgutil
import sys

__all__ = ["main", "COMMANDS"]

#: subcommand -> (module, one-line help)
COMMANDS: dict[str, tuple[str, str]] = {
    "demo": ("karma_memory.demo", "run the full stack on a real iTHOR kitchen and print a report"),
    "stack": ("karma_memory.launcher", "start the ROS 2 nodes from config (launch for pip-only machines)"),
    "memory": ("karma_memory.memory_tool", "build, inspect, validate or export a memory directory"),
    "bag": ("karma_memory.bag", "record / play rosbag2 directories (mcap or sqlite3)"),
    "fleet": ("karma_memory.fleet", "run a Chroma server and several robots sharing one memory"),
}


def _bench_names() -> list[str]:
    import karma_memory.bench as bench

    return sorted(m.name for m in pkgutil.iter_modules(bench.__path__) if not m.name.startswith("_"))


def _run_bench(argv: list[str]) -> int:
    names = _bench_names()
    parser = argparse.ArgumentParser(prog="karma bench", description="Run benchmarks; figures go to build/bench/.",
                                     add_help=False)  # `karma bench NAME --help` is the benchmark's own help
    parser.add_argument("name", choices=names + ["all"], help="which benchmark ('all' runs every one)")
    if not argv or argv[0] in ("-h", "--help"):
        parser.print_help()
        return 0
    args, rest = parser.parse_known_args(argv)
    status = 0
    for name in names if args.name == "all" else [args.name]:
        print(f"=== karma bench {name} ===", flush=True)
        module = importlib.import_module(f"karma_memory.bench.{name}")
        status |= int(module.main(rest) or 0)
    return status


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``karma`` console script."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    os.environ.setdefault("ANONYMIZED_TELEMETRY", "False")
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        print("usage: karma <command> [args]\n\ncommands:")
        print(f"  {'bench':8s} run a benchmark (karma bench --help)")
        for name, (_, text) in COMMANDS.items():
            print(f"  {name:8s} {text}")
        return 0
    command, rest = argv[0], argv[1:]
    if command == "bench":
        return _run_bench(rest)
    if command not in COMMANDS:
        print(f"karma: unknown command {command!r}; try `karma --help`", file=sys.stderr)
        return 2
    module = importlib.import_module(COMMANDS[command][0])
    return int(module.main(rest) or 0)


if __name__ == "__main__":
    sys.exit(main())
