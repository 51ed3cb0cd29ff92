"""The full KARMA stack on the embedded simulator: sim bridge, memories, planner (and perception on request).

ros2 launch karma_memory karma_sim.launch.py scene:=FloorPlan1 namespace:=robot1 memory_dir:=~/.karma/robot1
(On pip-only machines without launch_ros, `karma stack` starts the same nodes from the same config.)
"""

from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument
from launch.conditions import LaunchConfigurationEquals
from launch.substitutions import LaunchConfiguration, PathJoinSubstitution
from launch_ros.actions import Node
from launch_ros.substitutions import FindPackageShare


def generate_launch_description() -> LaunchDescription:
    config = LaunchConfiguration("config")
    namespace = LaunchConfiguration("namespace")
    scene = LaunchConfiguration("scene")
    memory_dir = LaunchConfiguration("memory_dir")
    source = LaunchConfiguration("observation_source")
    arguments = [
        DeclareLaunchArgument(
            "config", default_value=PathJoinSubstitution([FindPackageShare("karma_memory"), "config", "karma.yaml"]),
            description="parameter file of all nodes (keyed by node name)"),
        DeclareLaunchArgument("namespace", default_value="", description="robot namespace, e.g. robot1"),
        DeclareLaunchArgument("scene", default_value="FloorPlan1",
                              description="iTHOR scene for the simulator, the long-term memory's map and the planner"),
        DeclareLaunchArgument("memory_dir", default_value="",
                              description="directory the memories load at start and save to ('' = no persistence)"),
        DeclareLaunchArgument("observation_source", default_value="metadata", choices=["metadata", "perception"],
                              description="metadata: ground-truth observations from the simulator (the paper); "
                                          "perception: the perception node builds them from the camera"),
    ]
    nodes = [
        Node(package="karma_memory", executable="sim_bridge", name="sim_bridge", namespace=namespace,
             parameters=[config, {"scene": scene, "observation_source": source}], output="screen"),
        Node(package="karma_memory", executable="perception", name="perception", namespace=namespace,
             parameters=[config], output="screen",
             condition=LaunchConfigurationEquals("observation_source", "perception")),
        Node(package="karma_memory", executable="long_term_memory", name="long_term_memory", namespace=namespace,
             parameters=[config, {"scene": scene, "memory_dir": memory_dir}], output="screen"),
        Node(package="karma_memory", executable="short_term_memory", name="short_term_memory", namespace=namespace,
             parameters=[config, {"memory_dir": memory_dir}], output="screen"),
        Node(package="karma_memory", executable="planner", name="planner", namespace=namespace,
             parameters=[config, {"scene": scene}], output="screen"),
    ]
    return LaunchDescription(arguments + nodes)
