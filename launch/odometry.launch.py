"""Camera -> flow_node -> flow_odometry: visual odometry from lfn_ros's flow (issue 19).

    ros2 launch lfn_ros odometry.launch.py image:=/camera/image_raw camera_info:=/camera/camera_info
    ros2 launch lfn_ros odometry.launch.py sequence:=/tmp/street device:=cpu    # a rendered sequence

A rendered sequence comes from ``python -m lfn_ros.data.scenes3d /tmp/street street forward 40``
(frames, camera_info.yaml, exact flows and poses); with ``sequence`` set, image_player plays it on
the image topic with its camera_info. The flow node's parameters come from ``params_file``
(config/flow.yaml), with ``device`` and ``weights`` on top; flow_odometry's are its defaults
(lfn_ros/nodes/parameters.py, ODOMETRY_PARAMETERS).
"""

from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument
from launch.conditions import IfCondition
from launch.substitutions import LaunchConfiguration, PathJoinSubstitution, PythonExpression
from launch_ros.actions import Node
from launch_ros.parameter_descriptions import ParameterValue
from launch_ros.substitutions import FindPackageShare


def generate_launch_description():
    share = FindPackageShare("lfn_ros")
    image, camera_info, sequence = LaunchConfiguration("image"), LaunchConfiguration("camera_info"), LaunchConfiguration("sequence")

    arguments = [
        DeclareLaunchArgument("image", default_value="image",
                              description="Camera topic (sensor_msgs/Image) the flow node reads."),
        DeclareLaunchArgument("camera_info", default_value="camera_info",
                              description="The camera's sensor_msgs/CameraInfo topic: flow_odometry's intrinsics."),
        DeclareLaunchArgument("sequence", default_value="",
                              description="A folder of frames with camera_info.yaml (a rendered sequence of "
                                          "lfn_ros.data.scenes3d) to play as the camera; '' = use a real camera."),
        DeclareLaunchArgument("rate", default_value="5.0",
                              description="Frames per second of the played sequence."),
        DeclareLaunchArgument("params_file", default_value=PathJoinSubstitution([share, "config", "flow.yaml"]),
                              description="YAML file with the flow node's parameters."),
        DeclareLaunchArgument("device", default_value="cuda",
                              description="Inference device of the flow node: cuda, cuda:N or cpu."),
        DeclareLaunchArgument("weights", default_value="default",
                              description="LiteFlowNet checkpoint of the flow node: 'default' (shipped), a file path, "
                                          "or a published network-*.pytorch."),
    ]
    playing = IfCondition(PythonExpression(["'", sequence, "' != ''"]))

    player = Node(
        package="lfn_ros", executable="image_player", name="image_player", output="screen",
        parameters=[{"source": sequence, "rate": ParameterValue(LaunchConfiguration("rate"), value_type=float),
                     "camera_info": PathJoinSubstitution([sequence, "camera_info.yaml"]), "frame_id": "camera"}],
        remappings=[("image", image), ("camera_info", camera_info)],
        condition=playing,
    )
    flow_node = Node(
        package="lfn_ros", executable="flow_node", name="flow_node", output="screen", emulate_tty=True,
        parameters=[LaunchConfiguration("params_file"),
                    {"device": ParameterValue(LaunchConfiguration("device"), value_type=str),
                     "weights": ParameterValue(LaunchConfiguration("weights"), value_type=str)}],
        remappings=[("image", image)],
    )
    odometry = Node(
        package="lfn_ros", executable="flow_odometry", name="flow_odometry", output="screen",
        remappings=[("camera_info", camera_info)],
    )
    return LaunchDescription(arguments + [player, flow_node, odometry])
