"""Replica redirects (DESIGN §2.4) against real grpcio servers that answer like Kasmina replicas.

Each ``_Replica`` is a real gRPC server on a free port. It records every call with its metadata and
answers from a script: ``owner`` (UNAVAILABLE with trailing ``kasmina-owner``), ``down``
(UNAVAILABLE without it), ``replayed`` (PERMISSION_DENIED nonce_replayed) or ``ok``.
"""
from __future__ import annotations

from concurrent import futures
from typing import Callable, Dict, Iterator, List, Tuple

import grpc
import pytest

from kasmina_client import CommandPossiblyApplied, KasminaClient, KasminaError, commands, kasmina_pb2

SECRET = "redirect-secret"
_RESPONSES = {
    "GetStatus": kasmina_pb2.GetStatusResponse(version="replica"),
    "FinalizeStep": kasmina_pb2.FinalizeStepResponse(packets_emitted=1),
    "ApplyCommand": kasmina_pb2.ApplyCommandResponse(),
    "ReportGradients": kasmina_pb2.ReportGradientsResponse(),
}


class _Replica(grpc.GenericRpcHandler):
    def __init__(self) -> None:
        self.address = ""
        # What the next calls answer, in order; once used up, every call answers `then`.
        self.script: List[str] = []
        self.then = "ok"
        self.owner = ""
        self.calls: List[Tuple[str, Dict[str, str], bytes]] = []

    def _answer(self, method: str, metadata: Dict[str, str], request: bytes, context: grpc.ServicerContext) -> bytes:
        self.calls.append((method, metadata, request))
        action = self.script.pop(0) if self.script else self.then
        if action == "owner":
            context.set_trailing_metadata((("kasmina-owner", self.owner),))
            context.abort(grpc.StatusCode.UNAVAILABLE, f"training run is served by the replica at {self.owner}")
        if action == "down":
            context.abort(grpc.StatusCode.UNAVAILABLE, "etcd unreachable")
        if action == "replayed":
            context.abort(grpc.StatusCode.PERMISSION_DENIED, "nonce_replayed: command id is already in the ledger")
        return _RESPONSES[method].SerializeToString()

    def service(self, details: grpc.HandlerCallDetails):  # type: ignore[no-untyped-def]
        method = details.method.rsplit("/", 1)[-1]
        if method == "ReportGradients":

            def stream(requests: Iterator[bytes], context: grpc.ServicerContext) -> bytes:
                chunks = b"".join(requests)
                return self._answer(method, dict(context.invocation_metadata()), chunks, context)

            return grpc.stream_unary_rpc_method_handler(stream)

        def unary(request: bytes, context: grpc.ServicerContext) -> bytes:
            return self._answer(method, dict(context.invocation_metadata()), request, context)

        return grpc.unary_unary_rpc_method_handler(unary)

    def methods(self) -> List[str]:
        return [m for m, _, _ in self.calls]


@pytest.fixture
def replicas() -> Iterator[Callable[[], _Replica]]:
    servers: List[grpc.Server] = []

    def start() -> _Replica:
        replica = _Replica()
        server = grpc.server(futures.ThreadPoolExecutor(max_workers=4), handlers=[replica])
        replica.address = f"127.0.0.1:{server.add_insecure_port('127.0.0.1:0')}"
        server.start()
        servers.append(server)
        return replica

    yield start
    for server in servers:
        server.stop(None)


def _client(address: str, **options: object) -> KasminaClient:
    return KasminaClient(address, secret=SECRET, token="tok", training_run="run-9", backoff_seconds=0.01, **options)  # type: ignore[arg-type]


def test_a_redirect_is_followed_with_token_and_run_and_later_calls_go_to_the_owner(replicas) -> None:  # type: ignore[no-untyped-def]
    home, owner = replicas(), replicas()
    home.then, home.owner = "owner", owner.address
    with _client(home.address) as c:
        assert c.get_status().version == "replica"
        assert c.target == owner.address
        assert c.finalize_step(3) == 1
        assert c.get_status().version == "replica"
    assert home.methods() == ["GetStatus"]
    assert owner.methods() == ["GetStatus", "FinalizeStep", "GetStatus"]
    for _, metadata, _ in owner.calls:
        assert metadata["kasmina-training-run"] == "run-9"
        assert metadata["authorization"] == "Bearer tok"


def test_calls_that_change_state_follow_a_redirect_once_named(replicas) -> None:  # type: ignore[no-untyped-def]
    # A kasmina-owner answer is given before the run is served: nothing was applied, so even
    # FinalizeStep (never retried) is sent to the owner.
    home, owner = replicas(), replicas()
    home.then, home.owner = "owner", owner.address
    with _client(home.address) as c:
        assert c.finalize_step(1) == 1
    assert (home.methods(), owner.methods()) == (["FinalizeStep"], ["FinalizeStep"])


