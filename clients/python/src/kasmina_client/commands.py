"""Builders for every AdaptationCommand type (spec §5), so no caller assembles one by hand.

Each returns an unsigned command; ``KasminaClient.apply_command`` fills its id and time and signs it.
"""
from __future__ import annotations

from typing import Any, Mapping, Optional

from google.protobuf import struct_pb2

from ._proto.esper.leyline.v1 import leyline_pb2 as leyline

ISSUED_BY = "kasmina-client"


def _command(
    command_type: "leyline.CommandType",
    *,
    target_seed_id: str = "",
    annotations: Optional[Mapping[str, str]] = None,
    command_id: str = "",
    issued_by: str = ISSUED_BY,
) -> leyline.AdaptationCommand:
    command = leyline.AdaptationCommand(
        version=1, command_id=command_id, command_type=command_type, target_seed_id=target_seed_id, issued_by=issued_by
    )
    for key, value in (annotations or {}).items():
        command.annotations[key] = value
    return command


def seed_operation(
    seed_id: str,
    operation: "leyline.SeedOperation",
    *,
    blueprint_id: str = "",
    parameters: Optional[Mapping[str, float]] = None,
    annotations: Optional[Mapping[str, str]] = None,
    command_id: str = "",
    issued_by: str = ISSUED_BY,
) -> leyline.AdaptationCommand:
    """COMMAND_SEED with a ``seed_operation`` payload (``operation`` is a ``leyline.SeedOperation``)."""
    command = _command(
        leyline.COMMAND_SEED, target_seed_id=seed_id, annotations=annotations, command_id=command_id, issued_by=issued_by
    )
    command.seed_operation.operation = operation
    command.seed_operation.blueprint_id = blueprint_id
    for key, value in (parameters or {}).items():
        command.seed_operation.parameters[key] = value
    return command


def germinate(seed_id: str, blueprint_id: str, **options: Any) -> leyline.AdaptationCommand:
    """Graft a seed with ``blueprint_id`` (gate G0, then G1; TRAINING under driven pacing)."""
    return seed_operation(seed_id, leyline.SEED_OP_GERMINATE, blueprint_id=blueprint_id, **options)


def start_training(seed_id: str, **options: Any) -> leyline.AdaptationCommand:
    return seed_operation(seed_id, leyline.SEED_OP_START_TRAINING, **options)


def start_grafting(seed_id: str, **options: Any) -> leyline.AdaptationCommand:
    """TRAINING → BLENDING behind G2."""
    return seed_operation(seed_id, leyline.SEED_OP_START_GRAFTING, **options)


def stabilize(seed_id: str, **options: Any) -> leyline.AdaptationCommand:
    """BLENDING → SHADOWING behind G3."""
    return seed_operation(seed_id, leyline.SEED_OP_STABILIZE, **options)


def evaluate(seed_id: str, **options: Any) -> leyline.AdaptationCommand:
    """SHADOWING → PROBATIONARY behind G4."""
    return seed_operation(seed_id, leyline.SEED_OP_EVALUATE, **options)


def fine_tune(seed_id: str, **options: Any) -> leyline.AdaptationCommand:
    return seed_operation(seed_id, leyline.SEED_OP_FINE_TUNE, **options)


def fossilize(seed_id: str, **options: Any) -> leyline.AdaptationCommand:
    """PROBATIONARY → FOSSILIZED."""
    return seed_operation(seed_id, leyline.SEED_OP_FOSSILIZE, **options)


def cull(seed_id: str, **options: Any) -> leyline.AdaptationCommand:
    """Retire the seed (a rollback record is kept)."""
    return seed_operation(seed_id, leyline.SEED_OP_CULL, **options)


def cancel(seed_id: str, **options: Any) -> leyline.AdaptationCommand:
    return seed_operation(seed_id, leyline.SEED_OP_CANCEL, **options)


def pause(seed_id: str, *, annotations: Optional[Mapping[str, str]] = None, **options: Any) -> leyline.AdaptationCommand:
    """COMMAND_PAUSE: identity kernel, isolation collection off (spec §5.4)."""
    merged = {**(annotations or {}), "resume": "false"}
    return _command(leyline.COMMAND_PAUSE, target_seed_id=seed_id, annotations=merged, **options)


def resume(seed_id: str, *, annotations: Optional[Mapping[str, str]] = None, **options: Any) -> leyline.AdaptationCommand:
    """COMMAND_PAUSE with ``annotations["resume"] = "true"``: re-attach, G1 again."""
    merged = {**(annotations or {}), "resume": "true"}
    return _command(leyline.COMMAND_PAUSE, target_seed_id=seed_id, annotations=merged, **options)


def circuit_breaker(desired_state: "leyline.CircuitBreakerState", rationale: str = "", **options: Any) -> leyline.AdaptationCommand:
    """Force the kernel breaker (``desired_state`` is a ``leyline.CircuitBreakerState``)."""
    command = _command(leyline.COMMAND_CIRCUIT_BREAKER, **options)
    command.circuit_breaker.desired_state = desired_state
    command.circuit_breaker.rationale = rationale
    return command


def emergency(include_teacher: bool = False, *, annotations: Optional[Mapping[str, str]] = None, **options: Any) -> leyline.AdaptationCommand:
    """Memory emergency cleanup (spec §5.5)."""
    merged = {**(annotations or {}), "include_teacher": "true" if include_teacher else "false"}
    return _command(leyline.COMMAND_EMERGENCY, annotations=merged, **options)


def optimizer(optimizer_id: str, hyperparameters: Optional[Mapping[str, float]] = None, **options: Any) -> leyline.AdaptationCommand:
    """COMMAND_OPTIMIZER (an ``optimizer_adjust`` event; no state change, spec §5.7)."""
    command = _command(leyline.COMMAND_OPTIMIZER, **options)
    command.optimizer_adjustment.optimizer_id = optimizer_id
    for key, value in (hyperparameters or {}).items():
        command.optimizer_adjustment.hyperparameters[key] = value
    return command


def rollback(seed_id: str = "", payload: Optional[Mapping[str, Any]] = None, **options: Any) -> leyline.AdaptationCommand:
    """COMMAND_ROLLBACK: defined by Leyline; Kasmina answers it with ``unsupported_command`` (spec §5.2)."""
    command = _command(leyline.COMMAND_ROLLBACK, target_seed_id=seed_id, **options)
    body = struct_pb2.Struct()
    body.update(dict(payload or {}))
    command.rollback_payload.CopyFrom(body)
    return command


def structural_pruning(seed_id: str = "", **options: Any) -> leyline.AdaptationCommand:
    """COMMAND_STRUCTURAL_PRUNING: defined by Leyline; Kasmina answers it with ``unsupported_command``."""
    return _command(leyline.COMMAND_STRUCTURAL_PRUNING, target_seed_id=seed_id, **options)
