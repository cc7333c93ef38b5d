"""npm run bench:sketch — one backward pass of a 1e7-parameter torch model audited through
kasmina_client.torch.watch(...).report(), sketch mode against full streaming, in the same run and
on the same gradients, beside torch's own Σg² of those gradients (the work in-process hooks do,
and the floor for any trainer-side audit). Prints bytes sent, pass times and ratios.

Targets (issue 12): sketch ≥ 1,000× fewer bytes than full streaming; a sketch pass within 2× of
torch's bare Σg² time. Runs the built server (npm run build) as a child process on a free port.
"""
from __future__ import annotations

import os
import pathlib
import re
import statistics
import subprocess
import sys
import threading
import time

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "clients" / "python" / "src"))

import torch  # noqa: E402
from torch import nn  # noqa: E402

from kasmina_client import KasminaClient, commands  # noqa: E402
from kasmina_client.torch import parameter_specs, watch  # noqa: E402

SECRET = "bench-secret"
ROUNDS = int(os.environ.get("BENCH_ROUNDS", "5"))


def start_server() -> tuple[subprocess.Popen, str]:
    env = {
        "PATH": os.environ.get("PATH", ""),
        "KASMINA_PORT": "0",
        "ESPER_LEYLINE_SECRET": SECRET,
        "KASMINA_LIFECYCLE_PACING": "driven",
        "KASMINA_ISOLATION_BACKEND": "js",
        "KASMINA_STATE": "memory",
    }
    process = subprocess.Popen(["node", str(ROOT / "dist" / "src" / "main.js")], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    found: list[str] = []
    ready = threading.Event()

    def read() -> None:
        assert process.stdout is not None
        for line in process.stdout:
            match = re.match(r"kasmina listening on (\S+) ", line)
            if match:
                found.append(match.group(1))
                ready.set()
        ready.set()

    threading.Thread(target=read, daemon=True).start()
    if not ready.wait(30) or not found:
        process.kill()
        raise SystemExit("kasmina did not start (run npm run build first)")
    return process, found[0]


def torch_sum_squares(grads: list[torch.Tensor]) -> float:
    """What an in-process hook computes: Σg² per gradient, in torch, synchronised."""
    started = time.perf_counter()
    total = 0.0
    for g in grads:
        total += g.pow(2).sum().item()
    return time.perf_counter() - started


def main() -> None:
    torch.manual_seed(0)
    host = nn.Sequential(nn.Linear(1000, 4500), nn.ReLU(), nn.Linear(4500, 1000))
    seed = nn.Linear(1000, 1000)
    params = sum(p.numel() for p in host.parameters()) + sum(p.numel() for p in seed.parameters())
    x = torch.randn(4, 1000)
    process, address = start_server()
    try:
        client = KasminaClient(address, secret=SECRET)
        client.register_host(parameter_specs(host))
        client.apply_command(commands.germinate("bench-seed", "BP001"))
        sketch = watch(client, "bench-seed", host, seed, mode="sketch")
        full = watch(client, "bench-seed", host, seed, mode="full")
        rows: list[dict[str, float]] = []
        for _ in range(ROUNDS + 1):  # the first round warms up and is dropped
            host.zero_grad(set_to_none=True)
            seed.zero_grad(set_to_none=True)
            h = host(x)
            (h.pow(2).mean() + seed(h).pow(2).mean()).backward()
            grads = [p.grad for p in list(host.parameters()) + list(seed.parameters())]
            before = client.get_isolation_stats("bench-seed")
            full_report = full.report()
            sketch_report = sketch.report()
            # Each pass adds its Σg²: the sketch pass must add what the full pass added.
            full_added = full_report.host_norm**2 - before.host_norm**2
            sketch_added = sketch_report.host_norm**2 - full_report.host_norm**2
            assert full.last_pass is not None and sketch.last_pass is not None
            rows.append(
                {
                    "torch": statistics.median(torch_sum_squares(grads) for _ in range(5)),
                    "sketch": sketch.last_pass.seconds,
                    "sketch_hooks": sketch.last_pass.hook_seconds,
                    "sketch_rpc": sketch.last_pass.report_seconds,
                    "full": full.last_pass.seconds,
                    "sketch_bytes": sketch.last_pass.bytes_sent,
                    "full_bytes": full.last_pass.bytes_sent,
                    "same": abs(sketch_added - full_added) / full_added,
                }
            )
        rows = rows[1:]
        med = {key: statistics.median(r[key] for r in rows) for key in rows[0]}
        byte_ratio = med["full_bytes"] / med["sketch_bytes"]
        vs_torch = med["sketch"] / med["torch"]
        print(f"model: {params:,} parameters ({len(sketch.keys)} tensors), torch {torch.__version__}, {torch.get_num_threads()} thread(s); median of {ROUNDS} passes")
        print(f"bytes sent per pass   full {med['full_bytes']:>14,.0f}   sketch {med['sketch_bytes']:>10,.0f}   ratio {byte_ratio:,.0f}x (target >= 1,000x)")
        print(f"projection fetch      {sketch.projection_bytes:,} bytes, once per watch()")
        print(f"torch bare sum(g^2)   {med['torch'] * 1e3:8.2f} ms")
        print(f"sketch pass           {med['sketch'] * 1e3:8.2f} ms  (hooks {med['sketch_hooks'] * 1e3:.2f} ms, report {med['sketch_rpc'] * 1e3:.2f} ms)  = {vs_torch:.2f}x torch (target <= 2x)")
        print(f"full streaming pass   {med['full'] * 1e3:8.2f} ms  = {med['full'] / med['sketch']:.1f}x the sketch pass")
        print(f"sketch and full passes agree: host norm^2 relative difference {max(r['same'] for r in rows):.1e}")
        print(f"targets: bytes {'met' if byte_ratio >= 1000 else 'MISSED'}; time {'met' if vs_torch <= 2 else 'MISSED'}")
        client.close()
    finally:
        process.terminate()
        process.wait(10)


if __name__ == "__main__":
    main()