def test_two_replicas_naming_each_other_stop_after_the_hop_bound(replicas) -> None:  # type: ignore[no-untyped-def]
    a, b = replicas(), replicas()
    a.then, a.owner = "owner", b.address
    b.then, b.owner = "owner", a.address
    with _client(a.address, max_redirects=3) as c:
        with pytest.raises(KasminaError) as error:
            c.get_status()
    assert error.value.code == grpc.StatusCode.UNAVAILABLE
    assert error.value.owner in (a.address, b.address)
    assert "gave up after 3 redirects" in error.value.details
    assert len(a.calls) + len(b.calls) == 4  # the first attempt and three hops, no retries with backoff


def test_calls_that_change_state_are_not_retried_when_the_owner_is_down(replicas) -> None:  # type: ignore[no-untyped-def]
    home, owner = replicas(), replicas()
    home.then, home.owner = "owner", owner.address
    owner.then = "down"
    with _client(home.address) as c:
        with pytest.raises(KasminaError) as error:
            c.finalize_step(1)
        assert error.value.code == grpc.StatusCode.UNAVAILABLE and error.value.owner is None
        # The owner cannot serve: the next call starts again at the given address.
        assert c.target == home.address
    assert (home.methods(), owner.methods()) == (["FinalizeStep"], ["FinalizeStep"])


def test_commands_are_retried_with_the_same_signature_after_an_unavailable(replicas) -> None:  # type: ignore[no-untyped-def]
    home, owner = replicas(), replicas()
    home.then, home.owner = "owner", owner.address
    owner.script = ["down"]
    with _client(home.address) as c:
        c.apply_command(commands.germinate("seed-1", "BP001"))
    # home (redirect) → owner (down) → home again (redirect) → owner (ok)
    assert home.methods() == ["ApplyCommand", "ApplyCommand"]
    assert owner.methods() == ["ApplyCommand", "ApplyCommand"]
    sent = {request for _, _, request in home.calls + owner.calls}
    assert len(sent) == 1  # one command id, one signature


def test_nonce_replayed_after_a_lost_answer_says_the_command_was_possibly_applied(replicas) -> None:  # type: ignore[no-untyped-def]
    replica = replicas()
    replica.script = ["down", "replayed"]
    with _client(replica.address) as c:
        with pytest.raises(CommandPossiblyApplied) as error:
            c.apply_command(commands.germinate("seed-1", "BP001"))
    assert error.value.possibly_applied is True
    assert isinstance(error.value, KasminaError)
    assert (error.value.code, error.value.reason) == (grpc.StatusCode.PERMISSION_DENIED, "nonce_replayed")
    assert replica.methods() == ["ApplyCommand", "ApplyCommand"]


def test_nonce_replayed_after_only_redirects_is_a_plain_refusal(replicas) -> None:  # type: ignore[no-untyped-def]
    # A redirect means "not applied there", so a replay refusal after it is the caller's own reuse.
    home, owner = replicas(), replicas()
    home.then, home.owner = "owner", owner.address
    owner.then = "replayed"
    with _client(home.address) as c:
        with pytest.raises(KasminaError) as error:
            c.apply_command(commands.germinate("seed-1", "BP001"))
    assert not isinstance(error.value, CommandPossiblyApplied) and error.value.possibly_applied is False
    assert error.value.reason == "nonce_replayed"


def test_report_gradients_redirects_a_list_of_chunks_but_never_resends_a_one_shot_stream(replicas) -> None:  # type: ignore[no-untyped-def]
    from kasmina_client import gradient_chunks

    home, owner = replicas(), replicas()
    home.then, home.owner = "owner", owner.address
    chunks = list(gradient_chunks("s", "p", kasmina_pb2.GRADIENT_SIDE_HOST, b"\0" * 16))
    with _client(home.address) as c:
        c.report_gradients(chunks)
    assert (home.methods(), owner.methods()) == (["ReportGradients"], ["ReportGradients"])
    assert owner.calls[0][2] == b"".join(chunk.SerializeToString() for chunk in chunks)

    other_home, other_owner = replicas(), replicas()
    other_home.then, other_home.owner = "owner", other_owner.address
    with _client(other_home.address) as c:
        with pytest.raises(KasminaError) as error:
            c.report_gradients(iter(chunks))
        assert error.value.owner == other_owner.address
        assert c.target == other_owner.address  # the next pass goes to the owner
    assert other_owner.calls == []


def test_without_a_training_run_metadata_is_still_kept_across_hops(replicas) -> None:  # type: ignore[no-untyped-def]
    home, owner = replicas(), replicas()
    home.then, home.owner = "owner", owner.address
    with KasminaClient(home.address, secret=SECRET, token="t2") as c:
        c.get_status()
    assert owner.calls[0][1]["authorization"] == "Bearer t2"
    assert "kasmina-training-run" not in owner.calls[0][1]


