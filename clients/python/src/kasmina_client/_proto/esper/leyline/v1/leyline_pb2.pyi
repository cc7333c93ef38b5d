from google.protobuf import struct_pb2 as _struct_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from typing import ClassVar as _ClassVar, Iterable as _Iterable, Mapping as _Mapping, Optional as _Optional, Union as _Union

BUS_MESSAGE_TYPE_ADAPTATION_COMMAND: BusMessageType
BUS_MESSAGE_TYPE_BENCHMARK_REPORT: BusMessageType
BUS_MESSAGE_TYPE_BSDS_FAILED: BusMessageType
BUS_MESSAGE_TYPE_BSDS_ISSUED: BusMessageType
BUS_MESSAGE_TYPE_FIELD_REPORT: BusMessageType
BUS_MESSAGE_TYPE_KERNEL_CATALOG_UPDATE: BusMessageType
BUS_MESSAGE_TYPE_KERNEL_PREFETCH_ERROR: BusMessageType
BUS_MESSAGE_TYPE_KERNEL_PREFETCH_READY: BusMessageType
BUS_MESSAGE_TYPE_KERNEL_PREFETCH_REQUEST: BusMessageType
BUS_MESSAGE_TYPE_POLICY_UPDATE: BusMessageType
BUS_MESSAGE_TYPE_SYSTEM_STATE: BusMessageType
BUS_MESSAGE_TYPE_TELEMETRY: BusMessageType
BUS_MESSAGE_TYPE_UNSPECIFIED: BusMessageType
CIRCUIT_STATE_CLOSED: CircuitBreakerState
CIRCUIT_STATE_HALF_OPEN: CircuitBreakerState
CIRCUIT_STATE_OPEN: CircuitBreakerState
CIRCUIT_STATE_UNKNOWN: CircuitBreakerState
COMMAND_CIRCUIT_BREAKER: CommandType
COMMAND_EMERGENCY: CommandType
COMMAND_OPTIMIZER: CommandType
COMMAND_PAUSE: CommandType
COMMAND_ROLLBACK: CommandType
COMMAND_SEED: CommandType
COMMAND_STRUCTURAL_PRUNING: CommandType
COMMAND_UNKNOWN: CommandType
DELIVERY_GUARANTEE_AT_LEAST_ONCE: DeliveryGuarantee
DELIVERY_GUARANTEE_AT_MOST_ONCE: DeliveryGuarantee
DELIVERY_GUARANTEE_EXACTLY_ONCE: DeliveryGuarantee
DELIVERY_GUARANTEE_UNKNOWN: DeliveryGuarantee
DESCRIPTOR: _descriptor.FileDescriptor
HEALTH_STATUS_CRITICAL: HealthStatus
HEALTH_STATUS_DEGRADED: HealthStatus
HEALTH_STATUS_HEALTHY: HealthStatus
HEALTH_STATUS_UNHEALTHY: HealthStatus
HEALTH_STATUS_UNKNOWN: HealthStatus
MESSAGE_PRIORITY_CRITICAL: MessagePriority
MESSAGE_PRIORITY_HIGH: MessagePriority
MESSAGE_PRIORITY_LOW: MessagePriority
MESSAGE_PRIORITY_NORMAL: MessagePriority
MESSAGE_PRIORITY_UNSPECIFIED: MessagePriority
SEED_GATE_G0_SANITY: SeedLifecycleGate
SEED_GATE_G1_GRADIENT_HEALTH: SeedLifecycleGate
SEED_GATE_G2_STABILITY: SeedLifecycleGate
SEED_GATE_G3_INTERFACE: SeedLifecycleGate
SEED_GATE_G4_SYSTEM_IMPACT: SeedLifecycleGate
SEED_GATE_G5_RESET: SeedLifecycleGate
SEED_GATE_UNKNOWN: SeedLifecycleGate
SEED_OP_CANCEL: SeedOperation
SEED_OP_CULL: SeedOperation
SEED_OP_EVALUATE: SeedOperation
SEED_OP_FINE_TUNE: SeedOperation
SEED_OP_FOSSILIZE: SeedOperation
SEED_OP_GERMINATE: SeedOperation
SEED_OP_STABILIZE: SeedOperation
SEED_OP_START_GRAFTING: SeedOperation
SEED_OP_START_TRAINING: SeedOperation
SEED_OP_UNKNOWN: SeedOperation
SEED_STAGE_BLENDING: SeedLifecycleStage
SEED_STAGE_CULLED: SeedLifecycleStage
SEED_STAGE_DORMANT: SeedLifecycleStage
SEED_STAGE_EMBARGOED: SeedLifecycleStage
SEED_STAGE_FOSSILIZED: SeedLifecycleStage
SEED_STAGE_GERMINATED: SeedLifecycleStage
SEED_STAGE_PROBATIONARY: SeedLifecycleStage
SEED_STAGE_RESETTING: SeedLifecycleStage
SEED_STAGE_SHADOWING: SeedLifecycleStage
SEED_STAGE_TERMINATED: SeedLifecycleStage
SEED_STAGE_TRAINING: SeedLifecycleStage
SEED_STAGE_UNKNOWN: SeedLifecycleStage
TELEMETRY_LEVEL_CRITICAL: TelemetryLevel
TELEMETRY_LEVEL_ERROR: TelemetryLevel
TELEMETRY_LEVEL_INFO: TelemetryLevel
TELEMETRY_LEVEL_UNSPECIFIED: TelemetryLevel
TELEMETRY_LEVEL_WARNING: TelemetryLevel

