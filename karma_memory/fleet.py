"""``karma fleet``: a Chroma server on loopback and several simulated robots sharing one long-term memory.

- ``karma fleet up [--robots N] [--scene FloorPlan1] [--port P]``: start the server and N in-process robots
  (KarmaAgent + embedded simulator + a ``chroma`` LTM backend each) in one scene; they split the scene's
  areas between them, look around, then run the scene's tasks; a status line per robot is printed every
  second (objects known, learnt from others, queued writes, online).
- ``karma fleet up --ros [--robots N] [-p NODE.PARAM=VALUE ...]``: the server and one ROS stack per robot
  (``karma stack --namespace robot_<i>``, every node a process) whose long_term_memory node runs with
  ``ltm_backend: chroma``; each node reports on ``/robot_<i>/long_term_memory/fleet_status``. Tasks are
  sent to a robot's planner as usual (``karma task``, the Python client); Ctrl-C stops everything.
- ``karma fleet demo [--scene FloorPlan218]``: robot A looks around the scene; robot B then runs the
  scene's tasks using objects only A has seen. The same tasks run on a robot with no shared memory, and
  the exploration B saved is printed.
- ``karma fleet server [--port P] [--dir DIR]``: only the server, until Ctrl-C (for ROS memory nodes
  started with ``ltm_backend:=chroma``).

Each simulated robot has its own copy of the scene (the embedded simulator is single-agent); the robot
that looks around does not move anything, so the copies stay identical.
"""

from __future__ import annotations

import argparse
import json
import shutil
import signal
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

__all__ = ["main", "SimRobot", "build_robot", "look_around", "run_demo", "learnt_from_others", "stack_arguments"]


@dataclass
class SimRobot:
    """One simulated robot: agent, simulator, memories and LTM backend."""

    name: str
    agent: Any
    memory: Any  # FleetMemory
    backend: Any  # LtmBackend
    controller: Any
    executor: Any
    area_ids: list[str] = field(default_factory=list)

    def close(self) -> None:
        """Flush and close the backend."""
        self.backend.close()


def _object_types(data: Any) -> list[str]:
    types = data.object_types
    return list(types() if callable(types) else types)


def build_robot(name: str, scene: str, backend: str = "chroma", port: int = 0, collection: str = "karma_fleet",
                workdir: Path | None = None, embedder: Any = None, **chroma: Any) -> SimRobot:
    """Assemble a robot as ``karma_memory.evaluation`` does, with its LTM behind ``backend``.

    The LTM starts from the scene's map (areas + immovable objects, as a prior mapping run leaves it);
    observations are stamped with the wall clock, which all robots share (their simulated clocks differ).
    """
    from karma_memory.core.agent import KarmaAgent
    from karma_memory.core.fleet import ChromaConfig, FleetMemory, make_backend
    from karma_memory.core.long_term import LtmConfig
    from karma_memory.core.planner.symbolic import SymbolicPlanner
    from karma_memory.core.short_term import ShortTermMemory, StmConfig
    from karma_memory.evaluation import scene_map
    from karma_memory.sim import EmbeddedController, SimSkillExecutor

    ltm, data = scene_map(scene, LtmConfig(), embedder)
    ltm.index  # noqa: B018 — build the type index now: chromadb clients must not be created by two threads at once
    config = None
    if backend == "chroma":
        if workdir is None:
            raise ValueError("a chroma robot needs a workdir for its outbox")
        config = ChromaConfig(robot_id=name, port=port, collection=collection,
                              outbox=str(workdir / f"{name}.outbox.sqlite3"), **chroma)
    ltm_backend = make_backend(backend, ltm, config, embedder)
    controller = EmbeddedController(scene=scene, render_images=False)
    executor = SimSkillExecutor(controller, ltm.area_positions())
    memory = FleetMemory(ltm_backend, ShortTermMemory(StmConfig(capacity=10), embedder))
    areas = list(ltm.area_positions())
    agent = KarmaAgent(executor, SymbolicPlanner(embedder), memory, _object_types(data), areas, clock=time.time)
    return SimRobot(name, agent, memory, ltm_backend, controller, executor, areas)


