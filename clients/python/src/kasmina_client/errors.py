"""The exception types the client raises for a failed call."""
from __future__ import annotations

import re
from typing import Optional

import grpc

# Kasmina's refusals start with a reason code where the contract defines one
# (`invalid_signature: ...`, `verifier_unavailable: ...`, DESIGN §2).
_REASON = re.compile(r"^([a-z][a-z0-9_]*):")
# DESIGN §2.4: trailing metadata of UNAVAILABLE naming the replica that owns the run.
OWNER_METADATA = "kasmina-owner"


class KasminaError(Exception):
    """A call Kasmina refused or could not serve.

    ``code`` is the gRPC status (``grpc.StatusCode``), ``details`` the server's message, and
    ``reason`` its leading reason code when it has one (``"nonce_replayed"``), else the message.
    ``owner`` is the ``kasmina-owner`` trailing metadata (``HOST:PORT`` of the replica that serves
    the run) when the answer carried one. ``possibly_applied`` is True only on
    :class:`CommandPossiblyApplied`.
    """

    possibly_applied: bool = False

    def __init__(self, code: grpc.StatusCode, details: str, method: str = "", owner: Optional[str] = None) -> None:
        self.code = code
        self.details = details
        self.method = method
        self.owner = owner
        match = _REASON.match(details)
        self.reason_code: Optional[str] = match.group(1) if match else None
        self.reason: str = self.reason_code or details
        where = f"{method}: " if method else ""
        super().__init__(f"{where}{code.name}: {details}")

    @classmethod
    def from_rpc(cls, error: grpc.RpcError, method: str = "") -> "KasminaError":
        code = error.code() if isinstance(error, grpc.Call) else grpc.StatusCode.UNKNOWN
        details = error.details() if isinstance(error, grpc.Call) else str(error)
        return cls(code or grpc.StatusCode.UNKNOWN, details or "", method, owner_of(error))


class CommandPossiblyApplied(KasminaError):
    """``nonce_replayed`` on a resend of a command whose earlier attempt's answer was lost.

    The client resends a command (same id, same signature) when an attempt fails with UNAVAILABLE
    and no ``kasmina-owner``: that attempt may have been applied before its answer was lost. The
    nonce ledger then refuses the resend, so this refusal most likely means the command *was*
    applied once (it was never applied twice). Check the run's state (``export_seed_states``) before
    issuing a new command for the same intent. ``possibly_applied`` is True.
    """

    possibly_applied = True


def owner_of(error: grpc.RpcError) -> Optional[str]:
    """The ``kasmina-owner`` trailing metadata of a failed call, if any."""
    if not isinstance(error, grpc.Call):
        return None
    for key, value in error.trailing_metadata() or ():
        if key == OWNER_METADATA and isinstance(value, str) and value:
            return value
    return None
