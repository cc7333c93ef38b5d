"""Gradient-isolation audits from PyTorch autograd hooks (torch 1.13 API: ``Tensor.register_hook``).

``watch(client, seed_id, host, seed)`` hooks every trainable parameter of both modules. A parameter
that belongs to both (the same tensor object) gets one key and both observers, which is how Kasmina
sees shared weights. In ``"sketch"`` mode each hook reduces its gradient where it lives (its own
device) to Σg² and the values at the service's projection indices, and ``report()`` ships those
kilobytes in one ReportGradientSketch call; ``"full"`` streams whole gradients with ReportGradients.
Both yield the same IsolationReport for the same gradients.
"""
from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Callable, Dict, Iterator, List, Optional, Tuple

import torch

from ._proto.esper.kasmina.v1 import kasmina_pb2 as kasmina
from .client import DEFAULT_CHUNK_ELEMENTS, KasminaClient
from .errors import KasminaError

HOST_PREFIX = "host."
SEED_PREFIX = "seed."
# GetProjection requests are sent in batches that keep each reply far below the message limit.
_PROJECTION_BATCH = 512
# Float64 blocks (2 MiB) small enough to stay in cache while they are converted and reduced, large
# enough that the Python loop over them costs little.
_BLOCK = 1 << 18
_SIDES: Dict[str, "kasmina.GradientSide"] = {"host": kasmina.GRADIENT_SIDE_HOST, "seed": kasmina.GRADIENT_SIDE_SEED}


def parameter_specs(module: torch.nn.Module, prefix: str = HOST_PREFIX) -> List[kasmina.ParameterSpec]:
    """RegisterHost specs for ``module``, keyed as ``watch`` keys the host side."""
    return [
        kasmina.ParameterSpec(key=prefix + name, shape=list(p.shape), trainable=p.requires_grad, element_bytes=p.element_size())
        for name, p in module.named_parameters()
    ]


def sum_squares(gradient: torch.Tensor) -> torch.Tensor:
    """Σg² as a float64 scalar on the gradient's device, from exact float64 squares.

    Float32 accumulation drifts by ~1e-8 relative on large tensors, and float32 squares carry a
    rounding of up to 2^-24 each that does not cancel when many values are equal; the service sums
    float32 values in float64, and a sketch must give the same norms as a full pass, so it squares
    and sums in float64 too (a float32 value's square is exact in float64).
    """
    flat = gradient.detach().reshape(-1)
    if flat.is_cuda:
        # One cast, one multiply, one reduction; no host sync (the scalar stays on the device).
        wide = flat.to(torch.float64, copy=True)
        return wide.mul_(wide).sum()
    # CPU: torch 1.13 has no kernel that squares float32 into a float64 sum without a float64
    # copy, so the copy goes into a reused block (2 MiB: torch's ops on it run from cache and the
    # Python loop is ~40 steps per 1e7 values), which is squared in place and summed. On the bench
    # model's gradients this is 5-20% faster than a fresh buffer per call and a running total.
    buffer = _block_buffer()
    numel = flat.numel()
    if numel <= _BLOCK:
        wide = buffer[:numel]
        wide.copy_(flat)
        return wide.mul_(wide).sum()
    partial: List[torch.Tensor] = []
    for block in flat.split(_BLOCK):
        wide = buffer if block.numel() == _BLOCK else buffer[: block.numel()]
        wide.copy_(block)
        partial.append(wide.mul_(wide).sum())
    return torch.stack(partial).sum()


_local = threading.local()


def _block_buffer() -> torch.Tensor:
    """This thread's float64 block (autograd may run hooks on several threads at once)."""
    buffer: Optional[torch.Tensor] = getattr(_local, "buffer", None)
    if buffer is None:
        buffer = torch.empty(_BLOCK, dtype=torch.float64)
        _local.buffer = buffer
    return buffer


@dataclass
class PassStats:
    """What the last ``report()`` cost: payload bytes sent and time spent in hooks and in report()."""

    mode: str
    bytes_sent: int
    messages: int
    hook_seconds: float
    report_seconds: float

    @property
    def seconds(self) -> float:
        return self.hook_seconds + self.report_seconds


class _Projection:
    __slots__ = ("numel", "indices", "scale", "_on")

    def __init__(self, numel: int, indices: List[int], scale: float) -> None:
        self.numel = numel
        self.indices = torch.tensor(indices, dtype=torch.long)
        self.scale = scale
        self._on: Dict[torch.device, torch.Tensor] = {}

    def on(self, device: torch.device) -> torch.Tensor:
        cached = self._on.get(device)
        if cached is None:
            cached = self.indices.to(device)
            self._on[device] = cached
        return cached