class AdaptationCommand(_message.Message):
    __slots__ = ["annotations", "circuit_breaker", "command_id", "command_type", "execution_deadline_ms", "issued_at", "issued_by", "optimizer_adjustment", "rollback_payload", "seed_operation", "target_seed_id", "version"]
    class AnnotationsEntry(_message.Message):
        __slots__ = ["key", "value"]
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    ANNOTATIONS_FIELD_NUMBER: _ClassVar[int]
    CIRCUIT_BREAKER_FIELD_NUMBER: _ClassVar[int]
    COMMAND_ID_FIELD_NUMBER: _ClassVar[int]
    COMMAND_TYPE_FIELD_NUMBER: _ClassVar[int]
    EXECUTION_DEADLINE_MS_FIELD_NUMBER: _ClassVar[int]
    ISSUED_AT_FIELD_NUMBER: _ClassVar[int]
    ISSUED_BY_FIELD_NUMBER: _ClassVar[int]
    OPTIMIZER_ADJUSTMENT_FIELD_NUMBER: _ClassVar[int]
    ROLLBACK_PAYLOAD_FIELD_NUMBER: _ClassVar[int]
    SEED_OPERATION_FIELD_NUMBER: _ClassVar[int]
    TARGET_SEED_ID_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    annotations: _containers.ScalarMap[str, str]
    circuit_breaker: CommandCircuitBreaker
    command_id: str
    command_type: CommandType
    execution_deadline_ms: int
    issued_at: _timestamp_pb2.Timestamp
    issued_by: str
    optimizer_adjustment: CommandOptimizerAdjustment
    rollback_payload: _struct_pb2.Struct
    seed_operation: CommandSeedOperation
    target_seed_id: str
    version: int
    def __init__(self, version: _Optional[int] = ..., command_id: _Optional[str] = ..., command_type: _Optional[_Union[CommandType, str]] = ..., target_seed_id: _Optional[str] = ..., execution_deadline_ms: _Optional[int] = ..., issued_at: _Optional[_Union[_timestamp_pb2.Timestamp, _Mapping]] = ..., issued_by: _Optional[str] = ..., seed_operation: _Optional[_Union[CommandSeedOperation, _Mapping]] = ..., optimizer_adjustment: _Optional[_Union[CommandOptimizerAdjustment, _Mapping]] = ..., circuit_breaker: _Optional[_Union[CommandCircuitBreaker, _Mapping]] = ..., rollback_payload: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ..., annotations: _Optional[_Mapping[str, str]] = ...) -> None: ...

class BusEnvelope(_message.Message):
    __slots__ = ["attributes", "message_type", "payload"]
    class AttributesEntry(_message.Message):
        __slots__ = ["key", "value"]
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    ATTRIBUTES_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_TYPE_FIELD_NUMBER: _ClassVar[int]
    PAYLOAD_FIELD_NUMBER: _ClassVar[int]
    attributes: _containers.ScalarMap[str, str]
    message_type: BusMessageType
    payload: bytes
    def __init__(self, message_type: _Optional[_Union[BusMessageType, str]] = ..., payload: _Optional[bytes] = ..., attributes: _Optional[_Mapping[str, str]] = ...) -> None: ...

