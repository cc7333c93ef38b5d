"""KasminaClient against the real built server (and, for metadata and retries, a recording gRPC server)."""
from __future__ import annotations

from concurrent import futures
from typing import List, Tuple

import grpc
import pytest

from kasmina_client import KasminaClient, KasminaError, commands, kasmina_pb2, leyline_pb2


def test_signed_commands_are_accepted_and_a_tampered_one_is_refused(client: KasminaClient) -> None:
    client.register_host([kasmina_pb2.ParameterSpec(key="host.w", shape=[4], trainable=True, element_bytes=4)])
    response = client.apply_command(commands.germinate("seed-1", "BP001"))
    assert leyline_pb2.SeedLifecycleStage.Name(response.seed.stage) == "SEED_STAGE_TRAINING"
    assert "seed_operation" in [e.description for e in response.events]

    tampered = client.sign(commands.cull("seed-1"))
    tampered.target_seed_id = "seed-2"  # changed after signing
    with pytest.raises(KasminaError) as refused:
        client.apply_command(tampered, sign=False)
    assert refused.value.code == grpc.StatusCode.PERMISSION_DENIED
    assert refused.value.reason == "invalid_signature"

    with pytest.raises(KasminaError) as unsigned:
        client.apply_command(commands.optimizer("adam"), sign=False)
    assert (unsigned.value.code, unsigned.value.reason) == (grpc.StatusCode.PERMISSION_DENIED, "missing_signature")

    once = client.sign(commands.optimizer("adam", {"lr": 0.5}))
    client.apply_command(once, sign=False)
    with pytest.raises(KasminaError) as replayed:
        client.apply_command(once, sign=False)
    assert replayed.value.reason == "nonce_replayed"
    # The seed is untouched by the refused cull.
    assert [s.seed_id for s in client.export_seed_states().seeds] == ["seed-1"]


def test_every_command_type_has_a_builder_the_service_accepts(client: KasminaClient) -> None:
    client.register_host([kasmina_pb2.ParameterSpec(key="host.w", shape=[4], trainable=True, element_bytes=4)])
    descriptions = {}
    built = {
        "germinate": commands.germinate("s", "BP001", parameters={"lr_scale": 0.5}, annotations={"risk_reason": "low"}),
        "start_grafting": commands.start_grafting("s"),
        "pause": commands.pause("s"),
        "resume": commands.resume("s"),
        "breaker": commands.circuit_breaker(leyline_pb2.CIRCUIT_STATE_CLOSED, "operator"),
        "emergency": commands.emergency(include_teacher=True),
        "optimizer": commands.optimizer("sgd", {"lr": 0.1}),
        "rollback": commands.rollback("s", {"reason": "test"}),
        "pruning": commands.structural_pruning("s"),
        "stabilize": commands.stabilize("s"),
        "start_training": commands.start_training("s"),
        "fine_tune": commands.fine_tune("s"),
        "evaluate": commands.evaluate("s"),
        "fossilize": commands.fossilize("s"),
        "cull": commands.cull("s"),
        "cancel": commands.cancel("s"),
    }
    for name, command in built.items():
        descriptions[name] = [e.description for e in client.apply_command(command).events]
    assert "seed_paused" in descriptions["pause"]
    assert "seed_resumed" in descriptions["resume"]
    assert "breaker_event" in descriptions["breaker"]
    assert descriptions["optimizer"] == ["optimizer_adjust"]
    assert descriptions["rollback"] == ["unsupported_command"]
    assert descriptions["pruning"] == ["unsupported_command"]
    client.finalize_step(1)
    assert any(e.description == "emergency_cleanup" for p in client.drain_telemetry().packets for e in p.events)
    assert client.get_rollback_payload("s")["reason"] == "retired"


def test_errors_carry_the_grpc_code_and_the_reason(client: KasminaClient) -> None:
    with pytest.raises(KasminaError) as missing:
        client.get_isolation_stats("nobody")
    assert missing.value.code == grpc.StatusCode.NOT_FOUND
    assert "nobody" in missing.value.reason
    assert missing.value.method == "GetIsolationStats"
    with pytest.raises(KasminaError) as bad:
        client.get_projection("", [("p", 4)])
    assert bad.value.code == grpc.StatusCode.INVALID_ARGUMENT