def look_around(robot: SimRobot, areas: Sequence[str] | None = None) -> int:
    """Visit area centres and look around (four headings, two horizons), observing everything seen.

    Returns the number of views taken. Only moves the robot: the scene stays as it was.
    """
    positions = robot.memory.ltm.area_positions()
    views = 0
    for area in areas if areas is not None else robot.area_ids:
        x, z = positions[area]
        event = robot.controller.step(action="Teleport", position={"x": x, "y": 0.9, "z": z})
        if not event.metadata.get("lastActionSuccess", True):
            continue
        for _ in range(4):
            for horizon in (0.0, 30.0):
                robot.controller.step(action="Teleport", position={"x": x, "y": 0.9, "z": z}, horizon=horizon)
                robot.agent.observe()
                views += 1
            robot.controller.step(action="RotateRight", degrees=90.0)
    return views


def learnt_from_others(robot: SimRobot) -> int:
    """Objects in the robot's graph whose newest evidence came from another robot."""
    from karma_memory.core import scene_graph as sg

    graph = robot.memory.ltm.graph
    return sum(1 for o in sg.object_ids(graph)
               if graph.nodes[o].get("robot_id") not in ("", robot.name) and graph.nodes[o].get("movable"))


def _scene_tasks(scene: str, categories: Sequence[str]) -> list[Any]:
    from karma_memory.core.tasks import load_all_suites

    return [t for t in load_all_suites() if t.scene == scene and t.category in categories]


@dataclass
class TaskRun:
    """Explorations and outcome of one task on one robot."""

    task_id: str
    category: str
    robot: str
    explorations: int
    sim_time_s: float
    success: bool
    learnt_from_others: int = 0


def run_task_on(robot: SimRobot, task: Any) -> TaskRun:
    """Run a task's sub-instructions in order; success = every sub-instruction reported success."""
    robot.agent.reset_dialogue()
    robot.agent.observe()
    explorations, sim_time, ok = 0, 0.0, True
    for subtask in task.subtasks:
        report = robot.agent.run_instruction(subtask.instruction)
        explorations += report.explorations
        sim_time += report.cost.sim_time_s
        ok = ok and report.success
    return TaskRun(task.id, task.category, robot.name, explorations, sim_time, ok)


def compare_on_task(task: Any, port: int, workdir: Path, embedder: Any, collection: str) -> tuple[TaskRun, TaskRun]:
    """Robot A looks around; robot B runs ``task`` with A's memory (fleet) and without it (single)."""
    a = build_robot("robot_a", task.scene, "chroma", port, collection, workdir, embedder)
    try:
        look_around(a)
        if not a.backend.flush(30.0):
            raise RuntimeError(f"robot A could not upload its memory: {a.backend.status().last_error}")
    finally:
        a.close()
    b = build_robot("robot_b", task.scene, "chroma", port, collection, workdir, embedder)
    try:
        b.backend.sync(30.0)
        learnt = learnt_from_others(b)
        fleet = run_task_on(b, task)
        fleet.learnt_from_others = learnt
    finally:
        b.close()
    single_robot = build_robot("robot_b_alone", task.scene, "local", embedder=embedder)
    single = run_task_on(single_robot, task)
    return single, fleet


def run_demo(scene: str, port: int, workdir: Path, categories: Sequence[str] = ("composite", "simple", "complex"),
             embedder: Any = None, say: Callable[[str], None] = print) -> dict[str, Any]:
    """The fleet demo (see the module docstring); returns the figures it printed."""
    from karma_memory.core.embedding import default_embedder
    from karma_memory.core.fleet import ChromaServer

    embedder = embedder or default_embedder()
    tasks = _scene_tasks(scene, categories)
    if not tasks:
        raise SystemExit(f"karma fleet demo: no tasks in scene {scene!r} for categories {list(categories)}")
    server = ChromaServer(workdir / "chroma", port=port).start()
    say(f"chroma server on {server.url} (data in {server.path})")
    rows = []
    try:
        for index, task in enumerate(tasks):
            say(f"\n== {task.id}: {task.instruction}")
            single, fleet = compare_on_task(task, server.port, workdir, embedder, f"demo-{index}-{scene}")
            say(f"   robot A looked around; robot B starts knowing {fleet.learnt_from_others} objects only A saw")
            say(f"   robot B alone:       {single.explorations:3d} explorations, success {single.success}")
            say(f"   robot B with fleet:  {fleet.explorations:3d} explorations, success {fleet.success}")
            rows.append((single, fleet))
    finally:
        server.stop()
    base = sum(s.explorations for s, _ in rows)
    shared = sum(f.explorations for _, f in rows)
    saved = base - shared
    reduced = saved / base if base else 0.0
    say(f"\n{'task':28s} {'alone':>6s} {'fleet':>6s} {'saved':>6s}")
    for single, fleet in rows:
        say(f"{single.task_id:28s} {single.explorations:6d} {fleet.explorations:6d} "
            f"{single.explorations - fleet.explorations:6d}")
    say(f"{'total':28s} {base:6d} {shared:6d} {saved:6d}   reduced exploration {reduced:.1%}")
    return {"scene": scene, "baseline_explorations": base, "fleet_explorations": shared, "saved": saved,
            "reduced_exploration": reduced,
            "tasks": [{"task": s.task_id, "alone": s.explorations, "fleet": f.explorations,
                       "alone_success": s.success, "fleet_success": f.success,
                       "learnt_from_others": f.learnt_from_others} for s, f in rows]}


