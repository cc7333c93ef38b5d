"""A minimal training controller that drives Kasmina over gRPC, as a PyTorch trainer would.

Usage: python3 controller.py HOST:PORT   (ESPER_LEYLINE_SECRET must match the server's)
Generated modules come from generate.sh (on PYTHONPATH). Prints a JSON summary of what it saw.
"""
import array
import base64
import hashlib
import hmac
import json
import os
import sys
import uuid

import grpc

from esper.kasmina.v1 import kasmina_pb2 as k
from esper.kasmina.v1 import kasmina_pb2_grpc as kg
from esper.leyline.v1 import leyline_pb2 as l

SECRET = os.environ["ESPER_LEYLINE_SECRET"].encode("utf-8")


def signed(command: l.AdaptationCommand) -> l.AdaptationCommand:
    """Signs the way every Esper sender does: HMAC-SHA256 over the deterministic encoding."""
    command.command_id = command.command_id or f"py-{uuid.uuid4()}"
    command.issued_at.GetCurrentTime()
    command.annotations.pop("signature", None)
    mac = hmac.new(SECRET, command.SerializeToString(deterministic=True), hashlib.sha256).digest()
    command.annotations["signature"] = base64.b64encode(mac).decode("ascii")
    return command


def seed_op(seed_id: str, operation: int, blueprint_id: str = "", **annotations: str) -> l.AdaptationCommand:
    command = l.AdaptationCommand(
        version=1,
        command_type=l.COMMAND_SEED,
        target_seed_id=seed_id,
        issued_by="python-controller",
        seed_operation=l.CommandSeedOperation(operation=operation, blueprint_id=blueprint_id),
    )
    command.seed_operation.parameters["lr_scale"] = 0.5
    for key, value in annotations.items():
        command.annotations[key] = value
    return signed(command)


def gradient_chunks(seed_id: str, key: str, side: int, values: list, chunk: int):
    data = array.array("f", values)
    if sys.byteorder != "little":
        data.byteswap()
    raw = data.tobytes()
    for start in range(0, len(values), chunk):
        end = min(start + chunk, len(values))
        yield k.ReportGradientsRequest(
            seed_id=seed_id, param_key=key, side=side, numel=len(values), offset=start, values=raw[start * 4 : end * 4]
        )


def main(address: str) -> None:
    stub = kg.KasminaServiceStub(grpc.insecure_channel(address))
    summary = {}
    stub.RegisterHost(k.RegisterHostRequest(parameters=[k.ParameterSpec(key="encoder.weight", shape=[8, 8], trainable=True, element_bytes=4)]))

    response = stub.ApplyCommand(k.ApplyCommandRequest(command=seed_op("seed-py", l.SEED_OP_GERMINATE, "BP001", risk_reason="low")))
    summary["germinated"] = l.SeedLifecycleStage.Name(response.seed.stage)
    summary["germinate_events"] = [e.description for e in response.events]

    # One backward pass: a host gradient, a seed gradient, and one parameter shared by both.
    host = [0.01 * i for i in range(64)]
    seed = [-0.02 * i for i in range(16)]
    shared = [1.0, 2.0, 3.0, 4.0]
    chunks = list(gradient_chunks("seed-py", "encoder.weight", k.GRADIENT_SIDE_HOST, host, 10))
    chunks += list(gradient_chunks("seed-py", "adapter.weight", k.GRADIENT_SIDE_SEED, seed, 5))
    chunks += list(gradient_chunks("seed-py", "tied.weight", k.GRADIENT_SIDE_HOST, shared, 4))
    chunks += list(gradient_chunks("seed-py", "tied.weight", k.GRADIENT_SIDE_SEED, shared, 3))
    report = stub.ReportGradients(iter(chunks)).report
    summary["isolation"] = {"isolated": report.isolated, "dot": report.dot_product, "violations": report.seed_violations}

    try:
        stub.ReportGradients(iter([k.ReportGradientsRequest(seed_id="seed-py", param_key="x", side=k.GRADIENT_SIDE_HOST, numel=4, offset=2, values=b"\0" * 16)]))
    except grpc.RpcError as error:
        summary["bad_chunk"] = [error.code().name, error.details()]

    stub.ApplyCommand(k.ApplyCommandRequest(command=seed_op("seed-py", l.SEED_OP_START_GRAFTING)))
    alpha = stub.AdvanceAlpha(k.AdvanceAlphaRequest(seed_id="seed-py", steps=9))
    summary["alpha"] = round(alpha.alpha, 6)

    stub.FinalizeStep(k.FinalizeStepRequest(step_index=1))
    packets = stub.DrainTelemetry(k.DrainTelemetryRequest()).packets
    summary["packets"] = [p.packet_id for p in packets]

    states = stub.ExportSeedStates(k.ExportSeedStatesRequest()).seeds
    summary["exported"] = {s.seed_id: l.SeedLifecycleStage.Name(s.stage) for s in states}

    try:
        stub.ApplyCommand(k.ApplyCommandRequest(command=l.AdaptationCommand(command_type=l.COMMAND_OPTIMIZER, command_id="unsigned")))
    except grpc.RpcError as error:
        summary["unsigned"] = [error.code().name, error.details().split(":")[0]]

    response = stub.ApplyCommand(k.ApplyCommandRequest(command=seed_op("seed-py", l.SEED_OP_CULL)))
    summary["culled_seed_present"] = response.HasField("seed")
    summary["rollback"] = dict(stub.GetRollbackPayload(k.GetRollbackPayloadRequest(seed_id="seed-py")).payload)
    print(json.dumps(summary, sort_keys=True))


if __name__ == "__main__":
    main(sys.argv[1])