class _Recorder(grpc.GenericRpcHandler):
    """A real gRPC server that fails the first calls with UNAVAILABLE and records metadata."""

    def __init__(self, failures: int) -> None:
        self.failures = failures
        self.calls: List[Tuple[str, dict]] = []

    def service(self, details: grpc.HandlerCallDetails):  # type: ignore[no-untyped-def]
        method = details.method.rsplit("/", 1)[-1]
        response = {"GetStatus": kasmina_pb2.GetStatusResponse(version="recorder"), "FinalizeStep": kasmina_pb2.FinalizeStepResponse()}[method]

        def handle(request: bytes, context: grpc.ServicerContext) -> bytes:
            self.calls.append((method, dict(context.invocation_metadata())))
            if len(self.calls) <= self.failures:
                context.abort(grpc.StatusCode.UNAVAILABLE, "warming up")
            return response.SerializeToString()

        return grpc.unary_unary_rpc_method_handler(handle)


@pytest.fixture
def recorder():  # type: ignore[no-untyped-def]
    handler = _Recorder(failures=2)
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2), handlers=[handler])
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    yield handler, f"127.0.0.1:{port}"
    server.stop(None)


def test_safe_calls_retry_on_unavailable_and_carry_run_and_token(recorder) -> None:  # type: ignore[no-untyped-def]
    handler, address = recorder
    with KasminaClient(address, token="tok", training_run="run-7", backoff_seconds=0.01) as c:
        assert c.get_status().version == "recorder"
    assert [m for m, _ in handler.calls] == ["GetStatus"] * 3
    assert handler.calls[-1][1]["kasmina-training-run"] == "run-7"
    assert handler.calls[-1][1]["authorization"] == "Bearer tok"


def test_calls_that_change_state_are_never_retried(recorder) -> None:  # type: ignore[no-untyped-def]
    handler, address = recorder
    with KasminaClient(address, backoff_seconds=0.01) as c:
        with pytest.raises(KasminaError) as error:
            c.finalize_step(1)
    assert error.value.code == grpc.StatusCode.UNAVAILABLE
    assert [m for m, _ in handler.calls] == ["FinalizeStep"]
    assert "kasmina-training-run" not in handler.calls[0][1]


def test_retries_give_up_after_the_budget(recorder) -> None:  # type: ignore[no-untyped-def]
    handler, address = recorder
    with KasminaClient(address, retries=1, backoff_seconds=0.01) as c:
        with pytest.raises(KasminaError) as error:
            c.get_status()
    assert error.value.code == grpc.StatusCode.UNAVAILABLE and error.value.reason == "warming up"
    assert len(handler.calls) == 2


def test_tls_and_bearer_token(start_server, tmp_path) -> None:  # type: ignore[no-untyped-def]
    import subprocess

    key, cert = tmp_path / "server.key", tmp_path / "server.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=127.0.0.1",
         "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True,
    )
    server = start_server(KASMINA_TLS_CERT=str(cert), KASMINA_TLS_KEY=str(key), KASMINA_AUTH_TOKEN="s3cret-token")
    with KasminaClient(server.address, root_certificates=cert.read_bytes(), token="s3cret-token") as c:
        assert c.get_status().isolation_backend
    with KasminaClient(server.address, root_certificates=cert.read_bytes(), retries=0) as c:
        with pytest.raises(KasminaError) as error:
            c.get_status()
        assert error.value.code == grpc.StatusCode.UNAUTHENTICATED


def test_watch_telemetry_streams_packets(client: KasminaClient) -> None:
    import threading

    received: List[leyline_pb2.TelemetryPacket] = []
    stream = client.watch_telemetry()
    started = threading.Event()

    def read() -> None:
        started.set()
        for packet in stream:
            received.append(packet)
            break

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    started.wait(5)
    client.register_host([kasmina_pb2.ParameterSpec(key="host.w", shape=[4], trainable=True, element_bytes=4)])
    for step in range(1, 50):
        client.apply_command(commands.germinate(f"seed-{step}", "BP001"))
        client.finalize_step(step)
        reader.join(0.1)
        if received:
            break
    assert received and received[0].packet_id
