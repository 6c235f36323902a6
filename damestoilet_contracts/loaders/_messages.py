"""Message classes built at run time from a schema directory, for commands that meet payloads
without generated code (``damestoilet emit``, ``damestoilet verify --schemas``)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from damestoilet_contracts._errors import PayloadError
from damestoilet_contracts.loaders._protoc import compile_protos, proto_import_roots
from damestoilet_contracts.model import EventType

if TYPE_CHECKING:
    from google.protobuf.message import Message


def proto_message_class(event: EventType, root: Path) -> type[Message]:
    """The Protobuf message class of ``event`` (format ``proto``) of the schema directory
    ``root``, compiled from its ``.proto`` file into a pool of its own.

    Raises :class:`PayloadError` when the file cannot be found or does not compile.
    """
    from google.protobuf import descriptor_pool, message_factory

    candidates = (base / event.source for base in proto_import_roots(root))
    path = next((candidate for candidate in candidates if candidate.is_file()), None)
    if path is None:
        raise PayloadError(f"cannot find {event.source} of {event.full_name} under {root}")
    compiled = compile_protos([path], root)
    if compiled.problems:
        raise PayloadError("\n".join(str(p) for p in compiled.problems))
    pool = descriptor_pool.DescriptorPool()
    for file in compiled.descriptors.file:  # protoc lists dependencies first
        pool.Add(file)
    return message_factory.GetMessageClass(pool.FindMessageTypeByName(event.full_name))
