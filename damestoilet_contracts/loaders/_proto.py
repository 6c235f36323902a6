"""The Protobuf loader: ``.proto`` files to event types of the contract model.

A message is an event type when it carries the ``(damestoilet.v1.event)`` option of the shipped
``damestoilet/v1/options.proto``. The options are read through the generated options module,
imported before any descriptor set is parsed: without it the option would stay an unknown
field of ``MessageOptions`` and the rules would silently vanish.

In schemas, enum values are written with their prefix, ``mode: MODE_SOFT`` and
``if_absent: IF_ABSENT_SKIP``; they are lowered to the vocabulary's ``soft`` and ``skip`` here,
and ``*_UNSPECIFIED`` counts as not given.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, cast

from google.protobuf import descriptor_pb2
from google.protobuf.message import Message

from damestoilet_contracts._errors import Problem, SourceLocation
from damestoilet_contracts.loaders._key import build_key
from damestoilet_contracts.loaders._proto_source import SourceInfo
from damestoilet_contracts.loaders._protoc import compile_protos
from damestoilet_contracts.loaders._rules import RawRule, build_rules, rules_fingerprint
from damestoilet_contracts.model import EventType, Field, Kind, TypeRef
from damestoilet_contracts.proto.damestoilet.v1 import options_pb2

if TYPE_CHECKING:
    from google.protobuf.internal.extension_dict import _ExtensionFieldDescriptor

FDP = descriptor_pb2.FieldDescriptorProto
FeatureSet = descriptor_pb2.FeatureSet

# Field numbers of descriptor.proto, as SourceCodeInfo paths use them.
_FILE_MESSAGE, _FILE_ENUM = 4, 5
_MESSAGE_FIELD, _MESSAGE_NESTED, _MESSAGE_ENUM, _MESSAGE_OPTIONS = 2, 3, 4, 7

_SCALARS = {
    FDP.TYPE_STRING: Kind.STRING,
    FDP.TYPE_BOOL: Kind.BOOL,
    FDP.TYPE_BYTES: Kind.BYTES,
    FDP.TYPE_DOUBLE: Kind.FLOAT,
    FDP.TYPE_FLOAT: Kind.FLOAT,
    **dict.fromkeys(
        (
            FDP.TYPE_INT32,
            FDP.TYPE_INT64,
            FDP.TYPE_UINT32,
            FDP.TYPE_UINT64,
            FDP.TYPE_SINT32,
            FDP.TYPE_SINT64,
            FDP.TYPE_FIXED32,
            FDP.TYPE_FIXED64,
            FDP.TYPE_SFIXED32,
            FDP.TYPE_SFIXED64,
        ),
        Kind.INT,
    ),
}
# The wire type of each integer type, kept in the model (TypeScript needs it for bigint).
_WIDTHS = {
    FDP.TYPE_INT32: "int32",
    FDP.TYPE_INT64: "int64",
    FDP.TYPE_UINT32: "uint32",
    FDP.TYPE_UINT64: "uint64",
    FDP.TYPE_SINT32: "sint32",
    FDP.TYPE_SINT64: "sint64",
    FDP.TYPE_FIXED32: "fixed32",
    FDP.TYPE_FIXED64: "fixed64",
    FDP.TYPE_SFIXED32: "sfixed32",
    FDP.TYPE_SFIXED64: "sfixed64",
}
# Well-known messages that stand for one value; their JSON form is that value, and a field of
# one of them has presence (so it is nullable like any message field).
_WELL_KNOWN = {
    "google.protobuf.Timestamp": Kind.TIMESTAMP,
    "google.protobuf.StringValue": Kind.STRING,
    "google.protobuf.BoolValue": Kind.BOOL,
    "google.protobuf.BytesValue": Kind.BYTES,
    "google.protobuf.DoubleValue": Kind.FLOAT,
    "google.protobuf.FloatValue": Kind.FLOAT,
    "google.protobuf.Int32Value": Kind.INT,
    "google.protobuf.Int64Value": Kind.INT,
    "google.protobuf.UInt32Value": Kind.INT,
    "google.protobuf.UInt64Value": Kind.INT,
}
# The generated stub types the extension as a plain FieldDescriptor; say what it extends.
_EVENT = cast(
    "_ExtensionFieldDescriptor[descriptor_pb2.MessageOptions, options_pb2.EventOptions]",
    options_pb2.event,
)
_MODES = {options_pb2.MODE_DELETE: "delete", options_pb2.MODE_SOFT: "soft"}
_IF_ABSENT = {options_pb2.IF_ABSENT_ERROR: "error", options_pb2.IF_ABSENT_SKIP: "skip"}
_SCOPES = {options_pb2.SCOPE_EVENT: "event", options_pb2.SCOPE_NAMESPACE: "namespace"}
_STORMS = {options_pb2.STORM_GUARD: "guard", options_pb2.STORM_NEVER: "never"}


@dataclass(frozen=True, slots=True)
class _Declared:
    """A message or enum of the descriptor set, with its file and SourceCodeInfo path."""

    full_name: str
    proto: descriptor_pb2.DescriptorProto | descriptor_pb2.EnumDescriptorProto
    file: descriptor_pb2.FileDescriptorProto
    path: tuple[int, ...]
    # Field presence inherited from the file and enclosing messages (editions only).
    presence: FeatureSet.FieldPresence.ValueType


def load_proto(paths: Sequence[Path], root: Path) -> tuple[list[EventType], list[Problem]]:
    """Load the event types of ``paths``, ``.proto`` files under the schema root ``root``.

    The files are compiled together, imported relative to ``root / "proto"`` (the buf module
    root) when it exists, else to ``root``; the shipped options file and the well-known types
    are on the include path too. ``EventType.source`` is the file's import name.

    Returns the event types (messages with the ``(damestoilet.v1.event)`` option, sorted by
    full name) and every problem found, sorted: protoc's errors at protoc's own line and column, a
    missing import of the options file, and each rule's attribute and template problems.
    Never raises for a broken schema.
    """
    compiled = compile_protos(paths, root)
    problems = list(compiled.problems)
    loader = _Loader(compiled.descriptors, compiled.texts, compiled.shown)
    events: list[EventType] = []
    for declared in loader.messages():
        if declared.file.name not in compiled.names:
            continue
        event = loader.event(declared, problems)
        if event is not None:
            events.append(event)
    events.sort(key=lambda e: e.full_name)
    return events, sorted(problems)


class _Loader:
    """Resolves types, locations and rules across the files of one descriptor set."""

    def __init__(
        self,
        descriptors: descriptor_pb2.FileDescriptorSet,
        texts: dict[str, str],
        shown: dict[str, str],
    ) -> None:
        self._shown = shown
        self._declared: dict[str, _Declared] = {}
        self._sources: dict[str, SourceInfo] = {}
        for file in descriptors.file:
            self._sources[file.name] = SourceInfo(file, texts.get(file.name))
            presence = _file_presence(file)
            prefix = f"{file.package}." if file.package else ""
            for i, message in enumerate(file.message_type):
                self._declare_message(message, prefix, file, (_FILE_MESSAGE, i), presence)
            for i, enum in enumerate(file.enum_type):
                self._declare(enum, prefix, file, (_FILE_ENUM, i), presence)

    def _declare(
        self,
        proto: descriptor_pb2.DescriptorProto | descriptor_pb2.EnumDescriptorProto,
        prefix: str,
        file: descriptor_pb2.FileDescriptorProto,
        path: tuple[int, ...],
        presence: FeatureSet.FieldPresence.ValueType,
    ) -> None:
        full_name = prefix + proto.name
        self._declared[full_name] = _Declared(full_name, proto, file, path, presence)

    def _declare_message(
        self,
        message: descriptor_pb2.DescriptorProto,
        prefix: str,
        file: descriptor_pb2.FileDescriptorProto,
        path: tuple[int, ...],
        presence: FeatureSet.FieldPresence.ValueType,
    ) -> None:
        features = message.options.features
        if features.HasField("field_presence"):
            presence = features.field_presence
        self._declare(message, prefix, file, path, presence)
        inner = f"{prefix}{message.name}."
        for i, nested in enumerate(message.nested_type):
            self._declare_message(nested, inner, file, (*path, _MESSAGE_NESTED, i), presence)
        for i, enum in enumerate(message.enum_type):
            self._declare(enum, inner, file, (*path, _MESSAGE_ENUM, i), presence)

    def messages(self) -> Iterator[_Declared]:
        """Every message of the set, nested ones included, in declaration order."""
        for declared in self._declared.values():
            if isinstance(declared.proto, descriptor_pb2.DescriptorProto):
                yield declared

    def location(self, declared: _Declared, path: tuple[int, ...]) -> SourceLocation:
        """Where the element at ``path`` of ``declared``'s file starts (line 1 if unknown)."""
        position = self._sources[declared.file.name].position(path) or (1, 0)
        # Files of the schema directory are shown as given; imported ones by their name.
        shown = self._shown.get(declared.file.name, declared.file.name)
        return SourceLocation(shown, *position)

    def event(self, declared: _Declared, problems: list[Problem]) -> EventType | None:
        """The event type of ``declared``, or None when it does not carry the option."""
        message = declared.proto
        assert isinstance(message, descriptor_pb2.DescriptorProto)
        if not message.options.HasExtension(_EVENT):
            return None
        record = self._record(declared, nullable=False, stack=())
        location = self.location(declared, declared.path)
        option_path = (*declared.path, _MESSAGE_OPTIONS, _EVENT.number)
        source = self._sources[declared.file.name]
        lines, hashes = source.rule_lines(option_path)
        problems.extend(
            Problem(
                SourceLocation(location.path, line),
                f"'#' in the (damestoilet.v1.event) value of {declared.full_name} comments out "
                "the rest of it (protoc reads the value as one line), so the rules after it "
                "are silently lost; use // or /* */ comments there",
            )
            for line in hashes
        )
        flush = message.options.Extensions[_EVENT].flush
        if not flush:
            option_line = (source.position(option_path) or (location.line, 0))[0]
            problems.append(
                Problem(
                    SourceLocation(location.path, option_line),
                    f"the (damestoilet.v1.event) option of message {declared.full_name} has no "
                    "flush rule; give at least one, or drop the option if the message is not "
                    "an event",
                )
            )
        raw_rules = []
        for index, rule in enumerate(flush):
            line = lines[index] if index < len(lines) else location.line
            rule_location = SourceLocation(location.path, line)
            raw_rules.append(RawRule(rule_location, _rule_attrs(rule)))
        rules, rule_problems = build_rules(declared.full_name, record, raw_rules, spelling="proto")
        problems.extend(rule_problems)
        key: tuple[tuple[str, ...], ...] = ()
        key_location = None
        written_key = list(message.options.Extensions[_EVENT].key)
        if written_key:
            option_line = (source.position(option_path) or (location.line, 0))[0]
            key_location = SourceLocation(location.path, option_line)
            key, key_problems = build_key(
                declared.full_name, record, written_key, key_location, spelling="proto"
            )
            problems.extend(key_problems)
        return EventType(
            full_name=declared.full_name,
            format="proto",
            fields=record.fields,
            rules=rules,
            location=location,
            schema_fingerprint=self._fingerprint(declared),
            rules_fingerprint=rules_fingerprint(rules),
            doc=self._sources[declared.file.name].comment(declared.path),
            source=declared.file.name,
            key=key,
            key_location=key_location,
        )

    def _record(self, declared: _Declared, *, nullable: bool, stack: tuple[str, ...]) -> TypeRef:
        message = declared.proto
        assert isinstance(message, descriptor_pb2.DescriptorProto)
        if declared.full_name in stack:
            # A recursive message: the inner occurrence is cut, named but without fields.
            return TypeRef(Kind.RECORD, nullable=nullable, name=declared.full_name)
        inner = (*stack, declared.full_name)
        fields = []
        for i, field in enumerate(message.field):
            path = (*declared.path, _MESSAGE_FIELD, i)
            fields.append(
                Field(
                    name=field.name,
                    type=self._field_type(declared, field, inner),
                    location=self.location(declared, path),
                    doc=self._sources[declared.file.name].comment(path),
                    number=field.number,
                )
            )
        return TypeRef(
            Kind.RECORD, nullable=nullable, name=declared.full_name, fields=tuple(fields)
        )

    def _field_type(
        self, owner: _Declared, field: descriptor_pb2.FieldDescriptorProto, stack: tuple[str, ...]
    ) -> TypeRef:
        if field.label == FDP.LABEL_REPEATED:
            target = self._declared.get(field.type_name.lstrip("."))
            if (
                target is not None
                and isinstance(target.proto, descriptor_pb2.DescriptorProto)
                and target.proto.options.map_entry
            ):
                value = target.proto.field[1]
                return TypeRef(Kind.MAP, items=self._value_type(target, value, False, stack))
            return TypeRef(Kind.ARRAY, items=self._value_type(owner, field, False, stack))
        return self._value_type(owner, field, _has_presence(owner, field), stack)

    def _value_type(
        self,
        owner: _Declared,
        field: descriptor_pb2.FieldDescriptorProto,
        nullable: bool,
        stack: tuple[str, ...],
    ) -> TypeRef:
        if field.type in _SCALARS:
            return TypeRef(_SCALARS[field.type], nullable=nullable, width=_WIDTHS.get(field.type))
        name = field.type_name.lstrip(".")
        if name in _WELL_KNOWN:
            return TypeRef(_WELL_KNOWN[name], nullable=nullable, name=name, logical=name)
        target = self._declared[name]
        if isinstance(target.proto, descriptor_pb2.EnumDescriptorProto):
            symbols = tuple(value.name for value in target.proto.value)
            return TypeRef(Kind.ENUM, nullable=nullable, name=name, symbols=symbols)
        return self._record(target, nullable=nullable, stack=stack)

    def _fingerprint(self, declared: _Declared) -> str:
        """SHA-256 (hex) of the message and every type it uses, options stripped.

        Each unit is hashed as its full name, its file's syntax and its deterministic
        serialization; a type nested in another unit is already part of that unit's bytes.
        """
        used: set[str] = set()
        self._collect(declared, used)
        nested = {n for n in used if any(n.startswith(outer + ".") for outer in used)}
        units = [declared.full_name, *sorted(used - nested - {declared.full_name})]
        digest = hashlib.sha256()
        for name in units:
            unit = self._declared[name]
            stripped = type(unit.proto)()
            stripped.CopyFrom(unit.proto)  # type: ignore[arg-type]
            _strip_options(stripped)
            data = stripped.SerializeToString(deterministic=True)
            syntax = unit.file.syntax or "proto2"
            if syntax == "editions":
                syntax = f"edition {unit.file.edition}"
            for part in (name.encode(), syntax.encode(), data):
                digest.update(len(part).to_bytes(8, "big"))
                digest.update(part)
        return digest.hexdigest()

    def _collect(self, declared: _Declared, used: set[str]) -> None:
        if declared.full_name in used:
            return
        used.add(declared.full_name)
        if isinstance(declared.proto, descriptor_pb2.DescriptorProto):
            for field in declared.proto.field:
                target = self._declared.get(field.type_name.lstrip("."))
                if target is not None:
                    self._collect(target, used)


