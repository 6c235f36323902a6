from google.protobuf import descriptor_pb2 as _descriptor_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Mode(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    MODE_UNSPECIFIED: _ClassVar[Mode]
    MODE_DELETE: _ClassVar[Mode]
    MODE_SOFT: _ClassVar[Mode]

class IfAbsent(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    IF_ABSENT_UNSPECIFIED: _ClassVar[IfAbsent]
    IF_ABSENT_ERROR: _ClassVar[IfAbsent]
    IF_ABSENT_SKIP: _ClassVar[IfAbsent]

class Scope(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    SCOPE_UNSPECIFIED: _ClassVar[Scope]
    SCOPE_EVENT: _ClassVar[Scope]
    SCOPE_NAMESPACE: _ClassVar[Scope]

class Storm(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    STORM_UNSPECIFIED: _ClassVar[Storm]
    STORM_GUARD: _ClassVar[Storm]
    STORM_NEVER: _ClassVar[Storm]
MODE_UNSPECIFIED: Mode
MODE_DELETE: Mode
MODE_SOFT: Mode
IF_ABSENT_UNSPECIFIED: IfAbsent
IF_ABSENT_ERROR: IfAbsent
IF_ABSENT_SKIP: IfAbsent
SCOPE_UNSPECIFIED: Scope
SCOPE_EVENT: Scope
SCOPE_NAMESPACE: Scope
STORM_UNSPECIFIED: Storm
STORM_GUARD: Storm
STORM_NEVER: Storm
EVENT_FIELD_NUMBER: _ClassVar[int]
event: _descriptor.FieldDescriptor

class FlushRule(_message.Message):
    __slots__ = ("key", "prefix", "tag", "cache", "target", "mode", "if_absent", "scope", "storm")
    KEY_FIELD_NUMBER: _ClassVar[int]
    PREFIX_FIELD_NUMBER: _ClassVar[int]
    TAG_FIELD_NUMBER: _ClassVar[int]
    CACHE_FIELD_NUMBER: _ClassVar[int]
    TARGET_FIELD_NUMBER: _ClassVar[int]
    MODE_FIELD_NUMBER: _ClassVar[int]
    IF_ABSENT_FIELD_NUMBER: _ClassVar[int]
    SCOPE_FIELD_NUMBER: _ClassVar[int]
    STORM_FIELD_NUMBER: _ClassVar[int]
    key: str
    prefix: str
    tag: str
    cache: str
    target: str
    mode: Mode
    if_absent: IfAbsent
    scope: Scope
    storm: Storm
    def __init__(self, key: _Optional[str] = ..., prefix: _Optional[str] = ..., tag: _Optional[str] = ..., cache: _Optional[str] = ..., target: _Optional[str] = ..., mode: _Optional[_Union[Mode, str]] = ..., if_absent: _Optional[_Union[IfAbsent, str]] = ..., scope: _Optional[_Union[Scope, str]] = ..., storm: _Optional[_Union[Storm, str]] = ...) -> None: ...

class EventOptions(_message.Message):
    __slots__ = ("flush", "key")
    FLUSH_FIELD_NUMBER: _ClassVar[int]
    KEY_FIELD_NUMBER: _ClassVar[int]
    flush: _containers.RepeatedCompositeFieldContainer[FlushRule]
    key: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, flush: _Optional[_Iterable[_Union[FlushRule, _Mapping]]] = ..., key: _Optional[_Iterable[str]] = ...) -> None: ...
