"""Launch the dkp_slam front-end node.

    ros2 launch dkp_slam frontend.launch.py image:=/camera/image_raw \\
        camera_info:=/camera/camera_info namespace:=vo use_sim_time:=false \\
        params_file:=/path/to/my_frontend.yaml

Arguments:
    image: image topic (sensor_msgs/Image); with ``node.image_transport: compressed`` in the
        parameters file the node reads ``<image>/compressed`` instead.
    camera_info: CameraInfo topic.
    namespace: namespace of the node (outputs are ``/<namespace>/frontend/...``).
    use_sim_time: use /clock (bag replay).
    params_file: ROS 2 parameters file; default: the installed config/frontend.yaml.
    log_level: debug, info, warn, error.
    dds_profile: Fast DDS XML profile for every process this launch starts (the node, and a
        camera driver included after it), through FASTRTPS_DEFAULT_PROFILES_FILE (Fast DDS 2.x)
        and FASTDDS_DEFAULT_PROFILES_FILE (3.x); default: the installed
        config/fastdds_frontend.xml, which delivers large images over shared memory
        (docs/ROS.md, "Frame delivery"); empty: leave the environment as it is.
"""

from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, SetEnvironmentVariable
from launch.conditions import LaunchConfigurationNotEquals
from launch.substitutions import LaunchConfiguration, PathJoinSubstitution
from launch_ros.actions import Node
from launch_ros.parameter_descriptions import ParameterValue
from launch_ros.substitutions import FindPackageShare


def generate_launch_description() -> LaunchDescription:
    image = LaunchConfiguration("image")
    camera_info = LaunchConfiguration("camera_info")
    params_file = LaunchConfiguration("params_file")
    use_sim_time = LaunchConfiguration("use_sim_time")
    dds_profile = LaunchConfiguration("dds_profile")
    return LaunchDescription([
        DeclareLaunchArgument("image", default_value="image",
                              description="image topic (sensor_msgs/Image)"),
        DeclareLaunchArgument("camera_info", default_value="camera_info",
                              description="camera info topic (sensor_msgs/CameraInfo)"),
        DeclareLaunchArgument("namespace", default_value="",
                              description="namespace of the node"),
        DeclareLaunchArgument("use_sim_time", default_value="false",
                              description="use the /clock topic (bag replay)"),
        DeclareLaunchArgument(
            "params_file",
            default_value=PathJoinSubstitution([FindPackageShare("dkp_slam"), "config",
                                                "frontend.yaml"]),
            description="ROS 2 parameters file of the front-end"),
        DeclareLaunchArgument("log_level", default_value="info",
                              description="log level: debug, info, warn, error"),
        DeclareLaunchArgument(
            "dds_profile",
            default_value=PathJoinSubstitution([FindPackageShare("dkp_slam"), "config",
                                                "fastdds_frontend.xml"]),
            description="Fast DDS XML profile for the processes of this launch; empty: none"),
        *(SetEnvironmentVariable(variable, dds_profile,
                                 condition=LaunchConfigurationNotEquals("dds_profile", ""))
          for variable in ("FASTRTPS_DEFAULT_PROFILES_FILE", "FASTDDS_DEFAULT_PROFILES_FILE")),
        Node(
            package="dkp_slam",
            executable="frontend_node",
            name="frontend",
            namespace=LaunchConfiguration("namespace"),
            output="screen",
            emulate_tty=True,
            parameters=[params_file,
                        {"use_sim_time": ParameterValue(use_sim_time, value_type=bool)}],
            remappings=[
                ("image", image),
                ("image/compressed", [image, "/compressed"]),
                ("camera_info", camera_info),
            ],
            arguments=["--ros-args", "--log-level", LaunchConfiguration("log_level")],
        ),
    ])
