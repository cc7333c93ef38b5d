from kasmina_client._proto.esper.leyline.v1 import leyline_pb2 as _leyline_pb2
from google.protobuf import struct_pb2 as _struct_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from typing import ClassVar as _ClassVar, Iterable as _Iterable, Mapping as _Mapping, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor
GRADIENT_SIDE_HOST: GradientSide
GRADIENT_SIDE_SEED: GradientSide
GRADIENT_SIDE_UNSPECIFIED: GradientSide

class AdvanceAlphaRequest(_message.Message):
    __slots__ = ["seed_id", "steps"]
    SEED_ID_FIELD_NUMBER: _ClassVar[int]
    STEPS_FIELD_NUMBER: _ClassVar[int]
    seed_id: str
    steps: int
    def __init__(self, seed_id: _Optional[str] = ..., steps: _Optional[int] = ...) -> None: ...

class AdvanceAlphaResponse(_message.Message):
    __slots__ = ["alpha", "alpha_steps", "stage"]
    ALPHA_FIELD_NUMBER: _ClassVar[int]
    ALPHA_STEPS_FIELD_NUMBER: _ClassVar[int]
    STAGE_FIELD_NUMBER: _ClassVar[int]
    alpha: float
    alpha_steps: int
    stage: _leyline_pb2.SeedLifecycleStage
    def __init__(self, alpha: _Optional[float] = ..., alpha_steps: _Optional[int] = ..., stage: _Optional[_Union[_leyline_pb2.SeedLifecycleStage, str]] = ...) -> None: ...

class ApplyCommandRequest(_message.Message):
    __slots__ = ["command"]
    COMMAND_FIELD_NUMBER: _ClassVar[int]
    command: _leyline_pb2.AdaptationCommand
    def __init__(self, command: _Optional[_Union[_leyline_pb2.AdaptationCommand, _Mapping]] = ...) -> None: ...

class ApplyCommandResponse(_message.Message):
    __slots__ = ["events", "seed"]
    EVENTS_FIELD_NUMBER: _ClassVar[int]
    SEED_FIELD_NUMBER: _ClassVar[int]
    events: _containers.RepeatedCompositeFieldContainer[_leyline_pb2.TelemetryEvent]
    seed: _leyline_pb2.SeedState
    def __init__(self, events: _Optional[_Iterable[_Union[_leyline_pb2.TelemetryEvent, _Mapping]]] = ..., seed: _Optional[_Union[_leyline_pb2.SeedState, _Mapping]] = ...) -> None: ...

class CacheStats(_message.Message):
    __slots__ = ["capacity", "evictions", "hit_rate", "size"]
    CAPACITY_FIELD_NUMBER: _ClassVar[int]
    EVICTIONS_FIELD_NUMBER: _ClassVar[int]
    HIT_RATE_FIELD_NUMBER: _ClassVar[int]
    SIZE_FIELD_NUMBER: _ClassVar[int]
    capacity: int
    evictions: int
    hit_rate: float
    size: int
    def __init__(self, size: _Optional[int] = ..., hit_rate: _Optional[float] = ..., evictions: _Optional[int] = ..., capacity: _Optional[int] = ...) -> None: ...

class CloseTrainingRunRequest(_message.Message):
    __slots__ = ["training_run_id"]
    TRAINING_RUN_ID_FIELD_NUMBER: _ClassVar[int]
    training_run_id: str
    def __init__(self, training_run_id: _Optional[str] = ...) -> None: ...

class CloseTrainingRunResponse(_message.Message):
    __slots__ = ["seeds_retired"]
    SEEDS_RETIRED_FIELD_NUMBER: _ClassVar[int]
    seeds_retired: int
    def __init__(self, seeds_retired: _Optional[int] = ...) -> None: ...

class DrainTelemetryRequest(_message.Message):
    __slots__ = ["max_packets"]
    MAX_PACKETS_FIELD_NUMBER: _ClassVar[int]
    max_packets: int
    def __init__(self, max_packets: _Optional[int] = ...) -> None: ...

