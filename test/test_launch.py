"""Launch files checked statically, config/karma.yaml against the nodes, and `karma stack` as a process runner."""

from __future__ import annotations

import ast
import importlib
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from karma_memory.launcher import NODE_MODULES, node_command, parse_overrides
from ros_fixtures import ROOT, StackProcess

LAUNCH_FILES = sorted((ROOT / "launch").glob("*.launch.py"))
CONFIG = ROOT / "config" / "karma.yaml"


def _console_scripts() -> dict[str, str]:
    tree = ast.parse((ROOT / "setup.py").read_text())
    nodes = next(n.value for n in ast.walk(tree) if isinstance(n, ast.Assign)
                 and any(isinstance(t, ast.Name) and t.id == "NODES" for t in n.targets))
    return ast.literal_eval(nodes)


def _declared(node: str) -> dict:
    return importlib.import_module(NODE_MODULES[node]).PARAMETERS


def _flatten(prefix: str, values: dict) -> dict:
    out = {}
    for key, value in values.items():
        name = f"{prefix}{key}"
        out.update(_flatten(f"{name}.", value) if isinstance(value, dict) else {name: value})
    return out


def _node_calls(path: Path) -> list[ast.Call]:
    tree = ast.parse(path.read_text())
    return [n for n in ast.walk(tree) if isinstance(n, ast.Call) and getattr(n.func, "id", "") == "Node"]


def _keyword(call: ast.Call, name: str) -> ast.expr | None:
    return next((k.value for k in call.keywords if k.arg == name), None)


def test_there_are_two_launch_files() -> None:
    assert [p.name for p in LAUNCH_FILES] == ["karma_robot.launch.py", "karma_sim.launch.py"]


@pytest.mark.parametrize("path", LAUNCH_FILES, ids=lambda p: p.name)
def test_launch_file_names_real_executables_files_and_parameters(path: Path) -> None:
    tree = ast.parse(path.read_text())
    assert any(isinstance(n, ast.FunctionDef) and n.name == "generate_launch_description" for n in tree.body)
    scripts = _console_scripts()
    calls = _node_calls(path)
    assert calls, "no launch_ros Node actions"
    for call in calls:
        executable = ast.literal_eval(_keyword(call, "executable"))
        assert ast.literal_eval(_keyword(call, "package")) == "karma_memory"
        assert executable in scripts, f"{executable} is not a console_script in setup.py"
        assert ast.literal_eval(_keyword(call, "name")) == executable  # config/karma.yaml is keyed by node name
        assert _keyword(call, "namespace") is not None
        params = _keyword(call, "parameters")
        assert isinstance(params, ast.List) and isinstance(params.elts[0], ast.Name)  # the YAML file first
        for extra in params.elts[1:]:
            assert isinstance(extra, ast.Dict)
            for key in extra.keys:
                assert ast.literal_eval(key) in _declared(executable), f"{executable} does not declare {key.value}"
    # every DeclareLaunchArgument has a description; every file path it builds exists in the package
    for call in (n for n in ast.walk(tree) if isinstance(n, ast.Call) and getattr(n.func, "id", "") ==
                 "DeclareLaunchArgument"):
        assert _keyword(call, "description") is not None
    for join in (n for n in ast.walk(tree) if isinstance(n, ast.Call) and getattr(n.func, "id", "") ==
                 "PathJoinSubstitution"):
        (parts,) = join.args
        package, *rest = parts.elts
        assert ast.literal_eval(package.args[0]) == "karma_memory"
        assert (ROOT.joinpath(*[ast.literal_eval(p) for p in rest])).is_file()


def test_config_mirrors_every_node_declaration() -> None:
    config = yaml.safe_load(CONFIG.read_text())
    assert set(config) == {f"/**/{n}" for n in NODE_MODULES}
    for node in NODE_MODULES:
        section = config[f"/**/{node}"]
        assert list(section) == ["ros__parameters"]
        values = _flatten("", section["ros__parameters"])
        declared = _declared(node)
        assert set(values) == set(declared), f"{node}: yaml and declarations differ"
        for name, value in values.items():
            default = declared[name].default
            assert type(value) is type(default) and value == default, f"{node}.{name}: {value!r} != {default!r}"


def test_node_modules_match_setup_entry_points() -> None:
    assert {n: f"{m}:main" for n, m in NODE_MODULES.items()} == _console_scripts()


def test_launcher_builds_ros_command_lines(tmp_path: Path) -> None:
    cmd = node_command("long_term_memory", [CONFIG, tmp_path / "o.yaml"], "/robot1/")
    assert cmd[cmd.index("--ros-args"):] == ["--ros-args", "--params-file", str(CONFIG), "--params-file",
                                             str(tmp_path / "o.yaml"), "-r", "__ns:=/robot1"]
    assert parse_overrides(["planner.use_stm=false", "sim_bridge.rate_hz=0.5"]) == {
        "planner": {"use_stm": False}, "sim_bridge": {"rate_hz": 0.5}}
    for bad in ["planner.use_stm", "nobody.x=1", "planner=1"]:
        with pytest.raises(ValueError, match="NODE.PARAM=VALUE"):
            parse_overrides([bad])
    with pytest.raises(ValueError, match="unknown node"):
        node_command("teleop", [CONFIG])
    out = subprocess.run([sys.executable, "-m", "karma_memory.launcher", "--dry-run", "--namespace", "r2",
                          "-p", "short_term_memory.capacity=4"], cwd=ROOT, capture_output=True, text=True, check=True)
    lines = out.stdout.splitlines()
    assert [line.split(":")[0] for line in lines] == ["sim_bridge", "long_term_memory", "short_term_memory", "planner"]
    assert all("__ns:=/r2" in line and str(CONFIG) in line for line in lines)
    bad = subprocess.run([sys.executable, "-m", "karma_memory.launcher", "--config", str(tmp_path / "none.yaml")],
                         cwd=ROOT, capture_output=True, text=True)
    assert bad.returncode == 2 and "does not exist" in bad.stderr


def test_launcher_stops_the_stack_and_fails_when_a_node_crashes(tmp_path: Path) -> None:
    stack = StackProcess(["--nodes", "long_term_memory", "short_term_memory", "-p", "short_term_memory.capacity=0",
                          "-p", "long_term_memory.warm_up=false", "--grace", "5"], tmp_path / "stack.log")
    try:
        status = stack.proc.wait(timeout=30)
    finally:
        stack.stop()
    text = stack.text()
    assert status == 1, text
    assert re.search(r"cannot start: .*capacity", text) and "short_term_memory exited with status 1" in text


def test_launcher_forwards_sigterm_and_nodes_flush_their_memories(tmp_path: Path) -> None:
    memory = tmp_path / "memory"
    stack = StackProcess(["--nodes", "long_term_memory", "short_term_memory", "--scene", "FloorPlan1",
                          "-p", f"long_term_memory.memory_dir={memory}", "-p", f"short_term_memory.memory_dir={memory}",
                          "-p", "long_term_memory.warm_up=false", "-p", "short_term_memory.warm_up=false"],
                         tmp_path / "stack.log")
    try:
        assert stack.wait_for_log("long-term memory ready", 30) and stack.wait_for_log("short-term memory ready", 30)
        pids = stack.child_pids()
        stack.proc.send_signal(signal.SIGTERM)
        status = stack.proc.wait(timeout=30)
    finally:
        stack.stop()
    assert status == 0, stack.text()
    assert (memory / "scene_graph.json").is_file()  # the scene-built graph was saved at shutdown
    time.sleep(0.1)
    for pid in pids:
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)
