"""``karma stack``: start the nodes as separate rclpy processes from one YAML config (launch for pip-only machines).

Each node runs its console script exactly as ``ros2 launch`` would:
``<script> --ros-args --params-file config/karma.yaml [--params-file overrides.yaml] -r __ns:=/<namespace>``.
SIGINT and SIGTERM are forwarded to every node (which flush their memories and exit); a node that
does not stop within ``--grace`` seconds is killed. If a node dies on its own, the others are
stopped and the exit status is non-zero.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Sequence

import yaml

__all__ = ["NODES", "NODE_MODULES", "default_config", "defaults_yaml", "node_command", "parse_overrides",
           "coerce_overrides", "Stack", "main"]

#: console script -> module with its main(); the same table as setup.py's entry points.
NODE_MODULES: dict[str, str] = {
    "sim_bridge": "karma_memory.nodes.sim_bridge_node",
    "perception": "karma_memory.nodes.perception_node",
    "long_term_memory": "karma_memory.nodes.long_term_memory_node",
    "short_term_memory": "karma_memory.nodes.short_term_memory_node",
    "planner": "karma_memory.nodes.planner_node",
}
NODES = tuple(NODE_MODULES)
PACKAGE = "karma_memory"
_REPO = Path(__file__).resolve().parent.parent


def default_config() -> Path:
    """config/karma.yaml from the package share directory (ROS install) or else from the source tree."""
    try:
        from ament_index_python.packages import get_package_share_directory

        shared = Path(get_package_share_directory(PACKAGE)) / "config" / "karma.yaml"
        if shared.is_file():
            return shared
    except (ImportError, LookupError, ValueError, OSError):  # not installed, or no AMENT_PREFIX_PATH
        pass
    return _REPO / "config" / "karma.yaml"


_HEADER = """\
# Parameters of the karma_memory nodes, one section per node, keyed by node name under the /** namespace
# wildcard so the same file serves namespaced robots (/robot1/long_term_memory, ...). Every value here is
# the node's declared default; change it here (or with `karma stack -p NODE.PARAM=VALUE`, or at runtime with
# `ros2 param set`, where the node validates it). Descriptions: `ros2 param describe <node> <param>`.
# Regenerate after changing a node's declarations: `karma stack --print-defaults > config/karma.yaml`.
"""


def defaults_yaml() -> str:
    """config/karma.yaml as the nodes declare it: every parameter with its default (dotted names nest)."""
    import importlib

    sections: dict[str, Any] = {}
    for node, module in NODE_MODULES.items():
        params: dict[str, Any] = {}
        for name, param in importlib.import_module(module).PARAMETERS.items():
            *groups, leaf = name.split(".")
            target = params
            for group in groups:
                target = target.setdefault(group, {})
            target[leaf] = param.default
        sections[f"/**/{node}"] = {"ros__parameters": params}
    body = "\n".join(yaml.safe_dump({k: v}, sort_keys=False, default_flow_style=False) for k, v in sections.items())
    return _HEADER + "\n" + body


def _executable(name: str) -> list[str]:
    """The node's console script (ament layout lib/<pkg>/, then PATH), or ``python -m <module>`` if not installed."""
    for candidate in (Path(sys.prefix) / "lib" / PACKAGE / name, Path(sys.prefix) / "bin" / name):
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return [str(candidate)]
    found = shutil.which(name)
    if found:
        return [found]
    return [sys.executable, "-m", NODE_MODULES[name]]


def node_command(name: str, params_files: Sequence[Path], namespace: str = "") -> list[str]:
    """The command line that starts one node with the given parameter files and namespace."""
    if name not in NODE_MODULES:
        raise ValueError(f"unknown node {name!r}; known: {list(NODE_MODULES)}")
    cmd = _executable(name) + ["--ros-args"]
    for path in params_files:
        cmd += ["--params-file", str(path)]
    if namespace.strip("/"):
        cmd += ["-r", f"__ns:=/{namespace.strip('/')}"]
    return cmd


def parse_overrides(items: Sequence[str]) -> dict[str, dict[str, Any]]:
    """``node.param=value`` strings → {node: {param: value}} (values parsed as YAML: 3, 0.5, true, text).

    >>> parse_overrides(["long_term_memory.memory_dir=/tmp/m", "short_term_memory.capacity=5"])
    {'long_term_memory': {'memory_dir': '/tmp/m'}, 'short_term_memory': {'capacity': 5}}
    """
    out: dict[str, dict[str, Any]] = {}
    for item in items:
        key, sep, raw = item.partition("=")
        node, dot, param = key.partition(".")
        if not sep or not dot or node not in NODE_MODULES or not param:
            raise ValueError(f"override {item!r} must look like NODE.PARAM=VALUE with NODE in {list(NODE_MODULES)}")
        out.setdefault(node, {})[param] = yaml.safe_load(raw) if raw.strip() else ""
    return out


