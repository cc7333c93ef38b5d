"""The Python client over real replicas: a real etcd (/usr/bin/etcd) and two built Kasmina processes
with KASMINA_STATE=etcd. A client given the replica that does not own its run reaches the owner by
itself, and after the owner is SIGKILLed its next calls succeed on the new owner, nothing twice."""
from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import tempfile
import time
import urllib.request
from typing import Callable, Iterator, List

import grpc
import pytest

from kasmina_client import KasminaClient, KasminaError, commands, kasmina_pb2

from conftest import SECRET, Server

LEASE_MS = 2000  # the smallest KASMINA_LEASE_MS: the takeover waits for the lease to run out in etcd
RUN = "py-replicas"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _healthy(endpoint: str) -> bool:
    try:
        with urllib.request.urlopen(f"{endpoint}/health", timeout=1) as response:
            return json.loads(response.read()).get("health") == "true"
    except (OSError, ValueError):
        return False


@pytest.fixture
def etcd() -> Iterator[str]:
    """One etcd member on free 127.0.0.1 ports with a temporary data dir (as test/support/etcd-server.ts)."""
    binary = shutil.which("etcd")
    if binary is None:
        raise RuntimeError("etcd is not installed; the replica tests need a real etcd (apt-get install -y etcd-server)")
    data = tempfile.mkdtemp(prefix="kasmina-py-etcd-")
    client_url, peer_url = f"http://127.0.0.1:{_free_port()}", f"http://127.0.0.1:{_free_port()}"
    process = subprocess.Popen(
        [binary, "--name", "m0", "--data-dir", data,
         "--listen-client-urls", client_url, "--advertise-client-urls", client_url,
         "--listen-peer-urls", peer_url, "--initial-advertise-peer-urls", peer_url,
         "--initial-cluster", f"m0={peer_url}", "--initial-cluster-state", "new",
         "--max-txn-ops", "4096", "--log-level", "warn"],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 20
        while not _healthy(client_url):
            if process.poll() is not None:
                raise RuntimeError(f"etcd exited during start-up: {process.stderr.read().decode() if process.stderr else ''}")
            if time.monotonic() > deadline:
                raise RuntimeError("etcd was not healthy within 20 s")
            time.sleep(0.05)
        yield client_url
    finally:
        process.kill()
        process.wait()
        shutil.rmtree(data, ignore_errors=True)


def _replica(start_server: Callable[..., Server], endpoint: str) -> Server:
    port = _free_port()
    return start_server(
        KASMINA_STATE="etcd", KASMINA_ETCD_ENDPOINTS=endpoint, KASMINA_PORT=str(port),
        KASMINA_ADVERTISE_ADDRESS=f"127.0.0.1:{port}", KASMINA_LEASE_MS=str(LEASE_MS), ESPER_LEYLINE_SECRET=SECRET,
    )


def _seed_ids(client: KasminaClient) -> List[str]:
    return sorted(s.seed_id for s in client.export_seed_states().seeds)


def test_a_client_of_the_other_replica_reaches_the_owner_and_follows_the_run_after_the_owner_is_killed(
    etcd: str, start_server: Callable[..., Server]
) -> None:
    owner, other = _replica(start_server, etcd), _replica(start_server, etcd)

    # The first call takes the run: `owner` serves it from now on.
    with KasminaClient(owner.address, secret=SECRET, training_run=RUN) as first:
        first.register_host([kasmina_pb2.ParameterSpec(key="host.w", shape=[4], trainable=True, element_bytes=4)])
        first.apply_command(commands.germinate("seed-1", "BP001"))

    with KasminaClient(other.address, secret=SECRET, training_run=RUN, retries=3, backoff_seconds=0.05) as client:
        assert _seed_ids(client) == ["seed-1"]  # answered by the owner, through a redirect
        assert client.target == owner.address
        second = client.sign(commands.germinate("seed-2", "BP001"))
        client.apply_command(second, sign=False)

        third = client.sign(commands.germinate("seed-3", "BP001"))
        owner.process.kill()  # SIGKILL: no drain, the lease stays in etcd until its TTL runs out
        owner.process.wait(10)
        killed = time.monotonic()

        # Until the lease runs out `other` still names the dead owner; the client's own retries
        # may give up meanwhile (UNAVAILABLE), and the trainer simply calls again.
        deadline = time.monotonic() + LEASE_MS / 1000 + 6
        unavailable = 0
        while True:
            try:
                response = client.apply_command(third, sign=False)
                assert response.seed.seed_id == "seed-3"
                break
            except KasminaError as error:
                if unavailable and error.reason == "nonce_replayed":
                    break  # an earlier call's answer was lost after it applied: the seed check below says once
                assert error.code == grpc.StatusCode.UNAVAILABLE, error
                unavailable += 1
                assert time.monotonic() < deadline, f"no new owner within the lease TTL plus 6 s: {error}"
        print(f"new owner served {time.monotonic() - killed:.2f} s after the kill ({unavailable} UNAVAILABLE answers)")
        assert client.target == other.address
        assert _seed_ids(client) == ["seed-1", "seed-2", "seed-3"]

        # Both commands are in the shared ledger: a resend is refused and applies nothing again.
        for command in (second, third):
            with pytest.raises(KasminaError) as replayed:
                client.apply_command(command, sign=False)
            assert replayed.value.reason == "nonce_replayed" and not replayed.value.possibly_applied
        assert _seed_ids(client) == ["seed-1", "seed-2", "seed-3"]
        assert client.get_status().training_run == RUN