def _rule_attrs(rule: options_pb2.FlushRule) -> dict[str, object]:
    """The attributes a rule sets, enums lowered to the vocabulary's words; unset ones left out."""
    attrs: dict[str, object] = {}
    for name in ("key", "prefix", "tag", "cache", "target"):
        if rule.HasField(name):
            attrs[name] = getattr(rule, name)
    if rule.HasField("mode") and rule.mode != options_pb2.MODE_UNSPECIFIED:
        attrs["mode"] = _MODES.get(rule.mode, str(rule.mode))
    if rule.HasField("if_absent") and rule.if_absent != options_pb2.IF_ABSENT_UNSPECIFIED:
        attrs["if_absent"] = _IF_ABSENT.get(rule.if_absent, str(rule.if_absent))
    if rule.HasField("scope") and rule.scope != options_pb2.SCOPE_UNSPECIFIED:
        attrs["scope"] = _SCOPES.get(rule.scope, str(rule.scope))
    if rule.HasField("storm") and rule.storm != options_pb2.STORM_UNSPECIFIED:
        attrs["storm"] = _STORMS.get(rule.storm, str(rule.storm))
    return attrs


def _file_presence(file: descriptor_pb2.FileDescriptorProto) -> FeatureSet.FieldPresence.ValueType:
    if file.syntax != "editions":
        return FeatureSet.FIELD_PRESENCE_UNKNOWN
    features = file.options.features
    # Every edition so far defaults to explicit presence.
    return features.field_presence if features.HasField("field_presence") else FeatureSet.EXPLICIT


def _has_presence(owner: _Declared, field: descriptor_pb2.FieldDescriptorProto) -> bool:
    """Whether a singular field can be absent: proto3 ``optional``, oneofs, messages, proto2."""
    if field.type in (FDP.TYPE_MESSAGE, FDP.TYPE_GROUP):
        return True
    if field.HasField("oneof_index") or field.proto3_optional:
        return True
    syntax = owner.file.syntax or "proto2"
    if syntax == "proto2":
        return field.label == FDP.LABEL_OPTIONAL
    if syntax == "editions":
        features = field.options.features
        presence = features.field_presence if features.HasField("field_presence") else None
        return (presence or owner.presence) == FeatureSet.EXPLICIT
    return False


def _strip_options(proto: Message) -> None:
    """Clear every options message under ``proto``, keeping editions ``features`` (semantics)."""
    for descriptor, value in proto.ListFields():
        if descriptor.name == "options":
            kept = None
            if value.HasField("features"):
                kept = FeatureSet()
                kept.CopyFrom(value.features)
            if kept is None:
                proto.ClearField("options")
            else:
                value.Clear()
                value.features.CopyFrom(kept)
        elif descriptor.message_type is not None:
            for child in value if descriptor.is_repeated else [value]:
                _strip_options(child)