class DrainTelemetryResponse(_message.Message):
    __slots__ = ["dropped_packets", "packets", "remaining_packets"]
    DROPPED_PACKETS_FIELD_NUMBER: _ClassVar[int]
    PACKETS_FIELD_NUMBER: _ClassVar[int]
    REMAINING_PACKETS_FIELD_NUMBER: _ClassVar[int]
    dropped_packets: int
    packets: _containers.RepeatedCompositeFieldContainer[_leyline_pb2.TelemetryPacket]
    remaining_packets: int
    def __init__(self, packets: _Optional[_Iterable[_Union[_leyline_pb2.TelemetryPacket, _Mapping]]] = ..., dropped_packets: _Optional[int] = ..., remaining_packets: _Optional[int] = ...) -> None: ...

class ExportSeedStatesRequest(_message.Message):
    __slots__ = []
    def __init__(self) -> None: ...

class ExportSeedStatesResponse(_message.Message):
    __slots__ = ["current_epoch", "seeds"]
    CURRENT_EPOCH_FIELD_NUMBER: _ClassVar[int]
    SEEDS_FIELD_NUMBER: _ClassVar[int]
    current_epoch: int
    seeds: _containers.RepeatedCompositeFieldContainer[_leyline_pb2.SeedState]
    def __init__(self, seeds: _Optional[_Iterable[_Union[_leyline_pb2.SeedState, _Mapping]]] = ..., current_epoch: _Optional[int] = ...) -> None: ...

class FinalizeStepRequest(_message.Message):
    __slots__ = ["step_index"]
    STEP_INDEX_FIELD_NUMBER: _ClassVar[int]
    step_index: int
    def __init__(self, step_index: _Optional[int] = ...) -> None: ...

class FinalizeStepResponse(_message.Message):
    __slots__ = ["packets_emitted"]
    PACKETS_EMITTED_FIELD_NUMBER: _ClassVar[int]
    packets_emitted: int
    def __init__(self, packets_emitted: _Optional[int] = ...) -> None: ...

class GcReport(_message.Message):
    __slots__ = ["gc_counter", "gc_epoch", "kernel_cache_expired", "ran", "skipped_reason", "telemetry_cache_expired"]
    GC_COUNTER_FIELD_NUMBER: _ClassVar[int]
    GC_EPOCH_FIELD_NUMBER: _ClassVar[int]
    KERNEL_CACHE_EXPIRED_FIELD_NUMBER: _ClassVar[int]
    RAN_FIELD_NUMBER: _ClassVar[int]
    SKIPPED_REASON_FIELD_NUMBER: _ClassVar[int]
    TELEMETRY_CACHE_EXPIRED_FIELD_NUMBER: _ClassVar[int]
    gc_counter: int
    gc_epoch: int
    kernel_cache_expired: int
    ran: bool
    skipped_reason: str
    telemetry_cache_expired: int
    def __init__(self, ran: bool = ..., skipped_reason: _Optional[str] = ..., kernel_cache_expired: _Optional[int] = ..., telemetry_cache_expired: _Optional[int] = ..., gc_counter: _Optional[int] = ..., gc_epoch: _Optional[int] = ...) -> None: ...

class GetIsolationStatsRequest(_message.Message):
    __slots__ = ["seed_id"]
    SEED_ID_FIELD_NUMBER: _ClassVar[int]
    seed_id: str
    def __init__(self, seed_id: _Optional[str] = ...) -> None: ...

class GetIsolationStatsResponse(_message.Message):
    __slots__ = ["report"]
    REPORT_FIELD_NUMBER: _ClassVar[int]
    report: IsolationReport
    def __init__(self, report: _Optional[_Union[IsolationReport, _Mapping]] = ...) -> None: ...

