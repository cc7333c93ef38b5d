"""kasmina_client.torch.watch on real torch gradients against the real built server."""
from __future__ import annotations

import json
import math
import os
import pathlib
import subprocess
import sys

import grpc
import pytest
import torch
from torch import nn

from kasmina_client import KasminaClient, KasminaError, commands, kasmina_pb2
from kasmina_client.torch import parameter_specs, sum_squares, watch

from conftest import ROOT, SECRET, Server


class Host(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, 6, 3)
        self.fc = nn.Linear(6 * 6 * 6, 32)
        self.out = nn.Linear(32, 16)  # 512 weights: more than the 256 samples

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out(torch.relu(self.fc(torch.relu(self.conv(x)).flatten(1))))


def grafted(client: KasminaClient, host: nn.Module, seed_id: str = "seed-t") -> None:
    client.register_host(parameter_specs(host))
    response = client.apply_command(commands.germinate(seed_id, "BP001"))
    assert response.seed.stage == 3  # TRAINING: the session collects


def backward(host: Host, seed: nn.Module) -> None:
    torch.manual_seed(1)
    x = torch.randn(16, 1, 8, 8)
    h = torch.relu(host.fc(torch.relu(host.conv(x)).flatten(1)))
    loss = host.out(h).pow(2).mean() + seed(h).pow(2).mean()
    loss.backward()


def rel(a: float, b: float) -> float:
    return abs(a - b) / max(abs(b), 1e-300)


def test_a_sketch_pass_and_a_full_pass_of_the_same_gradients_give_the_same_report(client: KasminaClient) -> None:
    torch.manual_seed(0)
    host = Host()
    seed = nn.Sequential(nn.Linear(32, 32), nn.Tanh(), host.out)  # shares host.out: a violation
    grafted(client, host)
    full = watch(client, "seed-t", host, seed, mode="full", chunk_elements=1000)
    sketch = watch(client, "seed-t", host, seed, mode="sketch")
    assert sketch.shared == ["host.out.bias", "host.out.weight"]
    backward(host, seed)  # both handles see the same gradients
    first = full.report()
    both = sketch.report()
    # The sketch pass added exactly what the full pass added.
    assert rel(both.host_norm**2 - first.host_norm**2, first.host_norm**2) < 1e-9
    assert rel(both.seed_norm**2 - first.seed_norm**2, first.seed_norm**2) < 1e-9
    assert rel(both.dot_product - first.dot_product, first.dot_product) < 1e-9
    assert first.dot_standard_error > 0
    assert rel(both.dot_standard_error**2 - first.dot_standard_error**2, first.dot_standard_error**2) < 1e-9
    assert both.elements_processed == 2 * first.elements_processed
    assert (first.isolated, both.isolated) == (False, False)
    assert (first.seed_violations, both.seed_violations) == (1, 2)
    # The sketch shipped kilobytes where the full pass shipped every gradient.
    assert full.last_pass is not None and sketch.last_pass is not None
    assert sketch.last_pass.bytes_sent * 3 < full.last_pass.bytes_sent
    full.remove()
    sketch.remove()


def test_disjoint_modules_stay_isolated(client: KasminaClient) -> None:
    torch.manual_seed(0)
    host = Host()
    seed = nn.Sequential(nn.Linear(32, 64), nn.ReLU(), nn.Linear(64, 5))
    grafted(client, host)
    handle = watch(client, "seed-t", host, seed)
    assert handle.shared == []
    for _ in range(3):
        backward(host, seed)
        report = handle.report()
        host.zero_grad()
        seed.zero_grad()
    assert report.isolated and report.dot_product == 0 and report.dot_standard_error == 0
    assert report.seed_violations == 0
    assert report.host_norm > 0 and report.seed_norm > 0
    handle.remove()


def test_a_shared_weight_is_a_violation(client: KasminaClient) -> None:
    torch.manual_seed(0)
    host = Host()
    seed = nn.Sequential(host.fc, nn.ReLU(), nn.Linear(32, 5))  # the seed reuses the host's fc layer
    grafted(client, host)
    handle = watch(client, "seed-t", host, seed)
    x = torch.randn(8, 6 * 6 * 6)
    (host.out(host.fc(x)).sum() + seed(x).sum()).backward()
    report = handle.report()
    assert not report.isolated
    assert report.dot_product > 1e-6
    assert report.seed_violations == 1
    handle.remove()