class WatchHandle:
    """Hooks on a host and a seed module; ``report()`` sends one backward pass."""

    def __init__(
        self,
        client: KasminaClient,
        seed_id: str,
        host: torch.nn.Module,
        seed: torch.nn.Module,
        mode: str = "sketch",
        chunk_elements: int = DEFAULT_CHUNK_ELEMENTS,
    ) -> None:
        if mode not in ("sketch", "full"):
            raise ValueError(f'mode must be "sketch" or "full", not {mode!r}')
        self.client = client
        self.seed_id = seed_id
        self.mode = mode
        self.chunk_elements = chunk_elements
        self.last_pass: Optional[PassStats] = None
        self.projection_bytes = 0
        # Parameter identity → key; a shared tensor keeps its host key on the seed side too.
        keys: Dict[int, str] = {}
        watched: List[Tuple[str, str, torch.nn.Parameter]] = []
        for name, p in host.named_parameters():
            if p.requires_grad:
                keys[id(p)] = HOST_PREFIX + name
                watched.append((keys[id(p)], "host", p))
        for name, p in seed.named_parameters():
            if p.requires_grad:
                watched.append((keys.get(id(p), SEED_PREFIX + name), "seed", p))
        self.keys: Dict[str, int] = {key: p.numel() for key, _, p in watched}
        self.shared = sorted({key for key, side, _ in watched if side == "seed" and key.startswith(HOST_PREFIX)})
        self._projections: Dict[str, _Projection] = {}
        if mode == "sketch":
            self.refresh_projections()
        # Per (key, side) since the last report: (Σg², samples) in sketch mode, the gradient in full mode.
        self._sketches: Dict[Tuple[str, str], Tuple[torch.Tensor, torch.Tensor]] = {}
        self._gradients: Dict[Tuple[str, str], torch.Tensor] = {}
        self._repeated: List[Tuple[str, str]] = []
        self._hook_seconds = 0.0
        self._hooks = [p.register_hook(self._hook(key, side)) for key, side, p in watched]

    # -------------------------------------------------------------- projections

    def refresh_projections(self) -> None:
        """Fetches the projections of every watched parameter (done once at ``watch``; cached)."""
        items = list(self.keys.items())
        projections: Dict[str, _Projection] = {}
        for start in range(0, len(items), _PROJECTION_BATCH):
            batch = items[start : start + _PROJECTION_BATCH]
            response = self.client.get_projection(self.seed_id, batch)
            self.projection_bytes += response.ByteSize()
            for p in response.projections:
                projections[p.param_key] = _Projection(p.numel, list(p.indices), p.scale)
        self._projections = projections

    # -------------------------------------------------------------- hooks

    def _hook(self, key: str, side: str) -> Callable[[torch.Tensor], None]:
        def observe(gradient: torch.Tensor) -> None:
            started = time.perf_counter()
            if (key, side) in self._sketches or (key, side) in self._gradients:
                self._repeated.append((key, side))
            elif self.mode == "sketch":
                flat = gradient.detach().reshape(-1)
                samples = flat.index_select(0, self._projections[key].on(flat.device))
                if samples.dtype != torch.float32:
                    samples = samples.to(torch.float32)
                self._sketches[(key, side)] = (sum_squares(flat), samples)
            else:
                # Autograd does not modify a gradient after handing it to a hook (accumulation goes
                # into .grad), so keeping the reference until report() needs no copy.
                self._gradients[(key, side)] = gradient.detach()
            self._hook_seconds += time.perf_counter() - started
            return None  # the gradient is passed on unchanged

        return observe

    def remove(self) -> None:
        """Removes every hook this handle registered and drops anything not yet reported."""
        for hook in self._hooks:
            hook.remove()
        self._hooks = []
        self._sketches.clear()
        self._gradients.clear()

    @property
    def active(self) -> bool:
        return bool(self._hooks)

    # -------------------------------------------------------------- report

    def report(self) -> kasmina.IsolationReport:
        """Sends the gradients seen since the last report as one pass; returns the IsolationReport.

        Call it after ``backward()`` and before ``optimizer.zero_grad()``.
        """
        sketches, gradients, repeated, hook_seconds = self._sketches, self._gradients, self._repeated, self._hook_seconds
        self._sketches, self._gradients, self._repeated, self._hook_seconds = {}, {}, [], 0.0
        if repeated:
            names = ", ".join(f"{key} ({side})" for key, side in repeated[:5])
            raise RuntimeError(f"gradients arrived twice before report() for {names}: report after every backward pass")
        if not sketches and not gradients:
            raise RuntimeError("no gradients since the last report(): run backward() first")
        started = time.perf_counter()
        if self.mode == "sketch":
            result, sent, messages = self._send_sketch(sketches)
        else:
            result, sent, messages = self._send_full(gradients)
        self.last_pass = PassStats(self.mode, sent, messages, hook_seconds, time.perf_counter() - started)
        return result

    def _send_sketch(self, pending: Dict[Tuple[str, str], Tuple[torch.Tensor, torch.Tensor]]) -> Tuple[kasmina.IsolationReport, int, int]:
        entries = list(pending.items())
        # One transfer per device for all scalars and all samples (a GPU syncs once, not per parameter).
        norms = _to_cpu([norm for _, (norm, _) in entries]).tolist()
        samples = _to_cpu([sample for _, (_, sample) in entries])
        raw = samples.numpy().astype("<f4", copy=False).tobytes()
        sketches = []
        offset = 0
        for ((key, side), (_, sample)), norm in zip(entries, norms):
            count = sample.numel()
            sketches.append(
                kasmina.GradientSketch(
                    param_key=key,
                    side=_SIDES[side],
                    numel=self.keys[key],
                    sum_squares=norm,
                    sampled_values=raw[offset * 4 : (offset + count) * 4],
                )
            )
            offset += count
        request = kasmina.ReportGradientSketchRequest(seed_id=self.seed_id, sketches=sketches)
        try:
            report = self.client.report_gradient_sketch(self.seed_id, sketches)
        except KasminaError as error:
            # A re-opened session prepares new projections: fetch them so the next pass fits.
            if error.code.name == "FAILED_PRECONDITION" and "projection" in error.details:
                self.refresh_projections()
            raise
        return report, request.ByteSize(), 1

    def _send_full(self, pending: Dict[Tuple[str, str], torch.Tensor]) -> Tuple[kasmina.IsolationReport, int, int]:
        counted = [0, 0]

        def chunks() -> Iterator[kasmina.ReportGradientsRequest]:
            for (key, side), gradient in pending.items():
                values = gradient.reshape(-1).to("cpu", torch.float32).numpy().astype("<f4", copy=False)
                numel = values.size
                starts = range(0, numel, self.chunk_elements) if numel else [0]
                for start in starts:
                    part = values[start : start + self.chunk_elements]
                    chunk = kasmina.ReportGradientsRequest(
                        seed_id=self.seed_id, param_key=key, side=_SIDES[side], numel=numel, offset=start, values=part.tobytes()
                    )
                    counted[0] += chunk.ByteSize()
                    counted[1] += 1
                    yield chunk

        report = self.client.report_gradients(chunks())
        return report, counted[0], counted[1]