class CommandCircuitBreaker(_message.Message):
    __slots__ = ["desired_state", "rationale"]
    DESIRED_STATE_FIELD_NUMBER: _ClassVar[int]
    RATIONALE_FIELD_NUMBER: _ClassVar[int]
    desired_state: CircuitBreakerState
    rationale: str
    def __init__(self, desired_state: _Optional[_Union[CircuitBreakerState, str]] = ..., rationale: _Optional[str] = ...) -> None: ...

class CommandOptimizerAdjustment(_message.Message):
    __slots__ = ["hyperparameters", "optimizer_id"]
    class HyperparametersEntry(_message.Message):
        __slots__ = ["key", "value"]
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: float
        def __init__(self, key: _Optional[str] = ..., value: _Optional[float] = ...) -> None: ...
    HYPERPARAMETERS_FIELD_NUMBER: _ClassVar[int]
    OPTIMIZER_ID_FIELD_NUMBER: _ClassVar[int]
    hyperparameters: _containers.ScalarMap[str, float]
    optimizer_id: str
    def __init__(self, optimizer_id: _Optional[str] = ..., hyperparameters: _Optional[_Mapping[str, float]] = ...) -> None: ...

class CommandSeedOperation(_message.Message):
    __slots__ = ["blueprint_id", "operation", "parameters"]
    class ParametersEntry(_message.Message):
        __slots__ = ["key", "value"]
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: float
        def __init__(self, key: _Optional[str] = ..., value: _Optional[float] = ...) -> None: ...
    BLUEPRINT_ID_FIELD_NUMBER: _ClassVar[int]
    OPERATION_FIELD_NUMBER: _ClassVar[int]
    PARAMETERS_FIELD_NUMBER: _ClassVar[int]
    blueprint_id: str
    operation: SeedOperation
    parameters: _containers.ScalarMap[str, float]
    def __init__(self, operation: _Optional[_Union[SeedOperation, str]] = ..., blueprint_id: _Optional[str] = ..., parameters: _Optional[_Mapping[str, float]] = ...) -> None: ...

class KernelArtifactError(_message.Message):
    __slots__ = ["blueprint_id", "reason", "request_id"]
    BLUEPRINT_ID_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    blueprint_id: str
    reason: str
    request_id: str
    def __init__(self, request_id: _Optional[str] = ..., blueprint_id: _Optional[str] = ..., reason: _Optional[str] = ...) -> None: ...

class KernelArtifactReady(_message.Message):
    __slots__ = ["artifact_ref", "blueprint_id", "checksum", "guard_digest", "prewarm_p50_ms", "prewarm_p95_ms", "request_id"]
    ARTIFACT_REF_FIELD_NUMBER: _ClassVar[int]
    BLUEPRINT_ID_FIELD_NUMBER: _ClassVar[int]
    CHECKSUM_FIELD_NUMBER: _ClassVar[int]
    GUARD_DIGEST_FIELD_NUMBER: _ClassVar[int]
    PREWARM_P50_MS_FIELD_NUMBER: _ClassVar[int]
    PREWARM_P95_MS_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    artifact_ref: str
    blueprint_id: str
    checksum: str
    guard_digest: str
    prewarm_p50_ms: float
    prewarm_p95_ms: float
    request_id: str
    def __init__(self, request_id: _Optional[str] = ..., blueprint_id: _Optional[str] = ..., artifact_ref: _Optional[str] = ..., checksum: _Optional[str] = ..., guard_digest: _Optional[str] = ..., prewarm_p50_ms: _Optional[float] = ..., prewarm_p95_ms: _Optional[float] = ...) -> None: ...

