"""Parameters of lfn_ros's nodes: names, defaults, descriptions, ranges, and their checks.

One table per node, :data:`PARAMETERS` (flow_node) and :data:`PLAYER_PARAMETERS`
(image_player), shared by the nodes (declaration with ParameterDescriptor through
lfn_ros.nodes.runtime.declare_parameters, validation at start-up and at runtime),
config/flow.yaml and docs/ros_api.md (tests keep them in step). No rclpy here; :func:`descriptor`
builds the rcl_interfaces message.
"""

from __future__ import annotations

import math
from typing import NamedTuple

from lfn_ros.engine.backends import BACKENDS, OCCLUSION_METHODS
from lfn_ros.ops.cascade import CASCADES
from lfn_ros.ops.refine import REFINEMENTS
from lfn_ros.precision import CHOICES as PRECISIONS


class Param(NamedTuple):
    """One node parameter: default, description, whether it can change at runtime, and range."""

    name: str
    default: object
    description: str
    runtime: bool = False
    range: tuple | None = None  # (min, max), inclusive
    choices: tuple | None = None  # the only accepted values (strings, or ints inside the range)


PARAMETERS = (
    # --- model and device (read-only: they need a new engine) ---
    Param("device", "cuda", "Inference device: 'cuda', 'cuda:N' or 'cpu'. CUDA falls back to the "
          "CPU with a warning when it is not available.", choices=("cuda", "cuda:N", "cpu")),
    Param("weights", "default", "LiteFlowNet checkpoint: 'default' = the checkpoint shipped with "
          "lfn_ros, '' = random untrained weights (flow is noise; for plumbing tests), or a file "
          "path: an lfn_ros checkpoint or the paper's published weights as downloaded "
          "(sniklaus/pytorch-liteflownet's network-default/-sintel/-kitti.pytorch, ptlflow's liteflownet-*.ckpt, mmflow's liteflownet_*.pth). "
          "A missing, corrupt or "
          "foreign file stops the node with exit status 2 and a line naming what was expected."),
    Param("backend", "auto", "Inference runtime: 'torch' (PyTorch, CPU or CUDA), 'torch-compiled' (PyTorch "
          "compiled by TorchInductor: faster, but the first frame of each resolution compiles for minutes on a "
          "small CPU; the warm-up does it at the first frame's size), "
          "'openvino' (OpenVINO, CPU "
          "only; its bf16 is the fastest CPU path but adds up to 0.1 px EPE) or 'auto' (the fastest path within 1 % "
          "of torch fp32: OpenVINO for fp32 on the CPU where it is installed, else torch).",
          choices=BACKENDS),
    Param("precision", "auto", "Inference precision: auto (bf16 where the device computes it natively: "
          "AMX/AVX512-BF16 CPUs and recent GPUs; else fp32, or fp16 on older GPUs), fp32, bf16, "
          "fp16 (CUDA only; fp32 on the CPU), or int8 (OpenVINO on the CPU: the convolutions quantised by "
          "NNCF on synthetic pairs when a resolution is first seen, about 25 s at 320x240; 1.7-2x OpenVINO f32 "
          "on an AVX2 CPU, +1.4 % mean EPE, so never chosen by auto). Reduced precision runs with "
          "channels_last; f-warp's sampling positions and the flow itself stay fp32.", choices=PRECISIONS),
    Param("finest_level", 0, "Finest pyramid level NetE runs to: 2 = the published network (flow "
          "at 1/2 resolution, upsampled), 3..6 = coarser and faster, 0 = the finest level the "
          "checkpoint was trained to (its card's recommendation). 1 is not a level of LiteFlowNet.",
          range=(0, 6), choices=(0, 2, 3, 4, 5, 6)),
    Param("scale", 1.0, "Processing resolution relative to the input image (flow is resized back "
          "and rescaled to input pixels).", range=(0.1, 2.0)),
    Param("max_width", 0, "Largest processing width in pixels (the image is scaled down further "
          "to fit); 0 = no limit.", range=(0, 16384)),
    Param("cascade", "auto", "Large motions: 'two-scale' runs the network at half the processing resolution "
          "first, warps the new frame by that flow, runs it again at full resolution for the rest and keeps, per "
          "pixel, that or the direct flow, whichever explains the images better (about twice the network's time; "
          "docs/benchmarks.md); 'none': one pass; 'auto': two-scale for lfn_ros's weights, none for the paper's "
          "published weights (they then run exactly as published) and for untrained ones.", choices=CASCADES),
    Param("adaptive_cascade", True, "With the two-scale cascade: run one pass instead while the cascade's "
          "steps are longer than the camera's period (more frames with flow and lower latency on a slow computer; "
          "large motions then as with cascade 'none'), and return to it when it fits in 0.85 of the period. "
          "False: every frame two-scale. 'flow/timing' names each frame's mode (docs/ros_api.md).", runtime=True),
    Param("refinement", "auto", "Last stage of the flow, on the host: 'variational' refines the "
          "network's flow at the input resolution (a few iterations of DIS's variational energy: sub-pixel precision "
          "and motion boundaries; mean EPE 1.39 -> 1.28 px on the evaluation data; on the host, about 7 ms at 320x240 and "
          "27 ms at 640x480 on two CPU cores), 'none' (the network's flow, upsampled: faster) or 'auto' (variational "
          "for lfn_ros's weights; none for the paper's published weights, which then run exactly as published).",
          runtime=True, choices=REFINEMENTS),
    Param("cpu_threads", 0, "CPU threads for inference (torch or OpenVINO); 0 = every core on computers "
          "of up to 4 cores (measured on 2: more frames and lower latency than one thread, for both "
          "backends), all but one above that, leaving a core for the camera driver and callbacks.",
          range=(0, 256)),
    Param("warmup", True, "Run a few dummy pairs before the first frame so the first flow is not "
          "slow (CUDA initialisation, cuDNN autotuning, allocator growth)."),
    Param("warmup_height", 0, "Warm-up image height; 0 = the size of the first frame received.",
          range=(0, 8192)),
    Param("warmup_width", 0, "Warm-up image width; 0 = the size of the first frame received.",
          range=(0, 8192)),
    # --- input ---
    Param("transport", "raw", "Input transport: 'raw' subscribes to 'image' (sensor_msgs/Image), "
          "'compressed' to 'image/compressed' (sensor_msgs/CompressedImage, JPEG or PNG).",
          choices=("raw", "compressed")),
    Param("qos_depth", 1, "Depth of the image subscription (keep last). Only the newest frame is "
          "ever processed, so 1 is enough (REP 2003 sensor data).", range=(1, 1000)),
    Param("qos_reliability", "best_effort", "Reliability of the image subscription: 'best_effort' "
          "(sensor data, REP 2003; matches reliable and best-effort cameras) or 'reliable' "
          "(matches reliable cameras only).", choices=("best_effort", "reliable")),
    Param("publish_depth", 2, "Depth of every output publisher (reliable, volatile, keep last).",
          range=(1, 1000)),
    # --- occlusion ---
    Param("occlusion_method", "auto", "How the occlusion mask is computed: 'head' (the checkpoint's "
          "occlusion head, on the forward pass only), 'check' (forward-backward consistency: a second, "
          "backward decoder pass) or 'auto' (the head where the checkpoint has one, else the check).",
          choices=OCCLUSION_METHODS),
    Param("occlusion_alpha", -1.0, "Forward-backward occlusion check (occlusion_method check): relative "
          "tolerance alpha in |f + b|^2 > alpha (|f|^2 + |b|^2) + beta. -1: the value chosen for the weights "
          "on synthetic validation (their card), else the paper's 0.01.", runtime=True, range=(-1.0, 1.0)),
    Param("occlusion_beta", -1.0, "Forward-backward occlusion check: absolute tolerance beta, pixels "
          "squared. -1: the weights' value (their card), else the paper's 0.5.", runtime=True, range=(-1.0, 100.0)),
    # --- outputs (runtime) ---
    Param("publish_flow", True, "Publish 'flow' (32FC2).", runtime=True),
    Param("publish_occlusion", True, "Compute and publish 'occlusion' (mono8, 255 = occluded). "
          "Off: the backward pass is skipped (faster).", runtime=True),
    Param("publish_color", True, "Publish 'flow/color' (rgb8), computed only while it has "
          "subscribers.", runtime=True),
    Param("publish_points", True, "Publish 'flow/points' (PointCloud2), computed only while it "
          "has subscribers.", runtime=True),
    Param("points_stride", 8, "Grid spacing of 'flow/points' in pixels.", runtime=True,
          range=(1, 1024)),
    Param("stale_frame_age", 0.5, "When the engine is slower than the camera: a frame that has "
          "waited more than this many camera periods when inference gets free gives way to the next "
          "frame, which is due within the rest of the period (fresher flow for a little idle time; "
          "docs/benchmarks.md). 1 = always compute the newest waiting frame.", runtime=True,
          range=(0.0, 1.0)),
    # --- health (runtime) ---
    Param("latency_budget_ms", 100.0, "Diagnostics WARN when the median end-to-end latency "
          "(publish time minus image stamp) over the last 10 s exceeds this; 0 = no check.",
          runtime=True, range=(0.0, 600000.0)),
    Param("stale_timeout", 5.0, "Diagnostics ERROR when no flow was produced for this many "
          "seconds after the node had produced some.", runtime=True, range=(0.1, 3600.0)),
)