def test_the_hooks_are_gone_after_remove(client: KasminaClient) -> None:
    torch.manual_seed(0)
    host = Host()
    seed = nn.Linear(32, 5)
    grafted(client, host)
    params = list(host.parameters()) + list(seed.parameters())
    before = [len(p._backward_hooks or {}) for p in params]
    handle = watch(client, "seed-t", host, seed)
    assert all(len(p._backward_hooks or {}) == n + 1 for p, n in zip(params, before))
    handle.remove()
    assert [len(p._backward_hooks or {}) for p in params] == before
    assert not handle.active
    backward(host, seed)
    with pytest.raises(RuntimeError, match="no gradients"):
        handle.report()
    # Nothing reached the service: its accumulators are still zero.
    assert client.get_isolation_stats("seed-t").host_norm == 0


def test_two_backward_passes_without_a_report_are_refused(client: KasminaClient) -> None:
    torch.manual_seed(0)
    host = Host()
    seed = nn.Linear(32, 5)
    grafted(client, host)
    handle = watch(client, "seed-t", host, seed)
    backward(host, seed)
    backward(host, seed)
    with pytest.raises(RuntimeError, match="twice before report"):
        handle.report()
    handle.remove()


def test_sum_squares_is_exact_in_float64() -> None:
    torch.manual_seed(3)
    for n in (1, 1000, (1 << 18) + 5, 600_000):
        g = torch.randn(n) * torch.rand(n) * 10
        exact = math.fsum(float(v) * float(v) for v in g.double().tolist())
        # Exact float64 squares; only the float64 additions round (n·ε bounds them).
        assert rel(float(sum_squares(g)), exact) < 1e-11


def test_sketch_mode_in_exact_mode_fails_with_the_reason(start_server) -> None:  # type: ignore[no-untyped-def]
    server = start_server(KASMINA_PROJECTION_SAMPLES="0")
    with KasminaClient(server.address, secret=SECRET) as c:
        host = Host()
        grafted(c, host)
        with pytest.raises(KasminaError) as error:
            watch(c, "seed-t", host, nn.Linear(32, 5))
        assert error.value.code == grpc.StatusCode.FAILED_PRECONDITION
        assert "exact mode needs full gradients" in error.value.details
        handle = watch(c, "seed-t", host, nn.Linear(32, 5), mode="full")
        backward(host, nn.Linear(32, 5))
        handle.remove()


EXAMPLE = ROOT / "examples" / "pytorch" / "train.py"


def run_example(server: Server, *args: str) -> dict:
    env = {**os.environ, "ESPER_LEYLINE_SECRET": SECRET}
    if os.environ.get("KASMINA_CLIENT_INSTALLED") != "1":
        env["PYTHONPATH"] = str(ROOT / "clients" / "python" / "src")
    done = subprocess.run([sys.executable, str(EXAMPLE), server.address, *args], env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def test_the_example_grows_an_isolated_seed_to_fossilized(server: Server) -> None:
    summary = run_example(server)
    assert summary["stages"] == ["SEED_STAGE_TRAINING", "SEED_STAGE_BLENDING", "SEED_STAGE_SHADOWING", "SEED_STAGE_PROBATIONARY", "SEED_STAGE_FOSSILIZED"]
    assert summary["exported"] == {"seed-adapter": "SEED_STAGE_FOSSILIZED"}
    assert summary["first_violation_step"] is None and summary["max_violations"] == 0
    assert summary["reports"] == 24 and summary["alpha"] > 0
    assert summary["loss_last"] < summary["loss_first"]
    assert summary["packets"] > 0
    assert summary["sketch_bytes_per_step"] * 10 < summary["full_bytes_per_step"]


def test_the_example_with_a_shared_weight_is_caught_and_culled(server: Server) -> None:
    summary = run_example(server, "--shared")
    assert summary["shared_parameters"] == ["host.classifier.bias", "host.classifier.weight"]
    assert summary["first_violation_step"] == 1 and summary["dot_first_violation"] > 0
    assert summary["dot_standard_error"] > 0
    assert summary["stages"][-1] == "SEED_STAGE_EMBARGOED"
    assert summary["gate_failure"] == [{"gate": "SEED_GATE_G4_SYSTEM_IMPACT", "reason": "performance status violations"}]
    assert summary["exported"] == {"seed-adapter": "SEED_STAGE_EMBARGOED"}
    assert summary["violation_events"] >= 1
