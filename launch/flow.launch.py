"""Start the lfn_ros flow node (and optionally a demo camera and rviz2).

    ros2 launch lfn_ros flow.launch.py
    ros2 launch lfn_ros flow.launch.py image:=/camera/image_raw device:=cuda:0
    ros2 launch lfn_ros flow.launch.py use_player:=true rviz:=true      # demo sequence + rviz
    ros2 launch lfn_ros flow.launch.py params_file:=/path/my_flow.yaml weights:=/path/ckpt.pt

Parameters come from `params_file` (default: config/flow.yaml of this package); the `device`
and `weights` arguments are applied on top of it (they always win, so their defaults match the
file's defaults).
"""

from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument
from launch.conditions import IfCondition
from launch.substitutions import LaunchConfiguration, PathJoinSubstitution
from launch_ros.actions import Node
from launch_ros.parameter_descriptions import ParameterValue
from launch_ros.substitutions import FindPackageShare


def generate_launch_description():
    share = FindPackageShare("lfn_ros")
    image = LaunchConfiguration("image")

    arguments = [
        DeclareLaunchArgument(
            "image", default_value="image",
            description="Camera topic to compute flow on (sensor_msgs/Image); with "
                        "transport 'compressed' the node reads <image>/compressed."),
        DeclareLaunchArgument(
            "params_file", default_value=PathJoinSubstitution([share, "config", "flow.yaml"]),
            description="YAML file with the flow node's parameters (/**: ros__parameters:)."),
        DeclareLaunchArgument(
            "device", default_value="cuda",
            description="Inference device: cuda, cuda:N or cpu (cuda falls back to the CPU with a "
                        "warning). Overrides the parameters file."),
        DeclareLaunchArgument(
            "weights", default_value="default",
            description="LiteFlowNet checkpoint: 'default' (shipped), a file path (an lfn_ros "
                        "checkpoint or the paper's published network-*.pytorch), or '' for "
                        "untrained weights. Overrides the parameters file."),
        DeclareLaunchArgument(
            "use_player", default_value="false",
            description="Also start image_player publishing the shipped demo sequence on the "
                        "image topic, looping."),
        DeclareLaunchArgument(
            "rviz", default_value="false",
            description="Also start rviz2 with config/flow.rviz (camera, flow colour, occlusion)."),
    ]

    flow_node = Node(
        package="lfn_ros",
        executable="flow_node",
        name="flow_node",
        output="screen",
        emulate_tty=True,
        parameters=[
            LaunchConfiguration("params_file"),
            {
                # value_type=str: "" and paths stay strings (not parsed as YAML).
                "device": ParameterValue(LaunchConfiguration("device"), value_type=str),
                "weights": ParameterValue(LaunchConfiguration("weights"), value_type=str),
            },
        ],
        remappings=[
            ("image", image),
            ("image/compressed", [image, "/compressed"]),
        ],
    )

    player = Node(
        package="lfn_ros",
        executable="image_player",
        name="image_player",
        output="screen",
        parameters=[{"loop": True, "rate": 10.0, "frame_id": "camera"}],
        remappings=[("image", image)],
        condition=IfCondition(LaunchConfiguration("use_player")),
    )

    rviz = Node(
        package="rviz2",
        executable="rviz2",
        name="rviz2",
        output="screen",
        arguments=["-d", PathJoinSubstitution([share, "config", "flow.rviz"])],
        condition=IfCondition(LaunchConfiguration("rviz")),
    )

    return LaunchDescription(arguments + [flow_node, player, rviz])