#: image_player's parameters (all read at start-up).
PLAYER_ENCODINGS = ("rgb8", "bgr8", "mono8")
PLAYER_PARAMETERS = (
    Param("source", "", "Folder of images (natural order), a video file (anything OpenCV reads), a ROS 2 "
          "bag (folder with metadata.yaml, .mcap or .db3; needs rosbags), or '' for the demo sequence shipped "
          "with lfn_ros."),
    Param("rate", 10.0, "Frames per second; for a bag, the speed factor of its recorded timing (1.0 = as "
          "recorded, like ros2 bag play --rate).", range=(0.01, 10000.0)),
    Param("bag_topic", "", "For a bag: the Image or CompressedImage topic to play ('' = the bag's only image "
          "topic). Its recorded headers (stamp, frame_id) are published as they are."),
    Param("restamp", False, "For a bag: stamp each image with the time it is published instead of its "
          "recorded stamp (latency measurements)."),
    Param("frame_id", "camera", "header.frame_id of every image (a bag keeps its recorded ones)."),
    Param("camera_info", "", "A camera_info YAML (image_width, image_height, k, d, distortion_model, as "
          "camera_calibration writes and lfn_ros.data.scenes3d's sequences carry): published on 'camera_info' "
          "with every image, same header. '' = none."),
    Param("encoding", "rgb8", "Published encoding.", choices=PLAYER_ENCODINGS),
    Param("loop", False, "Start again at the end of the source (forever, unless count is reached)."),
    Param("count", 0, "Stop after this many frames; 0 = the whole source (forever with loop).",
          range=(0, 2**31 - 1)),
    Param("qos_reliability", "reliable", "Publisher reliability.", choices=("reliable", "best_effort")),
    Param("qos_depth", 5, "Publisher depth (keep last).", range=(1, 1000)),
    Param("wait_for_subscribers", 0, "Before the first frame, wait until the topic has this many "
          "subscribers.", range=(0, 1000)),
    Param("wait_timeout", 30.0, "Give up waiting for subscribers after this many seconds (exit 1).",
          range=(0.0, 86400.0)),
)

