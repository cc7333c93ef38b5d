"""Command signing exactly as DESIGN §2 / spec §6 say: HMAC-SHA256 keyed with the UTF-8 secret over
the command's deterministic encoding without its ``signature`` annotation, standard base64, carried
in ``annotations["signature"]``."""
from __future__ import annotations

import base64
import hashlib
import hmac
import os
import uuid
from typing import Optional, Union

from ._proto.esper.leyline.v1 import leyline_pb2 as leyline

SECRET_ENV = "ESPER_LEYLINE_SECRET"


def secret_from_env() -> Optional[bytes]:
    """The secret from ESPER_LEYLINE_SECRET (the service's own variable), if set."""
    value = os.environ.get(SECRET_ENV)
    return value.encode("utf-8") if value else None


def _key(secret: Union[str, bytes]) -> bytes:
    return secret.encode("utf-8") if isinstance(secret, str) else secret


def command_signature(command: leyline.AdaptationCommand, secret: Union[str, bytes]) -> str:
    """The base64 signature of ``command`` (its own ``signature`` annotation is left out)."""
    unsigned = leyline.AdaptationCommand()
    unsigned.CopyFrom(command)
    unsigned.annotations.pop("signature", None)
    mac = hmac.new(_key(secret), unsigned.SerializeToString(deterministic=True), hashlib.sha256).digest()
    return base64.b64encode(mac).decode("ascii")


def sign_command(command: leyline.AdaptationCommand, secret: Union[str, bytes]) -> leyline.AdaptationCommand:
    """Fills a missing ``command_id`` (a fresh UUID) and ``issued_at`` (now), then signs in place.

    Returns the same command. Each ``command_id`` is accepted once and commands must be fresh
    (60 s), so sign just before sending.
    """
    if not command.command_id:
        command.command_id = f"py-{uuid.uuid4()}"
    if not command.HasField("issued_at"):
        command.issued_at.GetCurrentTime()
    command.annotations["signature"] = command_signature(command, secret)
    return command
