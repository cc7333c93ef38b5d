"""Python client of Kasmina (``esper.kasmina.v1.KasminaService``).

``KasminaClient`` has one method per RPC; ``kasmina_client.commands`` builds every command type;
``kasmina_client.torch.watch`` audits gradient isolation from PyTorch hooks (torch is optional).
Messages are the generated ``kasmina_pb2`` / ``leyline_pb2`` modules, re-exported here.
"""
from . import commands
from ._proto.esper.kasmina.v1 import kasmina_pb2
from ._proto.esper.leyline.v1 import leyline_pb2
from .client import DEFAULT_CHUNK_ELEMENTS, DEFAULT_MAX_REDIRECTS, TRAINING_RUN_METADATA, KasminaClient, gradient_chunks
from .errors import OWNER_METADATA, CommandPossiblyApplied, KasminaError
from .signing import command_signature, sign_command

__all__ = [
    "DEFAULT_CHUNK_ELEMENTS",
    "DEFAULT_MAX_REDIRECTS",
    "OWNER_METADATA",
    "TRAINING_RUN_METADATA",
    "CommandPossiblyApplied",
    "KasminaClient",
    "KasminaError",
    "command_signature",
    "commands",
    "gradient_chunks",
    "kasmina_pb2",
    "leyline_pb2",
    "sign_command",
]
__version__ = "0.1.0"