class GetProjectionRequest(_message.Message):
    __slots__ = ["parameters", "seed_id"]
    PARAMETERS_FIELD_NUMBER: _ClassVar[int]
    SEED_ID_FIELD_NUMBER: _ClassVar[int]
    parameters: _containers.RepeatedCompositeFieldContainer[ParameterExtent]
    seed_id: str
    def __init__(self, seed_id: _Optional[str] = ..., parameters: _Optional[_Iterable[_Union[ParameterExtent, _Mapping]]] = ...) -> None: ...

class GetProjectionResponse(_message.Message):
    __slots__ = ["projections", "samples"]
    PROJECTIONS_FIELD_NUMBER: _ClassVar[int]
    SAMPLES_FIELD_NUMBER: _ClassVar[int]
    projections: _containers.RepeatedCompositeFieldContainer[ParameterProjection]
    samples: int
    def __init__(self, projections: _Optional[_Iterable[_Union[ParameterProjection, _Mapping]]] = ..., samples: _Optional[int] = ...) -> None: ...

class GetRollbackPayloadRequest(_message.Message):
    __slots__ = ["seed_id"]
    SEED_ID_FIELD_NUMBER: _ClassVar[int]
    seed_id: str
    def __init__(self, seed_id: _Optional[str] = ...) -> None: ...

class GetRollbackPayloadResponse(_message.Message):
    __slots__ = ["payload"]
    PAYLOAD_FIELD_NUMBER: _ClassVar[int]
    payload: _struct_pb2.Struct
    def __init__(self, payload: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ...) -> None: ...

class GetStatusRequest(_message.Message):
    __slots__ = []
    def __init__(self) -> None: ...

class GetStatusResponse(_message.Message):
    __slots__ = ["current_epoch", "gpu_cache", "isolation_backend", "isolation_breaker", "kernel_breaker", "kernel_cache", "prefetch_issue", "seeds", "state_store", "telemetry_cache", "training_run", "training_runs", "version"]
    CURRENT_EPOCH_FIELD_NUMBER: _ClassVar[int]
    GPU_CACHE_FIELD_NUMBER: _ClassVar[int]
    ISOLATION_BACKEND_FIELD_NUMBER: _ClassVar[int]
    ISOLATION_BREAKER_FIELD_NUMBER: _ClassVar[int]
    KERNEL_BREAKER_FIELD_NUMBER: _ClassVar[int]
    KERNEL_CACHE_FIELD_NUMBER: _ClassVar[int]
    PREFETCH_ISSUE_FIELD_NUMBER: _ClassVar[int]
    SEEDS_FIELD_NUMBER: _ClassVar[int]
    STATE_STORE_FIELD_NUMBER: _ClassVar[int]
    TELEMETRY_CACHE_FIELD_NUMBER: _ClassVar[int]
    TRAINING_RUNS_FIELD_NUMBER: _ClassVar[int]
    TRAINING_RUN_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    current_epoch: int
    gpu_cache: CacheStats
    isolation_backend: str
    isolation_breaker: _leyline_pb2.CircuitBreakerState
    kernel_breaker: _leyline_pb2.CircuitBreakerState
    kernel_cache: CacheStats
    prefetch_issue: str
    seeds: int
    state_store: str
    telemetry_cache: CacheStats
    training_run: str
    training_runs: int
    version: str
    def __init__(self, isolation_backend: _Optional[str] = ..., seeds: _Optional[int] = ..., current_epoch: _Optional[int] = ..., kernel_breaker: _Optional[_Union[_leyline_pb2.CircuitBreakerState, str]] = ..., isolation_breaker: _Optional[_Union[_leyline_pb2.CircuitBreakerState, str]] = ..., prefetch_issue: _Optional[str] = ..., version: _Optional[str] = ..., kernel_cache: _Optional[_Union[CacheStats, _Mapping]] = ..., telemetry_cache: _Optional[_Union[CacheStats, _Mapping]] = ..., gpu_cache: _Optional[_Union[CacheStats, _Mapping]] = ..., training_runs: _Optional[int] = ..., training_run: _Optional[str] = ..., state_store: _Optional[str] = ...) -> None: ...

