"""The one exception type the client raises for a failed call."""
from __future__ import annotations

import re
from typing import Optional

import grpc

# Kasmina's refusals start with a reason code where the contract defines one
# (`invalid_signature: ...`, `verifier_unavailable: ...`, DESIGN §2).
_REASON = re.compile(r"^([a-z][a-z0-9_]*):")


class KasminaError(Exception):
    """A call Kasmina refused or could not serve.

    ``code`` is the gRPC status (``grpc.StatusCode``), ``details`` the server's message, and
    ``reason`` its leading reason code when it has one (``"nonce_replayed"``), else the message.
    """

    def __init__(self, code: grpc.StatusCode, details: str, method: str = "") -> None:
        self.code = code
        self.details = details
        self.method = method
        match = _REASON.match(details)
        self.reason_code: Optional[str] = match.group(1) if match else None
        self.reason: str = self.reason_code or details
        where = f"{method}: " if method else ""
        super().__init__(f"{where}{code.name}: {details}")

    @classmethod
    def from_rpc(cls, error: grpc.RpcError, method: str = "") -> "KasminaError":
        code = error.code() if isinstance(error, grpc.Call) else grpc.StatusCode.UNKNOWN
        details = error.details() if isinstance(error, grpc.Call) else str(error)
        return cls(code or grpc.StatusCode.UNKNOWN, details or "", method)
