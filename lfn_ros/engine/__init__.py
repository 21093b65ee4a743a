"""The inference engine: LiteFlowNet on a stream of frames or on pairs, with no ROS imports.

    session        FlowEngine (stage / run / wait, infer), resolve_device
    types          FlowResult (the one flow + occlusion result), Staged, FrameState, errors, STAGES
    torch_backend  NetC and NetE in PyTorch (CPU or CUDA, any precision)
    openvino_backend  NetC and NetE compiled by OpenVINO (CPU, fp32 or bf16)
    clock          stage timing (CUDA events or host clock)
"""

from .backends import BACKENDS, OCCLUSION_METHODS, resolve_backend, resolve_occlusion_method
from .pending import PendingFlow
from .session import FlowEngine, resolve_device
from .types import STAGES, EngineError, FlowOutOfMemory, FlowResult, FrameState, Staged, processing_size

__all__ = ["FlowEngine", "PendingFlow", "FlowResult", "FrameState", "Staged", "EngineError", "FlowOutOfMemory",
           "STAGES", "BACKENDS", "OCCLUSION_METHODS", "processing_size", "resolve_backend", "resolve_device",
           "resolve_occlusion_method"]
