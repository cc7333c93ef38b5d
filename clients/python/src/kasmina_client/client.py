"""KasminaClient: one method per KasminaService RPC, typed messages in and out."""
from __future__ import annotations

import random
import sys
import threading
import time
from typing import Any, Callable, Dict, Iterable, Iterator, List, Optional, Sequence, Tuple, Union

import grpc

from ._proto.esper.kasmina.v1 import kasmina_pb2 as kasmina
from ._proto.esper.kasmina.v1 import kasmina_pb2_grpc as kasmina_grpc
from ._proto.esper.leyline.v1 import leyline_pb2 as leyline
from .errors import CommandPossiblyApplied, KasminaError
from .signing import sign_command, secret_from_env

TRAINING_RUN_METADATA = "kasmina-training-run"
# Kasmina's default KASMINA_MAX_MESSAGE_BYTES is 16 MiB; a drain reply may be that large.
_MESSAGE_BYTES = 64 * 1024 * 1024
DEFAULT_CHUNK_ELEMENTS = 1 << 20  # 4 MiB of float32 per ReportGradients chunk
DEFAULT_MAX_REDIRECTS = 3

Metadata = Tuple[Tuple[str, str], ...]


class KasminaClient:
    """A client of ``esper.kasmina.v1.KasminaService``.

    ``secret`` signs commands (default: ESPER_LEYLINE_SECRET); ``token`` is sent as
    ``authorization: Bearer``; ``root_certificates`` (PEM bytes) selects TLS; ``training_run``
    travels as the ``kasmina-training-run`` metadata of every call.

    Replicas (DESIGN §2.4): a call answered UNAVAILABLE with trailing metadata
    ``kasmina-owner: HOST:PORT`` was refused before anything was applied, so it is sent again to
    that replica at once, whatever the call (at most ``max_redirects`` hops per attempt, so two
    replicas naming each other cannot loop). Each target gets its own channel, opened on first use
    with the same TLS roots, token and run metadata, and kept until :meth:`close`. Later calls go to
    the owner directly (:attr:`target`); when the owner stops answering (UNAVAILABLE without
    ``kasmina-owner``) the client goes back to the address it was given, which names the new owner.

    Retries: calls that are safe to repeat (queries, GetProjection, and ApplyCommand, whose nonce
    ledger refuses a duplicate) are retried with exponential backoff and full jitter on UNAVAILABLE
    without ``kasmina-owner``, ``retries`` times. Other calls that change state are never retried:
    their error reaches the caller. Every failure raises :class:`KasminaError`; a resent command
    refused as ``nonce_replayed`` raises :class:`CommandPossiblyApplied` (see :meth:`apply_command`).
    """

    def __init__(
        self,
        target: str,
        *,
        secret: Optional[Union[str, bytes]] = None,
        token: Optional[str] = None,
        root_certificates: Optional[bytes] = None,
        training_run: Optional[str] = None,
        retries: int = 4,
        backoff_seconds: float = 0.1,
        timeout: Optional[float] = None,
        max_redirects: int = DEFAULT_MAX_REDIRECTS,
    ) -> None:
        self._root_certificates = root_certificates
        self._lock = threading.Lock()
        self._channels: Dict[str, grpc.Channel] = {}
        self._stubs: Dict[str, kasmina_grpc.KasminaServiceStub] = {}
        self._home = target
        self._target = target
        self._stub_for(target)
        self._secret = secret if secret is not None else secret_from_env()
        metadata: List[Tuple[str, str]] = []
        if token is not None:
            metadata.append(("authorization", f"Bearer {token}"))
        if training_run is not None:
            metadata.append((TRAINING_RUN_METADATA, training_run))
        self._metadata: Metadata = tuple(metadata)
        self.training_run = training_run
        self.retries = retries
        self.backoff_seconds = backoff_seconds
        self.timeout = timeout
        self.max_redirects = max_redirects

    # -------------------------------------------------------------- plumbing

    @property
    def target(self) -> str:
        """The replica this client's calls go to now: the given address, or the run's owner once named."""
        return self._target

    def close(self) -> None:
        with self._lock:
            channels = list(self._channels.values())
            self._channels.clear()
            self._stubs.clear()
        for channel in channels:
            channel.close()

    def __enter__(self) -> "KasminaClient":
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def _stub_for(self, target: str) -> kasmina_grpc.KasminaServiceStub:
        with self._lock:
            stub = self._stubs.get(target)
            if stub is None:
                options = [("grpc.max_send_message_length", _MESSAGE_BYTES), ("grpc.max_receive_message_length", _MESSAGE_BYTES)]
                if self._root_certificates is not None:
                    credentials = grpc.ssl_channel_credentials(self._root_certificates)
                    channel = grpc.secure_channel(target, credentials, options=options)
                else:
                    channel = grpc.insecure_channel(target, options=options)
                self._channels[target] = channel
                stub = kasmina_grpc.KasminaServiceStub(channel)
                self._stubs[target] = stub
            return stub

    def _moved(self, from_target: str, to_target: str) -> None:
        # Only if no other thread moved it meanwhile: the newer news wins.
        with self._lock:
            if self._target == from_target:
                self._target = to_target

    def _call(
        self,
        name: str,
        request: object,
        *,
        safe: bool,
        stream: Optional[Callable[[], Iterator[Any]]] = None,
        resendable: bool = True,
    ) -> Any:
        """One RPC with redirects and, for ``safe`` calls, retries.

        ``stream`` builds a fresh request iterator per attempt for client-streaming calls;
        ``resendable=False`` marks a one-shot iterator, which is never sent twice.
        """
        attempt = 0
        hops = 0
        # True once an attempt failed in a way that may have applied it (its answer was lost).
        outcome_unknown = False
        while True:
            target = self._target
            method = getattr(self._stub_for(target), name)
            try:
                return method(stream() if stream is not None else request, metadata=self._metadata, timeout=self.timeout)
            except grpc.RpcError as error:
                failure = KasminaError.from_rpc(error, name)
            if failure.code == grpc.StatusCode.UNAVAILABLE and failure.owner is not None:
                # The replica refused before serving the run: nothing was applied, any call may go there.
                self._moved(target, failure.owner)
                if resendable and hops < self.max_redirects and failure.owner != target:
                    hops += 1
                    continue
                if hops >= self.max_redirects:
                    failure = KasminaError(
                        failure.code, f"{failure.details} (gave up after {hops} redirects)", name, failure.owner
                    )
                raise failure from None
            if failure.code == grpc.StatusCode.UNAVAILABLE:
                # This replica cannot serve now (gone, or etcd unreachable): the given address
                # names the run's next owner, so the next attempt starts there.
                self._moved(target, self._home)
                if safe and resendable and attempt < self.retries:
                    outcome_unknown = True
                    # Full jitter: retries of many trainers do not arrive in step.
                    time.sleep(random.uniform(0, min(2.0, self.backoff_seconds * (2**attempt))))
                    attempt += 1
                    hops = 0
                    continue
            if outcome_unknown and name == "ApplyCommand" and failure.reason_code == "nonce_replayed":
                raise CommandPossiblyApplied(failure.code, failure.details, name, failure.owner) from None
            raise failure from None

    # -------------------------------------------------------------- commands

    def sign(self, command: leyline.AdaptationCommand) -> leyline.AdaptationCommand:
        """Fills id and time and signs ``command`` in place (DESIGN §2)."""
        if self._secret is None:
            raise ValueError("no signing secret: pass secret= or set ESPER_LEYLINE_SECRET")
        return sign_command(command, self._secret)

    def apply_command(self, command: leyline.AdaptationCommand, *, sign: bool = True) -> kasmina.ApplyCommandResponse:
        """Signs (unless ``sign=False``) and applies one command.

        Safe to resend (the nonce ledger refuses a duplicate, DESIGN §2.1), so it is redirected and
        retried like a query, with the same id and signature every time. When an attempt failed with
        UNAVAILABLE and no ``kasmina-owner`` its answer may have been lost after the command was
        applied; if a resend is then refused as ``nonce_replayed`` this raises
        :class:`CommandPossiblyApplied` (a :class:`KasminaError` with ``possibly_applied`` True):
        the command was most likely applied once, and never twice. ``nonce_replayed`` on a first
        attempt is a plain :class:`KasminaError` (the caller sent a used command).
        """
        if sign:
            self.sign(command)
        return self._call("ApplyCommand", kasmina.ApplyCommandRequest(command=command), safe=True)

    # -------------------------------------------------------------- lifecycle

    def finalize_step(self, step_index: Optional[int] = None) -> int:
        """Flushes queued events into packets; returns how many were emitted."""
        request = kasmina.FinalizeStepRequest() if step_index is None else kasmina.FinalizeStepRequest(step_index=step_index)
        return self._call("FinalizeStep", request, safe=False).packets_emitted

    def update_epoch(self, epoch: int) -> kasmina.GcReport:
        return self._call("UpdateEpoch", kasmina.UpdateEpochRequest(epoch=epoch), safe=False).gc

    def advance_alpha(self, seed_id: str, steps: int = 1) -> kasmina.AdvanceAlphaResponse:
        request = kasmina.AdvanceAlphaRequest(seed_id=seed_id, steps=steps)
        return self._call("AdvanceAlpha", request, safe=False)

    def export_seed_states(self) -> kasmina.ExportSeedStatesResponse:
        return self._call("ExportSeedStates", kasmina.ExportSeedStatesRequest(), safe=True)

    def register_host(self, parameters: Sequence[kasmina.ParameterSpec]) -> int:
        request = kasmina.RegisterHostRequest(parameters=list(parameters))
        return self._call("RegisterHost", request, safe=False).parameter_count

    def register_teacher(
        self, parameters: Sequence[kasmina.ParameterSpec], buffers: Sequence[kasmina.ParameterSpec] = ()
    ) -> kasmina.RegisterTeacherResponse:
        request = kasmina.RegisterTeacherRequest(parameters=list(parameters), buffers=list(buffers))
        return self._call("RegisterTeacher", request, safe=False)

    # -------------------------------------------------------------- isolation

    def report_gradients(self, chunks: Iterable[kasmina.ReportGradientsRequest]) -> kasmina.IsolationReport:
        """One backward pass as a stream of chunks (see :func:`gradient_chunks`).

        Never retried. Redirected to the run's owner only when ``chunks`` is a sequence (a list of
        chunks can be sent again); a one-shot iterator is sent once, and a ``kasmina-owner`` answer
        raises :class:`KasminaError` (``owner`` set) while later calls go to that owner.
        """
        if isinstance(chunks, Sequence):
            listed = chunks
            return self._call("ReportGradients", None, safe=False, stream=lambda: iter(listed)).report
        once = iter(chunks)
        return self._call("ReportGradients", None, safe=False, stream=lambda: once, resendable=False).report

    def get_projection(self, seed_id: str, parameters: Sequence[Tuple[str, int]]) -> kasmina.GetProjectionResponse:
        """The session's prepared indices for each ``(param_key, numel)``; fixed once prepared, so safe to repeat."""
        request = kasmina.GetProjectionRequest(
            seed_id=seed_id, parameters=[kasmina.ParameterExtent(param_key=key, numel=numel) for key, numel in parameters]
        )
        return self._call("GetProjection", request, safe=True)

    def report_gradient_sketch(self, seed_id: str, sketches: Sequence[kasmina.GradientSketch]) -> kasmina.IsolationReport:
        request = kasmina.ReportGradientSketchRequest(seed_id=seed_id, sketches=list(sketches))
        return self._call("ReportGradientSketch", request, safe=False).report

    def get_isolation_stats(self, seed_id: str) -> kasmina.IsolationReport:
        request = kasmina.GetIsolationStatsRequest(seed_id=seed_id)
        return self._call("GetIsolationStats", request, safe=True).report

    def record_isolation_violation(self, seed_id: str) -> kasmina.RecordIsolationViolationResponse:
        request = kasmina.RecordIsolationViolationRequest(seed_id=seed_id)
        return self._call("RecordIsolationViolation", request, safe=False)

    def get_rollback_payload(self, seed_id: str) -> dict:
        request = kasmina.GetRollbackPayloadRequest(seed_id=seed_id)
        return dict(self._call("GetRollbackPayload", request, safe=True).payload)

    # -------------------------------------------------------------- telemetry and status

    def drain_telemetry(self, max_packets: int = 0) -> kasmina.DrainTelemetryResponse:
        """Oldest packets first (0 = as many as fit). Not retried: drained packets leave the log."""
        request = kasmina.DrainTelemetryRequest(max_packets=max_packets)
        return self._call("DrainTelemetry", request, safe=False)

    def watch_telemetry(self) -> Iterator[leyline.TelemetryPacket]:
        """Live packets from now on, until the call is cancelled or the server drains.

        A ``kasmina-owner`` answer before the first packet opens the watch at the owner (up to
        ``max_redirects`` hops). A stream that ends with UNAVAILABLE after packets arrived (its
        replica stopped serving the run) raises :class:`KasminaError`; call this again to resume,
        which goes to the owner it named. Packets between the two streams are in DrainTelemetry.
        """
        hops = 0
        while True:
            target = self._target
            stream = self._stub_for(target).WatchTelemetry(kasmina.WatchTelemetryRequest(), metadata=self._metadata)
            received = False
            try:
                for response in stream:
                    received = True
                    yield response.packet
                return
            except grpc.RpcError as error:
                if isinstance(error, grpc.Call) and error.code() == grpc.StatusCode.CANCELLED:
                    return
                failure = KasminaError.from_rpc(error, "WatchTelemetry")
            finally:
                stream.cancel()
            if failure.code == grpc.StatusCode.UNAVAILABLE and failure.owner is not None:
                self._moved(target, failure.owner)
                if not received and hops < self.max_redirects and failure.owner != target:
                    hops += 1
                    continue
            elif failure.code == grpc.StatusCode.UNAVAILABLE:
                self._moved(target, self._home)
            raise failure

    def get_status(self) -> kasmina.GetStatusResponse:
        return self._call("GetStatus", kasmina.GetStatusRequest(), safe=True)

    def list_training_runs(self) -> kasmina.ListTrainingRunsResponse:
        return self._call("ListTrainingRuns", kasmina.ListTrainingRunsRequest(), safe=True)

    def close_training_run(self, training_run_id: str) -> int:
        request = kasmina.CloseTrainingRunRequest(training_run_id=training_run_id)
        return self._call("CloseTrainingRun", request, safe=False).seeds_retired


def gradient_chunks(
    seed_id: str,
    param_key: str,
    side: "kasmina.GradientSide",
    values: Union[bytes, bytearray, memoryview],
    *,
    chunk_elements: int = DEFAULT_CHUNK_ELEMENTS,
) -> Iterator[kasmina.ReportGradientsRequest]:
    """ReportGradients chunks of one (parameter, side): ``values`` are little-endian float32 bytes."""
    data = memoryview(values).cast("B")
    if data.nbytes % 4:
        raise ValueError(f"{param_key}: {data.nbytes} bytes are not a whole number of float32s")
    if sys.byteorder != "little":
        raise ValueError("values must already be little-endian float32")
    numel = data.nbytes // 4
    if numel == 0:
        yield kasmina.ReportGradientsRequest(seed_id=seed_id, param_key=param_key, side=side, numel=0, offset=0, values=b"")
        return
    for start in range(0, numel, chunk_elements):
        end = min(numel, start + chunk_elements)
        yield kasmina.ReportGradientsRequest(
            seed_id=seed_id, param_key=param_key, side=side, numel=numel, offset=start, values=data[start * 4 : end * 4].tobytes()
        )
