"""KasminaClient: one method per KasminaService RPC, typed messages in and out."""
from __future__ import annotations

import random
import sys
import time
from typing import Callable, Iterable, Iterator, List, Optional, Sequence, Tuple, TypeVar, Union

import grpc

from ._proto.esper.kasmina.v1 import kasmina_pb2 as kasmina
from ._proto.esper.kasmina.v1 import kasmina_pb2_grpc as kasmina_grpc
from ._proto.esper.leyline.v1 import leyline_pb2 as leyline
from .errors import KasminaError
from .signing import sign_command, secret_from_env

TRAINING_RUN_METADATA = "kasmina-training-run"
# Kasmina's default KASMINA_MAX_MESSAGE_BYTES is 16 MiB; a drain reply may be that large.
_MESSAGE_BYTES = 64 * 1024 * 1024
DEFAULT_CHUNK_ELEMENTS = 1 << 20  # 4 MiB of float32 per ReportGradients chunk

T = TypeVar("T")
Metadata = Tuple[Tuple[str, str], ...]


class KasminaClient:
    """A client of ``esper.kasmina.v1.KasminaService``.

    ``secret`` signs commands (default: ESPER_LEYLINE_SECRET); ``token`` is sent as
    ``authorization: Bearer``; ``root_certificates`` (PEM bytes) selects TLS; ``training_run``
    travels as the ``kasmina-training-run`` metadata of every call. Calls that are safe to repeat
    (queries, GetProjection) are retried with exponential backoff on UNAVAILABLE, ``retries`` times;
    nothing that changes state is ever retried. Every failure raises :class:`KasminaError`.
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
    ) -> None:
        options = [("grpc.max_send_message_length", _MESSAGE_BYTES), ("grpc.max_receive_message_length", _MESSAGE_BYTES)]
        if root_certificates is not None:
            self._channel = grpc.secure_channel(target, grpc.ssl_channel_credentials(root_certificates), options=options)
        else:
            self._channel = grpc.insecure_channel(target, options=options)
        self._stub = kasmina_grpc.KasminaServiceStub(self._channel)
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

    # -------------------------------------------------------------- plumbing

    def close(self) -> None:
        self._channel.close()

    def __enter__(self) -> "KasminaClient":
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def _call(self, name: str, method: Callable[..., T], request: object, *, safe: bool) -> T:
        attempt = 0
        while True:
            try:
                return method(request, metadata=self._metadata, timeout=self.timeout)
            except grpc.RpcError as error:
                code = error.code() if isinstance(error, grpc.Call) else None
                if safe and code == grpc.StatusCode.UNAVAILABLE and attempt < self.retries:
                    # Full jitter: retries of many trainers do not arrive in step.
                    time.sleep(random.uniform(0, min(2.0, self.backoff_seconds * (2**attempt))))
                    attempt += 1
                    continue
                raise KasminaError.from_rpc(error, name) from None

    # -------------------------------------------------------------- commands

    def sign(self, command: leyline.AdaptationCommand) -> leyline.AdaptationCommand:
        """Fills id and time and signs ``command`` in place (DESIGN §2)."""
        if self._secret is None:
            raise ValueError("no signing secret: pass secret= or set ESPER_LEYLINE_SECRET")
        return sign_command(command, self._secret)

    def apply_command(self, command: leyline.AdaptationCommand, *, sign: bool = True) -> kasmina.ApplyCommandResponse:
        """Signs (unless ``sign=False``) and applies one command. Never retried: a repeat would be a replay."""
        if sign:
            self.sign(command)
        return self._call("ApplyCommand", self._stub.ApplyCommand, kasmina.ApplyCommandRequest(command=command), safe=False)

    # -------------------------------------------------------------- lifecycle

    def finalize_step(self, step_index: Optional[int] = None) -> int:
        """Flushes queued events into packets; returns how many were emitted."""
        request = kasmina.FinalizeStepRequest() if step_index is None else kasmina.FinalizeStepRequest(step_index=step_index)
        return self._call("FinalizeStep", self._stub.FinalizeStep, request, safe=False).packets_emitted

    def update_epoch(self, epoch: int) -> kasmina.GcReport:
        return self._call("UpdateEpoch", self._stub.UpdateEpoch, kasmina.UpdateEpochRequest(epoch=epoch), safe=False).gc

    def advance_alpha(self, seed_id: str, steps: int = 1) -> kasmina.AdvanceAlphaResponse:
        request = kasmina.AdvanceAlphaRequest(seed_id=seed_id, steps=steps)
        return self._call("AdvanceAlpha", self._stub.AdvanceAlpha, request, safe=False)

    def export_seed_states(self) -> kasmina.ExportSeedStatesResponse:
        return self._call("ExportSeedStates", self._stub.ExportSeedStates, kasmina.ExportSeedStatesRequest(), safe=True)

    def register_host(self, parameters: Sequence[kasmina.ParameterSpec]) -> int:
        request = kasmina.RegisterHostRequest(parameters=list(parameters))
        return self._call("RegisterHost", self._stub.RegisterHost, request, safe=False).parameter_count

    def register_teacher(
        self, parameters: Sequence[kasmina.ParameterSpec], buffers: Sequence[kasmina.ParameterSpec] = ()
    ) -> kasmina.RegisterTeacherResponse:
        request = kasmina.RegisterTeacherRequest(parameters=list(parameters), buffers=list(buffers))
        return self._call("RegisterTeacher", self._stub.RegisterTeacher, request, safe=False)

    # -------------------------------------------------------------- isolation

    def report_gradients(self, chunks: Iterable[kasmina.ReportGradientsRequest]) -> kasmina.IsolationReport:
        """One backward pass as a stream of chunks (see :func:`gradient_chunks`)."""
        return self._call("ReportGradients", self._stub.ReportGradients, iter(chunks), safe=False).report

    def get_projection(self, seed_id: str, parameters: Sequence[Tuple[str, int]]) -> kasmina.GetProjectionResponse:
        """The session's prepared indices for each ``(param_key, numel)``; fixed once prepared, so safe to repeat."""
        request = kasmina.GetProjectionRequest(
            seed_id=seed_id, parameters=[kasmina.ParameterExtent(param_key=key, numel=numel) for key, numel in parameters]
        )
        return self._call("GetProjection", self._stub.GetProjection, request, safe=True)

    def report_gradient_sketch(self, seed_id: str, sketches: Sequence[kasmina.GradientSketch]) -> kasmina.IsolationReport:
        request = kasmina.ReportGradientSketchRequest(seed_id=seed_id, sketches=list(sketches))
        return self._call("ReportGradientSketch", self._stub.ReportGradientSketch, request, safe=False).report

    def get_isolation_stats(self, seed_id: str) -> kasmina.IsolationReport:
        request = kasmina.GetIsolationStatsRequest(seed_id=seed_id)
        return self._call("GetIsolationStats", self._stub.GetIsolationStats, request, safe=True).report

    def record_isolation_violation(self, seed_id: str) -> kasmina.RecordIsolationViolationResponse:
        request = kasmina.RecordIsolationViolationRequest(seed_id=seed_id)
        return self._call("RecordIsolationViolation", self._stub.RecordIsolationViolation, request, safe=False)

    def get_rollback_payload(self, seed_id: str) -> dict:
        request = kasmina.GetRollbackPayloadRequest(seed_id=seed_id)
        return dict(self._call("GetRollbackPayload", self._stub.GetRollbackPayload, request, safe=True).payload)

    # -------------------------------------------------------------- telemetry and status

    def drain_telemetry(self, max_packets: int = 0) -> kasmina.DrainTelemetryResponse:
        """Oldest packets first (0 = as many as fit). Not retried: drained packets leave the log."""
        request = kasmina.DrainTelemetryRequest(max_packets=max_packets)
        return self._call("DrainTelemetry", self._stub.DrainTelemetry, request, safe=False)

    def watch_telemetry(self) -> Iterator[leyline.TelemetryPacket]:
        """Live packets from now on, until the call is cancelled or the server drains."""
        stream = self._stub.WatchTelemetry(kasmina.WatchTelemetryRequest(), metadata=self._metadata)
        try:
            for response in stream:
                yield response.packet
        except grpc.RpcError as error:
            if isinstance(error, grpc.Call) and error.code() == grpc.StatusCode.CANCELLED:
                return
            raise KasminaError.from_rpc(error, "WatchTelemetry") from None
        finally:
            stream.cancel()

    def get_status(self) -> kasmina.GetStatusResponse:
        return self._call("GetStatus", self._stub.GetStatus, kasmina.GetStatusRequest(), safe=True)

    def list_training_runs(self) -> kasmina.ListTrainingRunsResponse:
        return self._call("ListTrainingRuns", self._stub.ListTrainingRuns, kasmina.ListTrainingRunsRequest(), safe=True)

    def close_training_run(self, training_run_id: str) -> int:
        request = kasmina.CloseTrainingRunRequest(training_run_id=training_run_id)
        return self._call("CloseTrainingRun", self._stub.CloseTrainingRun, request, safe=False).seeds_retired


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
