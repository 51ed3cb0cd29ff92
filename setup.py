"""ament_python package karma_memory."""

from glob import glob

from setuptools import find_packages, setup

PACKAGE = "karma_memory"

NODES = {
    "sim_bridge": "karma_memory.nodes.sim_bridge_node:main",
    "perception": "karma_memory.nodes.perception_node:main",
    "long_term_memory": "karma_memory.nodes.long_term_memory_node:main",
    "short_term_memory": "karma_memory.nodes.short_term_memory_node:main",
    "planner": "karma_memory.nodes.planner_node:main",
}

setup(
    name=PACKAGE,
    version="0.1.0",
    packages=find_packages(include=[PACKAGE, f"{PACKAGE}.*"]),
    package_data={PACKAGE: ["py.typed", "sim/data/*", "sim/tasks/*.yaml"]},
    data_files=[
        ("share/ament_index/resource_index/packages", [f"resource/{PACKAGE}"]),
        (f"share/{PACKAGE}", ["package.xml"]),
        (f"share/{PACKAGE}/launch", glob("launch/*.launch.py")),
        (f"share/{PACKAGE}/config", glob("config/*.yaml") + glob("config/*.rviz")),
        (f"share/{PACKAGE}/urdf", glob("urdf/*")),
    ],
    install_requires=["setuptools"],
    zip_safe=False,
    maintainer="KARMA memory developers",
    description="Long- and short-term memory for embodied robots on ROS 2 (KARMA).",
    license="Apache-2.0",
    python_requires=">=3.10",
    entry_points={
        "console_scripts": [f"{name} = {target}" for name, target in NODES.items()]
        + ["karma = karma_memory.cli:main"],
    },
)