class KernelCatalogUpdate(_message.Message):
    __slots__ = ["artifact_ref", "blueprint_id", "checksum", "compile_ms", "guard_digest", "prewarm_ms"]
    ARTIFACT_REF_FIELD_NUMBER: _ClassVar[int]
    BLUEPRINT_ID_FIELD_NUMBER: _ClassVar[int]
    CHECKSUM_FIELD_NUMBER: _ClassVar[int]
    COMPILE_MS_FIELD_NUMBER: _ClassVar[int]
    GUARD_DIGEST_FIELD_NUMBER: _ClassVar[int]
    PREWARM_MS_FIELD_NUMBER: _ClassVar[int]
    artifact_ref: str
    blueprint_id: str
    checksum: str
    compile_ms: float
    guard_digest: str
    prewarm_ms: float
    def __init__(self, blueprint_id: _Optional[str] = ..., artifact_ref: _Optional[str] = ..., checksum: _Optional[str] = ..., guard_digest: _Optional[str] = ..., compile_ms: _Optional[float] = ..., prewarm_ms: _Optional[float] = ...) -> None: ...

class KernelPrefetchRequest(_message.Message):
    __slots__ = ["blueprint_id", "issued_at", "request_id", "training_run_id"]
    BLUEPRINT_ID_FIELD_NUMBER: _ClassVar[int]
    ISSUED_AT_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    TRAINING_RUN_ID_FIELD_NUMBER: _ClassVar[int]
    blueprint_id: str
    issued_at: _timestamp_pb2.Timestamp
    request_id: str
    training_run_id: str
    def __init__(self, request_id: _Optional[str] = ..., blueprint_id: _Optional[str] = ..., training_run_id: _Optional[str] = ..., issued_at: _Optional[_Union[_timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class MetricPoint(_message.Message):
    __slots__ = ["attributes", "name", "unit", "value"]
    class AttributesEntry(_message.Message):
        __slots__ = ["key", "value"]
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    ATTRIBUTES_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    UNIT_FIELD_NUMBER: _ClassVar[int]
    VALUE_FIELD_NUMBER: _ClassVar[int]
    attributes: _containers.ScalarMap[str, str]
    name: str
    unit: str
    value: float
    def __init__(self, name: _Optional[str] = ..., value: _Optional[float] = ..., unit: _Optional[str] = ..., attributes: _Optional[_Mapping[str, str]] = ...) -> None: ...

class SeedState(_message.Message):
    __slots__ = ["age_epochs", "gradient_norm", "layer_depth", "learning_rate", "metrics", "risk_score", "seed_id", "stage"]
    class MetricsEntry(_message.Message):
        __slots__ = ["key", "value"]
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: float
        def __init__(self, key: _Optional[str] = ..., value: _Optional[float] = ...) -> None: ...
    AGE_EPOCHS_FIELD_NUMBER: _ClassVar[int]
    GRADIENT_NORM_FIELD_NUMBER: _ClassVar[int]
    LAYER_DEPTH_FIELD_NUMBER: _ClassVar[int]
    LEARNING_RATE_FIELD_NUMBER: _ClassVar[int]
    METRICS_FIELD_NUMBER: _ClassVar[int]
    RISK_SCORE_FIELD_NUMBER: _ClassVar[int]
    SEED_ID_FIELD_NUMBER: _ClassVar[int]
    STAGE_FIELD_NUMBER: _ClassVar[int]
    age_epochs: int
    gradient_norm: float
    layer_depth: int
    learning_rate: float
    metrics: _containers.ScalarMap[str, float]
    risk_score: float
    seed_id: str
    stage: SeedLifecycleStage
    def __init__(self, seed_id: _Optional[str] = ..., stage: _Optional[_Union[SeedLifecycleStage, str]] = ..., gradient_norm: _Optional[float] = ..., learning_rate: _Optional[float] = ..., layer_depth: _Optional[int] = ..., metrics: _Optional[_Mapping[str, float]] = ..., age_epochs: _Optional[int] = ..., risk_score: _Optional[float] = ...) -> None: ...

class SystemHealth(_message.Message):
    __slots__ = ["indicators", "status", "summary"]
    class IndicatorsEntry(_message.Message):
        __slots__ = ["key", "value"]
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    INDICATORS_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    SUMMARY_FIELD_NUMBER: _ClassVar[int]
    indicators: _containers.ScalarMap[str, str]
    status: HealthStatus
    summary: str
    def __init__(self, status: _Optional[_Union[HealthStatus, str]] = ..., summary: _Optional[str] = ..., indicators: _Optional[_Mapping[str, str]] = ...) -> None: ...

class TelemetryEvent(_message.Message):
    __slots__ = ["attributes", "description", "event_id", "level"]
    class AttributesEntry(_message.Message):
        __slots__ = ["key", "value"]
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    ATTRIBUTES_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    EVENT_ID_FIELD_NUMBER: _ClassVar[int]
    LEVEL_FIELD_NUMBER: _ClassVar[int]
    attributes: _containers.ScalarMap[str, str]
    description: str
    event_id: str
    level: TelemetryLevel
    def __init__(self, event_id: _Optional[str] = ..., description: _Optional[str] = ..., level: _Optional[_Union[TelemetryLevel, str]] = ..., attributes: _Optional[_Mapping[str, str]] = ...) -> None: ...

class TelemetryPacket(_message.Message):
    __slots__ = ["events", "level", "metrics", "packet_id", "source_subsystem", "spans", "system_health", "timestamp"]
    EVENTS_FIELD_NUMBER: _ClassVar[int]
    LEVEL_FIELD_NUMBER: _ClassVar[int]
    METRICS_FIELD_NUMBER: _ClassVar[int]
    PACKET_ID_FIELD_NUMBER: _ClassVar[int]
    SOURCE_SUBSYSTEM_FIELD_NUMBER: _ClassVar[int]
    SPANS_FIELD_NUMBER: _ClassVar[int]
    SYSTEM_HEALTH_FIELD_NUMBER: _ClassVar[int]
    TIMESTAMP_FIELD_NUMBER: _ClassVar[int]
    events: _containers.RepeatedCompositeFieldContainer[TelemetryEvent]
    level: TelemetryLevel
    metrics: _containers.RepeatedCompositeFieldContainer[MetricPoint]
    packet_id: str
    source_subsystem: str
    spans: _containers.RepeatedCompositeFieldContainer[TraceSpan]
    system_health: SystemHealth
    timestamp: _timestamp_pb2.Timestamp
    def __init__(self, packet_id: _Optional[str] = ..., timestamp: _Optional[_Union[_timestamp_pb2.Timestamp, _Mapping]] = ..., source_subsystem: _Optional[str] = ..., level: _Optional[_Union[TelemetryLevel, str]] = ..., metrics: _Optional[_Iterable[_Union[MetricPoint, _Mapping]]] = ..., events: _Optional[_Iterable[_Union[TelemetryEvent, _Mapping]]] = ..., spans: _Optional[_Iterable[_Union[TraceSpan, _Mapping]]] = ..., system_health: _Optional[_Union[SystemHealth, _Mapping]] = ...) -> None: ...

class TraceSpan(_message.Message):
    __slots__ = ["attributes", "end_time", "name", "parent_span_id", "span_id", "start_time"]
    class AttributesEntry(_message.Message):
        __slots__ = ["key", "value"]
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    ATTRIBUTES_FIELD_NUMBER: _ClassVar[int]
    END_TIME_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    PARENT_SPAN_ID_FIELD_NUMBER: _ClassVar[int]
    SPAN_ID_FIELD_NUMBER: _ClassVar[int]
    START_TIME_FIELD_NUMBER: _ClassVar[int]
    attributes: _containers.ScalarMap[str, str]
    end_time: _timestamp_pb2.Timestamp
    name: str
    parent_span_id: str
    span_id: str
    start_time: _timestamp_pb2.Timestamp
    def __init__(self, span_id: _Optional[str] = ..., parent_span_id: _Optional[str] = ..., name: _Optional[str] = ..., start_time: _Optional[_Union[_timestamp_pb2.Timestamp, _Mapping]] = ..., end_time: _Optional[_Union[_timestamp_pb2.Timestamp, _Mapping]] = ..., attributes: _Optional[_Mapping[str, str]] = ...) -> None: ...

class SeedLifecycleStage(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = []

class SeedLifecycleGate(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = []

class HealthStatus(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = []

class CircuitBreakerState(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = []

class CommandType(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = []

class SeedOperation(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = []

class MessagePriority(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = []

class TelemetryLevel(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = []

class DeliveryGuarantee(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = []

class BusMessageType(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = []
