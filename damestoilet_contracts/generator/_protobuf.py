"""The Protobuf side of generation: protoc's ``_pb2`` modules and what the wrappers need of them.

grpcio-tools' bundled protoc writes ``_pb2.py`` and ``_pb2.pyi`` for the schema files that hold
events and every local file they import, into the package's ``_pb/`` folder. Their imports are
rewritten: local files to the generated package, ``damestoilet/v1/options.proto`` to the module
shipped with damestoilet_contracts. The descriptor set of the same run says where each message
and enum lives (file and nesting), and the numbers of enum values.
"""

from __future__ import annotations

import re
import subprocess
import sys
import tempfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from google.protobuf import descriptor_pb2

from damestoilet_contracts._errors import CodegenError
from damestoilet_contracts.loaders._protoc import proto_import_roots, proto_include_dirs

FDP = descriptor_pb2.FieldDescriptorProto

#: Where protoc's modules go inside the generated package.
PB_FOLDER = "_pb"
#: The shipped module the options import is rewritten to.
OPTIONS_MODULE = "damestoilet_contracts.proto.damestoilet.v1"
#: The shipped options file, as schema files import it.
OPTIONS_FILE = "damestoilet/v1/options.proto"

_FROM_IMPORT = re.compile(r"^from (?P<module>[\w.]+) import (?P<name>\w+_pb2) as (?P<alias>\w+)$")
_PLAIN_IMPORT = re.compile(r"^import (?P<name>\w+_pb2) as (?P<alias>\w+)$")


@dataclass(frozen=True, slots=True)
class Declared:
    """Where a message or enum lives: its ``.proto`` file and its attribute path in the pb2."""

    file: str  # carts/v1/carts.proto
    attribute: str  # CartUpdated.CartLine for a nested message
    package: str  # carts.v1


@dataclass(frozen=True, slots=True)
class ProtoOutput:
    """protoc's output for a schema directory, imports rewritten, and descriptor facts."""

    files: Mapping[str, str]  # path inside the package (POSIX) -> text
    sources: Mapping[str, str]  # same path -> its .proto, relative to the schema directory
    declared: Mapping[str, Declared]  # full name of a message or enum -> where it lives
    enum_numbers: Mapping[str, Mapping[str, int]]  # enum full name -> symbol -> number
    non_string_keys: frozenset[tuple[str, str]] = frozenset()  # map fields keyed by non-strings
    oneofs: frozenset[tuple[str, str]] = frozenset()  # fields of a real (not synthetic) oneof
    descriptor_set: bytes = b""  # the FileDescriptorSet of the files and their imports


def pb2_module(proto_file: str) -> str:
    """The module path of a file's pb2 inside the package: ``_pb.carts.v1.carts_pb2``."""
    stem = PurePosixPath(proto_file).with_suffix("")
    parts = [*stem.parent.parts, f"{stem.name.replace('-', '_')}_pb2"]
    return ".".join([PB_FOLDER, *parts])


def pb2_alias(proto_file: str) -> str:
    """The name a wrapper module imports a file's pb2 as: ``carts_v1_carts_pb2``."""
    stem = PurePosixPath(proto_file).with_suffix("")
    return "_".join([*stem.parent.parts, stem.name]).replace("-", "_").replace(".", "_") + "_pb2"


def run_protoc(root: Path, proto_files: Iterable[str], package: str) -> ProtoOutput:
    """Compile ``proto_files`` (import names under ``root``) and their local imports.

    Returns the rewritten ``_pb2.py``/``_pb2.pyi`` texts by path inside the package and the
    descriptor facts. Raises :class:`CodegenError` when protoc fails (lint reports why).
    """
    wanted = sorted(set(proto_files))
    if not wanted:
        return ProtoOutput({}, {}, {}, {})
    while True:
        files, descriptors = _protoc(root, wanted)
        local = sorted(
            f.name
            for f in descriptors.file
            if f.name != OPTIONS_FILE and not f.name.startswith("google/protobuf/")
        )
        missing = [name for name in local if name not in wanted]
        if not missing:
            break
        wanted = sorted({*wanted, *missing})
    local_set = set(local)
    texts = {path: _rewrite(text, local_set, package) for path, text in files.items()}
    sources = {path: _schema_path(root, _proto_of(path)) for path in texts}
    declared: dict[str, Declared] = {}
    numbers: dict[str, dict[str, int]] = {}
    keys: set[tuple[str, str]] = set()
    oneofs: set[tuple[str, str]] = set()
    for file in descriptors.file:
        prefix = f"{file.package}." if file.package else ""
        for message in file.message_type:
            _walk_message(file, message, prefix, "", declared, numbers, keys, oneofs)
        for enum in file.enum_type:
            _declare_enum(file, enum, prefix, "", declared, numbers)
    return ProtoOutput(
        texts,
        sources,
        declared,
        numbers,
        frozenset(keys),
        frozenset(oneofs),
        descriptors.SerializeToString(deterministic=True),
    )


def _proto_of(path: str) -> str:
    """The import name of the ``.proto`` a pb2 path comes from: ``_pb/a/v1/a_pb2.py`` ->
    ``a/v1/a.proto``."""
    relative = PurePosixPath(path).relative_to(PB_FOLDER)
    return relative.with_name(relative.name.split("_pb2")[0] + ".proto").as_posix()


def _schema_path(root: Path, name: str) -> str:
    """A file's import name as a path relative to the schema directory, POSIX."""
    for base in proto_import_roots(root):
        if (base / name).is_file():
            return (base / name).relative_to(root).as_posix()
    return name


def _protoc(
    root: Path, names: list[str]
) -> tuple[dict[str, str], descriptor_pb2.FileDescriptorSet]:
    with tempfile.TemporaryDirectory(prefix="damestoilet-generate-") as tmp:
        out = Path(tmp) / "out"
        out.mkdir()
        descriptor_file = Path(tmp) / "descriptors.binpb"
        command = [
            sys.executable,
            "-m",
            "grpc_tools.protoc",
            *(f"--proto_path={d}" for d in proto_include_dirs(root)),
            "--include_imports",
            f"--descriptor_set_out={descriptor_file}",
            f"--python_out={out}",
            f"--pyi_out={out}",
            *names,
        ]
        done = subprocess.run(command, cwd=tmp, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            raise CodegenError(
                f"protoc failed on {', '.join(names)}:\n{done.stderr.strip()}\n"
                "run damestoilet lint on the schema directory to see each problem"
            )
        descriptors = descriptor_pb2.FileDescriptorSet.FromString(descriptor_file.read_bytes())
        files = {
            f"{PB_FOLDER}/{path.relative_to(out).as_posix()}": path.read_text(encoding="utf-8")
            for path in sorted(out.rglob("*_pb2.py*"))
        }
    return files, descriptors


def _rewrite(text: str, local: set[str], package: str) -> str:
    """Point protoc's imports at the shipped options module and at the generated package."""
    local_modules = {
        PurePosixPath(name).with_suffix("").as_posix().replace("/", ".").replace("-", "_") + "_pb2"
        for name in local
    }
    lines: list[str] = []
    for line in text.splitlines():
        match = _FROM_IMPORT.match(line)
        if match is not None:
            module = f"{match['module']}.{match['name']}"
            if module == "damestoilet.v1.options_pb2":
                # Imported for its side effect (the options file enters the descriptor pool
                # first); the noqa keeps autoflake and line-level linters from removing it.
                line = (
                    f"from {OPTIONS_MODULE} import {match['name']} as {match['alias']}"
                    "  # noqa: F401"
                )
            elif module in local_modules:
                line = (
                    f"from {package}.{PB_FOLDER}.{match['module']} import {match['name']} "
                    f"as {match['alias']}"
                )
        else:
            match = _PLAIN_IMPORT.match(line)
            if match is not None and match["name"] in local_modules:
                line = f"from {package}.{PB_FOLDER} import {match['name']} as {match['alias']}"
        lines.append(line)
    return "\n".join(lines) + "\n"


def _walk_message(
    file: descriptor_pb2.FileDescriptorProto,
    message: descriptor_pb2.DescriptorProto,
    prefix: str,
    outer: str,
    declared: dict[str, Declared],
    numbers: dict[str, dict[str, int]],
    keys: set[tuple[str, str]],
    oneofs: set[tuple[str, str]],
) -> None:
    full_name = prefix + message.name
    attribute = f"{outer}{message.name}"
    declared[full_name] = Declared(file.name, attribute, file.package)
    entries = {
        f"{full_name}.{nested.name}": nested
        for nested in message.nested_type
        if nested.options.map_entry
    }
    for field in message.field:
        if field.HasField("oneof_index") and not field.proto3_optional:
            oneofs.add((full_name, field.name))
        entry = entries.get(field.type_name.lstrip("."))
        if entry is not None and len(entry.field) == 2 and entry.field[0].type != FDP.TYPE_STRING:
            keys.add((full_name, field.name))
    for nested in message.nested_type:
        if not nested.options.map_entry:
            _walk_message(
                file, nested, f"{full_name}.", f"{attribute}.", declared, numbers, keys, oneofs
            )
    for enum in message.enum_type:
        _declare_enum(file, enum, f"{full_name}.", f"{attribute}.", declared, numbers)


def _declare_enum(
    file: descriptor_pb2.FileDescriptorProto,
    enum: descriptor_pb2.EnumDescriptorProto,
    prefix: str,
    outer: str,
    declared: dict[str, Declared],
    numbers: dict[str, dict[str, int]],
) -> None:
    full_name = prefix + enum.name
    declared[full_name] = Declared(file.name, f"{outer}{enum.name}", file.package)
    numbers[full_name] = {value.name: value.number for value in enum.value}