def _to_cpu(tensors: List[torch.Tensor]) -> torch.Tensor:
    """Concatenates 0-d or 1-d tensors in order, with one device-to-host copy per device."""
    flat = [t.reshape(-1) for t in tensors]
    if all(t.device.type == "cpu" for t in flat):
        return torch.cat(flat) if flat else torch.empty(0)
    by_device: Dict[torch.device, List[int]] = {}
    for i, t in enumerate(flat):
        by_device.setdefault(t.device, []).append(i)
    out: List[Optional[torch.Tensor]] = [None] * len(flat)
    for device, positions in by_device.items():
        joined = torch.cat([flat[i] for i in positions]).cpu()
        sizes = [flat[i].numel() for i in positions]
        for i, part in zip(positions, joined.split(sizes)):
            out[i] = part
    return torch.cat([t for t in out if t is not None])


def watch(
    client: KasminaClient,
    seed_id: str,
    host: torch.nn.Module,
    seed: torch.nn.Module,
    mode: str = "sketch",
    *,
    chunk_elements: int = DEFAULT_CHUNK_ELEMENTS,
) -> WatchHandle:
    """Hooks every trainable parameter of ``host`` and ``seed`` for seed ``seed_id``'s isolation audit.

    Host parameters are keyed ``host.<name>``, seed parameters ``seed.<name>``, and a parameter
    of both (by identity) keeps its host key on both sides. In sketch mode the projections are
    fetched now and cached, so the seed's isolation session must be open (host registered, seed
    germinated).
    """
    return WatchHandle(client, seed_id, host, seed, mode, chunk_elements)