#: flow_odometry's parameters (all read at start-up; lfn_ros.odometry.OdometryConfig's fields and the frames).
ODOMETRY_PARAMETERS = (
    Param("stride", 8, "Grid spacing of the correspondences taken from the flow, pixels.", range=(1, 64)),
    Param("ransac_threshold_px", 1.0, "Epipolar distance under which a correspondence is an inlier, pixels.",
          range=(0.05, 20.0)),
    Param("min_points", 40, "Fewest non-occluded correspondences (and cheirality inliers) for an estimate.",
          range=(8, 100000)),
    Param("min_inlier_ratio", 0.4, "Smallest share of RANSAC inliers for an estimate.", range=(0.0, 1.0)),
    Param("min_parallax_px", 0.5, "Smallest median motion left after removing the rotation, pixels: below it "
          "the translation is unobservable (pure rotation, a standing camera) and no message is published.",
          range=(0.0, 100.0)),
    Param("odom_frame", "odom", "frame_id of the Odometry message (the first camera pose)."),
    Param("sync_queue", 10, "Messages kept per topic while waiting for the others with the same stamp.",
          range=(1, 1000)),
)

PARAMETER_NAMES = tuple(p.name for p in PARAMETERS)
BY_NAME = {p.name: p for p in PARAMETERS}