class GradientSketch(_message.Message):
    __slots__ = ["numel", "param_key", "sampled_values", "side", "sum_squares"]
    NUMEL_FIELD_NUMBER: _ClassVar[int]
    PARAM_KEY_FIELD_NUMBER: _ClassVar[int]
    SAMPLED_VALUES_FIELD_NUMBER: _ClassVar[int]
    SIDE_FIELD_NUMBER: _ClassVar[int]
    SUM_SQUARES_FIELD_NUMBER: _ClassVar[int]
    numel: int
    param_key: str
    sampled_values: bytes
    side: GradientSide
    sum_squares: float
    def __init__(self, param_key: _Optional[str] = ..., side: _Optional[_Union[GradientSide, str]] = ..., numel: _Optional[int] = ..., sum_squares: _Optional[float] = ..., sampled_values: _Optional[bytes] = ...) -> None: ...

class IsolationReport(_message.Message):
    __slots__ = ["backend", "collecting", "dot_product", "dot_standard_error", "elements_processed", "host_norm", "isolated", "seed_id", "seed_norm", "seed_violations"]
    BACKEND_FIELD_NUMBER: _ClassVar[int]
    COLLECTING_FIELD_NUMBER: _ClassVar[int]
    DOT_PRODUCT_FIELD_NUMBER: _ClassVar[int]
    DOT_STANDARD_ERROR_FIELD_NUMBER: _ClassVar[int]
    ELEMENTS_PROCESSED_FIELD_NUMBER: _ClassVar[int]
    HOST_NORM_FIELD_NUMBER: _ClassVar[int]
    ISOLATED_FIELD_NUMBER: _ClassVar[int]
    SEED_ID_FIELD_NUMBER: _ClassVar[int]
    SEED_NORM_FIELD_NUMBER: _ClassVar[int]
    SEED_VIOLATIONS_FIELD_NUMBER: _ClassVar[int]
    backend: str
    collecting: bool
    dot_product: float
    dot_standard_error: float
    elements_processed: int
    host_norm: float
    isolated: bool
    seed_id: str
    seed_norm: float
    seed_violations: int
    def __init__(self, seed_id: _Optional[str] = ..., host_norm: _Optional[float] = ..., seed_norm: _Optional[float] = ..., dot_product: _Optional[float] = ..., isolated: bool = ..., seed_violations: _Optional[int] = ..., collecting: bool = ..., backend: _Optional[str] = ..., elements_processed: _Optional[int] = ..., dot_standard_error: _Optional[float] = ...) -> None: ...

class ListTrainingRunsRequest(_message.Message):
    __slots__ = []
    def __init__(self) -> None: ...

class ListTrainingRunsResponse(_message.Message):
    __slots__ = ["runs"]
    RUNS_FIELD_NUMBER: _ClassVar[int]
    runs: _containers.RepeatedCompositeFieldContainer[TrainingRunSummary]
    def __init__(self, runs: _Optional[_Iterable[_Union[TrainingRunSummary, _Mapping]]] = ...) -> None: ...

class ParameterExtent(_message.Message):
    __slots__ = ["numel", "param_key"]
    NUMEL_FIELD_NUMBER: _ClassVar[int]
    PARAM_KEY_FIELD_NUMBER: _ClassVar[int]
    numel: int
    param_key: str
    def __init__(self, param_key: _Optional[str] = ..., numel: _Optional[int] = ...) -> None: ...

class ParameterProjection(_message.Message):
    __slots__ = ["indices", "numel", "param_key", "scale"]
    INDICES_FIELD_NUMBER: _ClassVar[int]
    NUMEL_FIELD_NUMBER: _ClassVar[int]
    PARAM_KEY_FIELD_NUMBER: _ClassVar[int]
    SCALE_FIELD_NUMBER: _ClassVar[int]
    indices: _containers.RepeatedScalarFieldContainer[int]
    numel: int
    param_key: str
    scale: float
    def __init__(self, param_key: _Optional[str] = ..., numel: _Optional[int] = ..., indices: _Optional[_Iterable[int]] = ..., scale: _Optional[float] = ...) -> None: ...

