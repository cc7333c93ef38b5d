"""A real PyTorch training loop that grows a seed under Kasmina and audits its isolation every step.

Usage: python3 train.py HOST:PORT [--shared] [--steps N]
(ESPER_LEYLINE_SECRET must match the server's; the server runs with KASMINA_LIFECYCLE_PACING=driven.)

A small CNN (the host) learns a synthetic task; a residual adapter (the seed) is germinated, trained
(TRAINING), blended in while Kasmina advances alpha (BLENDING), then stabilised, evaluated and
fossilised. Every backward pass is reported in sketch mode (kilobytes, not the gradients). With
--shared the seed reuses the host's classifier weight: the first report shows the violation, and
gate G4 culls the seed when the controller asks to evaluate it. Prints a JSON summary.
"""
from __future__ import annotations

import argparse
import json

import torch
from torch import nn

from kasmina_client import KasminaClient, commands, leyline_pb2
from kasmina_client.torch import parameter_specs, watch

SEED_ID = "seed-adapter"


def stage_name(stage: int) -> str:
    return leyline_pb2.SeedLifecycleStage.Name(stage)


class Host(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.features = nn.Sequential(nn.Conv2d(1, 8, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten())
        self.classifier = nn.Linear(8 * 4 * 4, 4)

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(x)


class Seed(nn.Module):
    """A residual adapter on the host's embedding; with ``shared`` it reuses the host's classifier."""

    def __init__(self, host: Host, shared: bool) -> None:
        super().__init__()
        self.adapter = nn.Linear(8 * 4 * 4, 8 * 4 * 4)
        nn.init.zeros_(self.adapter.weight)
        self.head = host.classifier if shared else nn.Linear(8 * 4 * 4, 4)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return self.head(h + self.adapter(h))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("address")
    parser.add_argument("--shared", action="store_true", help="graft a seed that shares a host weight")
    parser.add_argument("--steps", type=int, default=24)
    args = parser.parse_args()

    torch.manual_seed(0)
    x = torch.randn(64, 1, 8, 8)
    y = (x.mean(dim=(1, 2, 3)) > 0).long() + 2 * (x[:, 0, :4].mean(dim=(1, 2)) > 0).long()
    host = Host()
    seed = Seed(host, args.shared)
    optimizer = torch.optim.SGD(list(host.parameters()) + [p for p in seed.parameters() if all(p is not q for q in host.parameters())], lr=0.1)

    client = KasminaClient(args.address)
    client.register_host(parameter_specs(host))
    summary: dict = {"stages": []}
    reports = []
    germinated = client.apply_command(commands.germinate(SEED_ID, "BP001"))
    stage = stage_name(germinated.seed.stage)
    summary["stages"].append(stage)
    handle = watch(client, SEED_ID, host, seed)  # sketch mode; projections fetched once

    # The controller's plan: step → the seed operation sent after it.
    plan = {6: commands.start_grafting, 14: commands.stabilize, 16: commands.evaluate, 18: commands.fossilize}
    alpha = 0.0
    losses = []
    alive = True
    for step in range(1, args.steps + 1):
        h = host.embed(x)
        logits = host.classifier(h)
        if alive and stage == "SEED_STAGE_TRAINING":
            # The seed learns on its own loss, from a detached embedding: nothing of it reaches the host.
            loss = nn.functional.cross_entropy(logits, y) + nn.functional.cross_entropy(seed(h.detach()), y)
        else:
            if alive:
                logits = (1 - alpha) * logits + alpha * seed(h)
            loss = nn.functional.cross_entropy(logits, y)
        optimizer.zero_grad()
        loss.backward()
        losses.append(round(loss.item(), 6))
        if alive:
            report = handle.report()
            reports.append(report)
        optimizer.step()
        if alive and stage == "SEED_STAGE_BLENDING":
            alpha = client.advance_alpha(SEED_ID).alpha
        client.finalize_step(step)
        if alive and step in plan:
            response = client.apply_command(plan[step](SEED_ID))
            stage = stage_name(response.seed.stage) if response.HasField("seed") else "retired"
            summary["stages"].append(stage)
            if stage in ("SEED_STAGE_EMBARGOED", "SEED_STAGE_CULLED", "retired"):
                # A failed gate culled the seed: stop grafting it and auditing it.
                alive = False
                handle.remove()
                summary["gate_failure"] = [
                    {"gate": e.attributes.get("gate", ""), "reason": e.attributes.get("reason", "")}
                    for e in response.events
                    if e.description == "gate_event" and e.attributes.get("passed") == "false"
                ]
    if handle.active:
        handle.remove()

    packets = []
    while True:
        drained = client.drain_telemetry()
        packets.extend(drained.packets)
        if not drained.remaining_packets:
            break
    events = [e.description for p in packets for e in p.events]
    violated = [i + 1 for i, r in enumerate(reports) if not r.isolated]
    summary.update(
        {
            "reports": len(reports),
            "first_violation_step": violated[0] if violated else None,
            "max_violations": max(r.seed_violations for r in reports),
            "dot_first_violation": reports[violated[0] - 1].dot_product if violated else 0.0,
            "dot_standard_error": reports[violated[0] - 1 if violated else -1].dot_standard_error,
            "alpha": round(alpha, 6),
            "loss_first": losses[0],
            "loss_last": losses[-1],
            "packets": len(packets),
            "violation_events": events.count("violation_recorded"),
            "sketch_bytes_per_step": handle.last_pass.bytes_sent if handle.last_pass else 0,
            "full_bytes_per_step": 4 * sum(handle.keys.values()),
            "shared_parameters": handle.shared,
            "exported": {s.seed_id: stage_name(s.stage) for s in client.export_seed_states().seeds},
        }
    )
    client.close()
    print(json.dumps(summary, sort_keys=True))


if __name__ == "__main__":
    main()