def run_up(robots: int, scene: str, port: int, workdir: Path, duration_s: float, keep: bool,
           say: Callable[[str], None] = print) -> int:
    """``karma fleet up``: server + N robots in threads, a status table every second."""
    from karma_memory.core.embedding import default_embedder
    from karma_memory.core.fleet import ChromaServer

    embedder = default_embedder()
    server = ChromaServer(workdir / "chroma", port=port).start()
    say(f"chroma server on {server.url} (data in {server.path}); {robots} robots in {scene}")
    fleet = [build_robot(f"robot_{i}", scene, "chroma", server.port, f"fleet-{scene}", workdir, embedder)
             for i in range(robots)]
    tasks = _scene_tasks(scene, ("simple", "composite", "complex"))
    stop = threading.Event()
    progress = {r.name: "starting" for r in fleet}

    def live(robot: SimRobot, index: int) -> None:
        mine = robot.area_ids[index::robots]
        progress[robot.name] = f"looking around {len(mine)} areas"
        look_around(robot, mine)
        for task in tasks[index::robots]:
            if stop.is_set():
                break
            progress[robot.name] = f"task {task.id}"
            try:
                result = run_task_on(robot, task)
            except Exception as err:  # noqa: BLE001 — one failing task must not stop the robot's others
                progress[robot.name] = f"{task.id}: error {type(err).__name__}: {err}"
                continue
            progress[robot.name] = f"{task.id}: {result.explorations} explorations, success {result.success}"
        progress[robot.name] += " (done)"

    threads = [threading.Thread(target=live, args=(r, i), daemon=True) for i, r in enumerate(fleet)]
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    start = time.monotonic()
    for thread in threads:
        thread.start()
    try:
        while not stop.is_set():
            time.sleep(1.0)
            for robot in fleet:
                status = robot.backend.status()
                try:  # the robot's thread owns its graph: a count taken mid-update is retried next second
                    known, learnt = f"{len(robot.memory.ltm):4d}", f"{learnt_from_others(robot):3d}"
                except RuntimeError:
                    known, learnt = "   …", "  …"
                say(f"[{time.monotonic() - start:5.0f}s] {robot.name}: {known} objects, {learnt} from others, "
                    f"{status.pending:4d} queued, {'online' if status.online else 'OFFLINE'} | {progress[robot.name]}")
            done = not any(t.is_alive() for t in threads)
            if (done and not keep) or (duration_s and time.monotonic() - start >= duration_s):
                break
    finally:
        stop.set()
        for robot in fleet:
            robot.close()
        server.stop()
    return 0


def stack_arguments(robot: str, scene: str, port: int, collection: str, memory_dir: Path,
                    params: Sequence[str] = ()) -> list[str]:
    """``karma stack`` arguments of one fleet robot: its namespace, and its LTM on the shared server.

    The LTM starts from the scene's map without the scene's objects (what the robots find is what they share).
    """
    ltm = {"ltm_backend": "chroma", "fleet.port": port, "fleet.collection": collection,
           "fleet.robot_id": robot, "memory_dir": str(memory_dir), "scene_objects": "false"}
    args = ["--namespace", robot, "--scene", scene]
    for name, value in ltm.items():
        args += ["-p", f"long_term_memory.{name}={value}"]
    for item in params:
        args += ["-p", item]
    return args


