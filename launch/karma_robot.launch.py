"""KARMA on a real robot: perception, both memories and the planner against the robot's own topics and skill action.

The robot provides an RGB-D camera with instance masks (+ labels), camera_info, the camera pose in ``map``
and an ExecuteSkill action server; remap them with the *_topic / skill_action arguments, e.g.
ros2 launch karma_memory karma_robot.launch.py namespace:=robot1 rgb_topic:=/robot1/head/color/image_raw
"""

from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument
from launch.substitutions import LaunchConfiguration, PathJoinSubstitution
from launch_ros.actions import Node
from launch_ros.substitutions import FindPackageShare

#: launch argument -> (topic the node uses, description)
REMAPS = {
    "rgb_topic": ("camera/rgb/image_raw", "colour image (rgb8/bgr8)"),
    "depth_topic": ("camera/depth/image_raw", "depth registered to the colour camera (32FC1 m or 16UC1 mm)"),
    "instances_topic": ("camera/instances/image_raw", "instance-id image (32SC1, 0 = background)"),
    "labels_topic": ("camera/instances/labels", "karma_interfaces/InstanceLabels of the instance image"),
    "camera_info_topic": ("camera/camera_info", "camera_info of the colour camera"),
    "camera_pose_topic": ("camera/pose", "PoseStamped of the camera optical frame in map"),
    "skill_action": ("execute_skill", "karma_interfaces/ExecuteSkill action server of the robot"),
}


def generate_launch_description() -> LaunchDescription:
    config = LaunchConfiguration("config")
    namespace = LaunchConfiguration("namespace")
    memory_dir = LaunchConfiguration("memory_dir")
    arguments = [
        DeclareLaunchArgument(
            "config", default_value=PathJoinSubstitution([FindPackageShare("karma_memory"), "config", "karma.yaml"]),
            description="parameter file of all nodes (keyed by node name)"),
        DeclareLaunchArgument("namespace", default_value="", description="robot namespace, e.g. robot1"),
        DeclareLaunchArgument("memory_dir", default_value="",
                              description="directory the memories load at start and save to ('' = no persistence)"),
    ] + [DeclareLaunchArgument(arg, default_value=topic, description=text) for arg, (topic, text) in REMAPS.items()]
    remappings = [(topic, LaunchConfiguration(arg)) for arg, (topic, _) in REMAPS.items()]
    nodes = [
        Node(package="karma_memory", executable="perception", name="perception", namespace=namespace,
             parameters=[config], remappings=remappings, output="screen"),
        Node(package="karma_memory", executable="long_term_memory", name="long_term_memory", namespace=namespace,
             parameters=[config, {"memory_dir": memory_dir}], output="screen"),
        Node(package="karma_memory", executable="short_term_memory", name="short_term_memory", namespace=namespace,
             parameters=[config, {"memory_dir": memory_dir}], output="screen"),
        Node(package="karma_memory", executable="planner", name="planner", namespace=namespace,
             parameters=[config], remappings=remappings, output="screen"),
    ]
    return LaunchDescription(arguments + nodes)