def coerce_overrides(overrides: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Give whole-number values of float parameters their declared type (``fleet.pull_interval_s=1`` -> 1.0).

    ROS rejects an integer for a parameter declared as a float, and YAML reads ``1`` as an integer.
    Parameters a node does not declare are passed through unchanged (the node reports them).
    """
    import importlib

    out: dict[str, dict[str, Any]] = {}
    for node, params in overrides.items():
        try:
            declared = importlib.import_module(NODE_MODULES[node]).PARAMETERS
        except ImportError:  # no ROS here (e.g. --dry-run on a bare machine): pass through as written
            declared = {}
        out[node] = {}
        for name, value in params.items():
            default = declared[name].default if name in declared else None
            if isinstance(default, float) and isinstance(value, int) and not isinstance(value, bool):
                value = float(value)
            out[node][name] = value
    return out


def _overrides_yaml(overrides: dict[str, dict[str, Any]]) -> str:
    return yaml.safe_dump({f"/**/{node}": {"ros__parameters": params} for node, params in overrides.items()},
                          sort_keys=True)


class Stack:
    """The running node processes."""

    def __init__(self, commands: dict[str, list[str]], env: dict[str, str] | None = None) -> None:
        self.commands, self.env = commands, env
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        self.stopping = False

    def start(self) -> None:
        for name, cmd in self.commands.items():
            # own process group: a terminal's Ctrl-C reaches only us, and we forward it once
            self.procs[name] = subprocess.Popen(cmd, env=self.env, start_new_session=True)
            print(f"[karma stack] started {name} (pid {self.procs[name].pid})", flush=True)

    def stop(self, grace_s: float) -> None:
        """SIGINT every running node, wait up to ``grace_s``, then SIGKILL the rest."""
        self.stopping = True
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGINT)
        deadline = time.monotonic() + grace_s
        for name, proc in self.procs.items():
            try:
                proc.wait(timeout=max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                print(f"[karma stack] {name} did not stop within {grace_s:.0f} s; killing it", file=sys.stderr)
                proc.kill()
                proc.wait()

    def wait(self, grace_s: float) -> int:
        """Block until every node has exited; stop all when one dies on its own. Returns the exit status."""
        failed: list[str] = []
        while any(p.poll() is None for p in self.procs.values()):
            for name, proc in self.procs.items():
                code = proc.poll()
                if code is not None and code != 0 and not self.stopping and name not in failed:
                    print(f"[karma stack] {name} exited with status {code}; stopping the stack", file=sys.stderr)
                    failed.append(name)
                    self.stop(grace_s)
            time.sleep(0.1)
        for name, proc in self.procs.items():
            if proc.returncode not in (0, -signal.SIGINT) and name not in failed:
                failed.append(name)
        if failed:
            print(f"[karma stack] failed: {', '.join(f'{n} ({self.procs[n].returncode})' for n in failed)}",
                  file=sys.stderr)
        return 1 if failed else 0


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="karma stack", description=__doc__.splitlines()[0])
    parser.add_argument("--scene", default=None,
                        help="iTHOR scene for the simulator, long-term memory and planner (default with sim_bridge: "
                             "FloorPlan1; without it the memories start from their own parameters)")
    parser.add_argument("--namespace", default="", help="robot namespace, e.g. robot1 → /robot1/scene_graph")
    parser.add_argument("--config", type=Path, default=None, help="parameter file (default: config/karma.yaml)")
    parser.add_argument("--nodes", nargs="+", choices=NODES, default=None,
                        help="nodes to start (default: all but perception; all with --observation-source "
                             "perception)")
    parser.add_argument("--observation-source", choices=("metadata", "perception"), default=None,
                        help="metadata: the sim bridge publishes ground-truth observations (the paper); "
                             "perception: the perception node builds them from the camera")
    parser.add_argument("-p", "--param", action="append", default=[], metavar="NODE.PARAM=VALUE",
                        help="override one parameter (repeatable)")
    parser.add_argument("--grace", type=float, default=10.0, help="seconds a node gets to stop before it is killed")
    parser.add_argument("--dry-run", action="store_true", help="print the commands and exit")
    parser.add_argument("--print-defaults", action="store_true",
                        help="print every node's parameters with their defaults as a parameter file and exit")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``karma stack``."""
    args = _parser().parse_args(argv)
    if args.print_defaults:
        print(defaults_yaml(), end="")
        return 0
    config = (args.config or default_config()).resolve()
    if not config.is_file():
        print(f"karma stack: parameter file {config} does not exist", file=sys.stderr)
        return 2
    try:
        overrides = parse_overrides(args.param)
    except ValueError as err:
        print(f"karma stack: {err}", file=sys.stderr)
        return 2
    nodes = args.nodes or [n for n in NODES if n != "perception" or args.observation_source == "perception"]
    scene = args.scene or ("FloorPlan1" if "sim_bridge" in nodes else None)
    if scene:  # one scene for the simulator, the map the long-term memory starts from, and the planner's types
        for node in ("sim_bridge", "long_term_memory", "planner"):
            overrides.setdefault(node, {}).setdefault("scene", scene)
    if args.observation_source:
        overrides.setdefault("sim_bridge", {})["observation_source"] = args.observation_source
    overrides = coerce_overrides(overrides)
    env = dict(os.environ)
    env.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
    env.setdefault("HF_HUB_OFFLINE", "1")
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(_REPO), env.get("PYTHONPATH", "")) if p)
    with tempfile.TemporaryDirectory(prefix="karma_stack_") as tmp:
        files = [config]
        if overrides:
            files.append(Path(tmp) / "overrides.yaml")
            files[-1].write_text(_overrides_yaml(overrides))
        stack = Stack({n: node_command(n, files, args.namespace) for n in nodes}, env)
        if args.dry_run:
            for name, cmd in stack.commands.items():
                print(f"{name}: {' '.join(cmd)}")
            if overrides:  # on stderr: stdout stays one command line per node
                print(f"# {files[-1].name}:\n{files[-1].read_text()}", end="", file=sys.stderr)
            return 0

        def forward(signum: int, _frame: Any) -> None:
            print(f"[karma stack] {signal.Signals(signum).name}: stopping the nodes", flush=True)
            stack.stop(args.grace)

        previous = {s: signal.signal(s, forward) for s in (signal.SIGINT, signal.SIGTERM)}
        try:
            stack.start()
            return stack.wait(args.grace)
        finally:
            if any(p.poll() is None for p in stack.procs.values()):
                stack.stop(args.grace)
            for sig, handler in previous.items():
                signal.signal(sig, handler)


if __name__ == "__main__":
    raise SystemExit(main())