def run_up_ros(robots: int, scene: str, port: int, workdir: Path, duration_s: float, params: Sequence[str],
               say: Callable[[str], None] = print) -> int:
    """``karma fleet up --ros``: the server and one ``karma stack`` process tree per robot, until Ctrl-C."""
    import subprocess

    from karma_memory.core.fleet import ChromaServer

    server = ChromaServer(workdir / "chroma", port=port).start()
    say(f"chroma server on {server.url} (data in {server.path}); {robots} ROS stacks in {scene}")
    stacks: dict[str, subprocess.Popen[bytes]] = {}
    try:
        for index in range(robots):
            robot = f"robot_{index}"
            command = [sys.executable, "-m", "karma_memory.launcher",
                       *stack_arguments(robot, scene, server.port, f"fleet-{scene}", workdir / robot, params)]
            stacks[robot] = subprocess.Popen(command, start_new_session=True)  # Ctrl-C reaches us; we forward it
            say(f"{robot}: {' '.join(command[2:])}")
        say("each robot reports on /<robot>/long_term_memory/fleet_status; Ctrl-C stops the fleet")
        start = time.monotonic()
        while all(p.poll() is None for p in stacks.values()):
            if duration_s and time.monotonic() - start >= duration_s:
                break
            time.sleep(0.5)
    except KeyboardInterrupt:
        pass
    finally:
        for proc in stacks.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGINT)
        for proc in stacks.values():
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        server.stop()
    failed = [r for r, p in stacks.items() if p.returncode not in (0, -signal.SIGINT)]
    if failed:
        say(f"stacks that failed: {', '.join(f'{r} ({stacks[r].returncode})' for r in failed)}")
    return 1 if failed else 0


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``karma fleet``."""
    parser = argparse.ArgumentParser(prog="karma fleet", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    up = sub.add_parser("up", help="start a Chroma server and N simulated robots in one scene")
    up.add_argument("--robots", type=int, default=2)
    up.add_argument("--duration", type=float, default=0.0, help="stop after this many seconds (0 = when done)")
    up.add_argument("--keep", action="store_true", help="keep running (Ctrl-C stops) after the robots are done")
    up.add_argument("--ros", action="store_true",
                    help="one ROS stack per robot (karma stack --namespace robot_<i>, LTM on the shared server)")
    up.add_argument("-p", "--param", action="append", default=[], metavar="NODE.PARAM=VALUE",
                    help="with --ros: a parameter override for every robot's stack (repeatable)")
    demo = sub.add_parser("demo", help="robot B uses what robot A saw; exploration saved vs. no shared memory")
    demo.add_argument("--categories", default="composite,simple,complex")
    demo.add_argument("--json", type=Path, default=None, help="also write the figures here")
    server = sub.add_parser("server", help="only the Chroma server, until Ctrl-C")
    for p in (up, demo, server):
        p.add_argument("--port", type=int, default=0, help="server port (0 = a free one)")
        p.add_argument("--dir", type=Path, default=None, help="working directory (default: a temporary one)")
    up.add_argument("--scene", default="FloorPlan1")
    # FloorPlan218's tasks need objects the map and the priors do not point to (FloorPlan1's priors find
    # everything at once, so a second robot has no exploration left to save there)
    demo.add_argument("--scene", default="FloorPlan218")
    args = parser.parse_args(argv)
    if args.command == "up" and not 1 <= args.robots <= 16:
        parser.error(f"--robots must be in [1, 16], got {args.robots}")
    workdir = args.dir or Path(tempfile.mkdtemp(prefix="karma-fleet-"))
    workdir.mkdir(parents=True, exist_ok=True)
    try:
        if args.command == "up" and args.ros:
            return run_up_ros(args.robots, args.scene, args.port, workdir, args.duration, args.param)
        if args.command == "up":
            return run_up(args.robots, args.scene, args.port, workdir, args.duration, args.keep)
        if args.command == "demo":
            result = run_demo(args.scene, args.port, workdir, args.categories.split(","))
            if args.json:
                args.json.parent.mkdir(parents=True, exist_ok=True)
                args.json.write_text(json.dumps(result, indent=2))
            return 0
        from karma_memory.core.fleet import ChromaServer

        with ChromaServer(workdir / "chroma", port=args.port) as running:
            print(f"chroma server on {running.url} (data in {running.path}); Ctrl-C stops it", flush=True)
            try:
                while running.running():
                    time.sleep(0.5)
            except KeyboardInterrupt:
                pass
        return 0
    finally:
        if args.dir is None:
            shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