class ParameterSpec(_message.Message):
    __slots__ = ["element_bytes", "key", "shape", "trainable"]
    ELEMENT_BYTES_FIELD_NUMBER: _ClassVar[int]
    KEY_FIELD_NUMBER: _ClassVar[int]
    SHAPE_FIELD_NUMBER: _ClassVar[int]
    TRAINABLE_FIELD_NUMBER: _ClassVar[int]
    element_bytes: int
    key: str
    shape: _containers.RepeatedScalarFieldContainer[int]
    trainable: bool
    def __init__(self, key: _Optional[str] = ..., shape: _Optional[_Iterable[int]] = ..., trainable: bool = ..., element_bytes: _Optional[int] = ...) -> None: ...

class RecordIsolationViolationRequest(_message.Message):
    __slots__ = ["seed_id"]
    SEED_ID_FIELD_NUMBER: _ClassVar[int]
    seed_id: str
    def __init__(self, seed_id: _Optional[str] = ...) -> None: ...

class RecordIsolationViolationResponse(_message.Message):
    __slots__ = ["isolation_breaker", "total_violations"]
    ISOLATION_BREAKER_FIELD_NUMBER: _ClassVar[int]
    TOTAL_VIOLATIONS_FIELD_NUMBER: _ClassVar[int]
    isolation_breaker: _leyline_pb2.CircuitBreakerState
    total_violations: int
    def __init__(self, total_violations: _Optional[int] = ..., isolation_breaker: _Optional[_Union[_leyline_pb2.CircuitBreakerState, str]] = ...) -> None: ...

class RegisterHostRequest(_message.Message):
    __slots__ = ["parameters"]
    PARAMETERS_FIELD_NUMBER: _ClassVar[int]
    parameters: _containers.RepeatedCompositeFieldContainer[ParameterSpec]
    def __init__(self, parameters: _Optional[_Iterable[_Union[ParameterSpec, _Mapping]]] = ...) -> None: ...

class RegisterHostResponse(_message.Message):
    __slots__ = ["parameter_count"]
    PARAMETER_COUNT_FIELD_NUMBER: _ClassVar[int]
    parameter_count: int
    def __init__(self, parameter_count: _Optional[int] = ...) -> None: ...

class RegisterTeacherRequest(_message.Message):
    __slots__ = ["buffers", "parameters"]
    BUFFERS_FIELD_NUMBER: _ClassVar[int]
    PARAMETERS_FIELD_NUMBER: _ClassVar[int]
    buffers: _containers.RepeatedCompositeFieldContainer[ParameterSpec]
    parameters: _containers.RepeatedCompositeFieldContainer[ParameterSpec]
    def __init__(self, parameters: _Optional[_Iterable[_Union[ParameterSpec, _Mapping]]] = ..., buffers: _Optional[_Iterable[_Union[ParameterSpec, _Mapping]]] = ...) -> None: ...

class RegisterTeacherResponse(_message.Message):
    __slots__ = ["budget_gb", "memory_gb", "over_budget"]
    BUDGET_GB_FIELD_NUMBER: _ClassVar[int]
    MEMORY_GB_FIELD_NUMBER: _ClassVar[int]
    OVER_BUDGET_FIELD_NUMBER: _ClassVar[int]
    budget_gb: float
    memory_gb: float
    over_budget: bool
    def __init__(self, memory_gb: _Optional[float] = ..., budget_gb: _Optional[float] = ..., over_budget: bool = ...) -> None: ...

class ReportGradientSketchRequest(_message.Message):
    __slots__ = ["seed_id", "sketches"]
    SEED_ID_FIELD_NUMBER: _ClassVar[int]
    SKETCHES_FIELD_NUMBER: _ClassVar[int]
    seed_id: str
    sketches: _containers.RepeatedCompositeFieldContainer[GradientSketch]
    def __init__(self, seed_id: _Optional[str] = ..., sketches: _Optional[_Iterable[_Union[GradientSketch, _Mapping]]] = ...) -> None: ...