def descriptor(param: Param):
    """rcl_interfaces/ParameterDescriptor: description, read_only unless runtime, range."""
    from rcl_interfaces.msg import FloatingPointRange, IntegerRange, ParameterDescriptor

    result = ParameterDescriptor(
        name=param.name,
        description=param.description,
        read_only=not param.runtime,
        additional_constraints=("one of: " + ", ".join(str(c) for c in param.choices)) if param.choices else "",
    )
    if param.range is not None:
        low, high = param.range
        if isinstance(param.default, float):
            result.floating_point_range = [FloatingPointRange(from_value=float(low), to_value=float(high), step=0.0)]
        else:
            result.integer_range = [IntegerRange(from_value=int(low), to_value=int(high), step=1)]
    return result


def _device_ok(value: str) -> bool:
    device = str(value).strip().lower()
    return device in ("cpu", "cuda") or (device.startswith("cuda:") and device[5:].isdigit())


def check_value(name: str, value, table=PARAMETERS) -> str | None:
    """The problem with one parameter value (type, choices, range), or None when it is fine."""
    param = next(p for p in table if p.name == name)
    if type(value) is not type(param.default):
        return f"parameter {name} must be a {type(param.default).__name__}, got {value!r}"
    if name == "device":
        if not _device_ok(value):
            return f"parameter device must be 'cuda', 'cuda:N' or 'cpu', got '{value}'"
    elif param.choices and value not in param.choices:
        return f"parameter {name} must be one of {', '.join(str(c) for c in param.choices)}, got '{value}'"
    if param.range is not None:
        low, high = param.range
        if isinstance(value, float) and not math.isfinite(value):
            return f"parameter {name} must be finite, got {value}"
        if not low <= value <= high:
            return f"parameter {name} must be in [{low}, {high}], got {value}"
    return None


def default_cpu_threads(cpus: int | None = None) -> int:
    """What ``cpu_threads: 0`` means on a computer with ``cpus`` cores (default: this one's).

    Every core up to 4: on 2 cores, with the camera and a subscriber on the same cores, 2 threads
    beat 1 in every configuration of benchmarks/node_latency.py for torch and OpenVINO (issue 16;
    docs/benchmarks.md). Above 4 one core is left to the camera driver and the callbacks, which
    costs a small share of the inference there (not measured: no such computer here)."""
    import os

    cpus = cpus or os.cpu_count() or 1
    return cpus if cpus <= 4 else cpus - 1


def check_start_values(values: dict, table=PARAMETERS) -> str | None:
    """The first problem with a complete set of start-up values of ``table``'s node, or None."""
    for param in table:
        problem = check_value(param.name, values[param.name], table)
        if problem:
            return problem
    if table is PARAMETERS and values["warmup"] and (values["warmup_height"] == 0) != (values["warmup_width"] == 0):
        return ("warmup_height and warmup_width must both be 0 (the first frame's size) or both > 0, "
                f"got {values['warmup_height']} and {values['warmup_width']}")
    return None


def check_update(name: str, value) -> str | None:
    """The reason to refuse setting a parameter at runtime, or None to accept it."""
    if name not in BY_NAME:
        return None  # use_sim_time and others that rclpy owns
    if not BY_NAME[name].runtime:
        return f"{name} is read-only (restart the node to change it)"
    return check_value(name, value)
