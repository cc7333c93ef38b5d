"""Fixtures: the real built Kasmina (node dist/src/main.js) on a free port, and a client of it."""
from __future__ import annotations

import os
import pathlib
import re
import subprocess
import sys
import threading
from typing import Callable, Dict, Iterator, List

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[3]
MAIN = ROOT / "dist" / "src" / "main.js"
SECRET = "pytest-secret"
# The package under test: the installed one when KASMINA_CLIENT_INSTALLED=1 (CI), else the source tree.
if os.environ.get("KASMINA_CLIENT_INSTALLED") != "1":
    sys.path.insert(0, str(ROOT / "clients" / "python" / "src"))

import kasmina_client  # noqa: E402
from kasmina_client import KasminaClient  # noqa: E402

if os.environ.get("KASMINA_CLIENT_INSTALLED") == "1" and str(ROOT / "clients") in kasmina_client.__file__:
    raise RuntimeError(f"KASMINA_CLIENT_INSTALLED=1 but kasmina_client comes from the source tree: {kasmina_client.__file__}")


class Server:
    def __init__(self, env: Dict[str, str]) -> None:
        if not MAIN.exists():
            raise RuntimeError(f"{MAIN} is missing: run npm run build first")
        full_env = {
            "PATH": os.environ.get("PATH", ""),
            "KASMINA_PORT": "0",
            "KASMINA_HOST": "127.0.0.1",
            "ESPER_LEYLINE_SECRET": SECRET,
            "KASMINA_LIFECYCLE_PACING": "driven",
            "KASMINA_STATE": "memory",
            **env,
        }
        self.process = subprocess.Popen(
            ["node", str(MAIN)], env=full_env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        )
        self.output: List[str] = []
        ready = threading.Event()
        self.address = ""

        def read() -> None:
            assert self.process.stdout is not None
            for line in self.process.stdout:
                self.output.append(line)
                match = re.match(r"kasmina listening on (\S+) ", line)
                if match:
                    self.address = match.group(1)
                    ready.set()
            ready.set()

        threading.Thread(target=read, daemon=True).start()
        if not ready.wait(30) or not self.address:
            self.stop()
            raise RuntimeError("Kasmina did not start:\n" + "".join(self.output))

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()


@pytest.fixture
def start_server() -> Iterator[Callable[..., Server]]:
    started: List[Server] = []

    def start(**env: str) -> Server:
        server = Server(env)
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


@pytest.fixture
def server(start_server: Callable[..., Server]) -> Server:
    return start_server()


@pytest.fixture
def client(server: Server) -> Iterator[KasminaClient]:
    with KasminaClient(server.address, secret=SECRET) as c:
        yield c