class ReportGradientSketchResponse(_message.Message):
    __slots__ = ["report"]
    REPORT_FIELD_NUMBER: _ClassVar[int]
    report: IsolationReport
    def __init__(self, report: _Optional[_Union[IsolationReport, _Mapping]] = ...) -> None: ...

class ReportGradientsRequest(_message.Message):
    __slots__ = ["numel", "offset", "param_key", "seed_id", "side", "values"]
    NUMEL_FIELD_NUMBER: _ClassVar[int]
    OFFSET_FIELD_NUMBER: _ClassVar[int]
    PARAM_KEY_FIELD_NUMBER: _ClassVar[int]
    SEED_ID_FIELD_NUMBER: _ClassVar[int]
    SIDE_FIELD_NUMBER: _ClassVar[int]
    VALUES_FIELD_NUMBER: _ClassVar[int]
    numel: int
    offset: int
    param_key: str
    seed_id: str
    side: GradientSide
    values: bytes
    def __init__(self, seed_id: _Optional[str] = ..., param_key: _Optional[str] = ..., side: _Optional[_Union[GradientSide, str]] = ..., numel: _Optional[int] = ..., offset: _Optional[int] = ..., values: _Optional[bytes] = ...) -> None: ...

class ReportGradientsResponse(_message.Message):
    __slots__ = ["report"]
    REPORT_FIELD_NUMBER: _ClassVar[int]
    report: IsolationReport
    def __init__(self, report: _Optional[_Union[IsolationReport, _Mapping]] = ...) -> None: ...

class TrainingRunSummary(_message.Message):
    __slots__ = ["current_epoch", "isolation_breaker", "last_activity_unix_ms", "seeds", "training_run_id", "violations"]
    CURRENT_EPOCH_FIELD_NUMBER: _ClassVar[int]
    ISOLATION_BREAKER_FIELD_NUMBER: _ClassVar[int]
    LAST_ACTIVITY_UNIX_MS_FIELD_NUMBER: _ClassVar[int]
    SEEDS_FIELD_NUMBER: _ClassVar[int]
    TRAINING_RUN_ID_FIELD_NUMBER: _ClassVar[int]
    VIOLATIONS_FIELD_NUMBER: _ClassVar[int]
    current_epoch: int
    isolation_breaker: _leyline_pb2.CircuitBreakerState
    last_activity_unix_ms: int
    seeds: int
    training_run_id: str
    violations: int
    def __init__(self, training_run_id: _Optional[str] = ..., seeds: _Optional[int] = ..., current_epoch: _Optional[int] = ..., last_activity_unix_ms: _Optional[int] = ..., isolation_breaker: _Optional[_Union[_leyline_pb2.CircuitBreakerState, str]] = ..., violations: _Optional[int] = ...) -> None: ...

class UpdateEpochRequest(_message.Message):
    __slots__ = ["epoch"]
    EPOCH_FIELD_NUMBER: _ClassVar[int]
    epoch: int
    def __init__(self, epoch: _Optional[int] = ...) -> None: ...

class UpdateEpochResponse(_message.Message):
    __slots__ = ["gc"]
    GC_FIELD_NUMBER: _ClassVar[int]
    gc: GcReport
    def __init__(self, gc: _Optional[_Union[GcReport, _Mapping]] = ...) -> None: ...

class WatchTelemetryRequest(_message.Message):
    __slots__ = []
    def __init__(self) -> None: ...

class WatchTelemetryResponse(_message.Message):
    __slots__ = ["packet"]
    PACKET_FIELD_NUMBER: _ClassVar[int]
    packet: _leyline_pb2.TelemetryPacket
    def __init__(self, packet: _Optional[_Union[_leyline_pb2.TelemetryPacket, _Mapping]] = ...) -> None: ...

class GradientSide(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = []
