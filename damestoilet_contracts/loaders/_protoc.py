"""Compile ``.proto`` files to a descriptor set with grpcio-tools' bundled protoc.

protoc runs in a subprocess so that its stderr can be read: each ``file:line:col: message``
line becomes a :class:`Problem` at that place. protoc stops at the first file that does not
parse, so the files that failed are set aside and the rest compiled again, until every file
either compiled or has its problems reported: lint shows all of them in one run.

Files are imported relative to ``<schema dir>/proto`` (the buf module root) when it exists,
else to the schema directory. The shipped ``damestoilet/v1/options.proto`` and protoc's own
well-known types are always on the include path, after them.
"""

from __future__ import annotations

import difflib
import importlib.util
import re
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from google.protobuf import descriptor_pb2

from damestoilet_contracts._errors import Problem, SourceLocation
from damestoilet_contracts.loaders._rules import did_you_mean
from damestoilet_contracts.proto.damestoilet.v1 import options_pb2

#: Where ``damestoilet/v1/options.proto`` ships, as an include directory.
OPTIONS_INCLUDE_DIR = Path(__file__).resolve().parent.parent / "proto"
#: The import line a file using the option needs.
OPTIONS_IMPORT = 'import "damestoilet/v1/options.proto";'

_EVENT_OPTION = "damestoilet.v1.event"
_LINE_COL = re.compile(r"^(?P<file>[^:\n]+):(?P<line>\d+):(?P<col>\d+): (?P<msg>.*)$")
_FILE_ONLY = re.compile(r"^(?P<file>[^:\n]+\.proto): (?P<msg>.*)$")
_NO_FIELD = re.compile(
    r'Message type "damestoilet\.v1\.(?P<type>\w+)" has no field named "(?P<f>\w+)"'
)
_UNKNOWN_OPTION = re.compile(r'^Option "\((?P<name>\.?[\w.]+)\)" unknown\.')
_NO_ENUM_VALUE = re.compile(r'Unknown enumeration value of "(?P<v>\w+)" for field "(?P<f>\w+)"')
# A use of the option, spaces allowed where protoc allows them.
_OPTION_USE = re.compile(r"\(\s*\.?\s*damestoilet\s*\.\s*v1\s*\.\s*event\s*\)")
_OPTIONS_IMPORTED = re.compile(
    r'\bimport\s+(?:public\s+|weak\s+|option\s+)?"damestoilet/v1/options\.proto"\s*;'
)
_COMMENT = re.compile(r"//[^\n]*|/\*.*?\*/", re.DOTALL)


@dataclass(frozen=True, slots=True)
class Compiled:
    """The outcome of compiling a schema directory: descriptors of the files that compiled.

    Files are named as protoc names them, relative to their import root (see
    :func:`proto_import_roots`). ``names`` are the files that compiled; ``texts`` holds the
    source text and ``shown`` the path as given (for messages) of every file read.
    """

    descriptors: descriptor_pb2.FileDescriptorSet
    names: tuple[str, ...]
    texts: dict[str, str]
    shown: dict[str, str]
    problems: list[Problem]


def proto_import_roots(root: Path) -> tuple[Path, ...]:
    """The import roots of the schema directory ``root``, first match wins.

    ``root / "proto"`` (the buf module root, where ``assets/v1/assets.proto`` is imported as
    such) when it exists, then ``root`` itself for ``.proto`` files placed elsewhere.
    """
    module = root / "proto"
    return (module, root) if module.is_dir() else (root,)


def proto_include_dirs(root: Path) -> tuple[Path, ...]:
    """Every include directory, absolute, for compiling the ``.proto`` files of ``root``.

    The import roots of ``root``, the shipped ``damestoilet/v1/options.proto`` and
    grpcio-tools' well-known types. Raises :class:`ModuleNotFoundError` when grpcio-tools (the
    ``codegen`` extra) is not installed.
    """
    import grpc_tools

    well_known = Path(grpc_tools.__file__).resolve().parent / "_proto"
    roots = tuple(r.resolve() for r in proto_import_roots(root))
    return (*roots, OPTIONS_INCLUDE_DIR, well_known)


def compile_protos(paths: Sequence[Path], root: Path) -> Compiled:
    """Compile ``paths`` (``.proto`` files under ``root``) together.

    Returns the descriptors (with source info and imports) of every file that compiled and the
    problems of the rest, located at the paths as given; never raises for a broken schema.
    """
    problems: list[Problem] = []
    names: list[str] = []
    texts: dict[str, str] = {}
    shown: dict[str, str] = {}
    if paths and importlib.util.find_spec("grpc_tools") is None:
        message = (
            "reading .proto files needs grpcio-tools; install it with "
            "pip install 'damestoilet-contracts[codegen]'"
        )
        problems.append(Problem(SourceLocation(str(paths[0])), message))
        return Compiled(descriptor_pb2.FileDescriptorSet(), (), texts, shown, problems)
    for path in paths:
        name = _import_name(path, root)
        if name is None:
            problems.append(
                Problem(
                    SourceLocation(str(path)),
                    f"{path} is not under the schema directory {root}; move it there",
                )
            )
            continue
        shown[name] = str(path)
        # protoc names a file it has read from disk by its include directory and name.
        for base in proto_import_roots(root):
            shown.setdefault(str(base.resolve() / name), str(path))
        try:
            texts[name] = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            problems.append(Problem(SourceLocation(str(path)), f"cannot read: {exc}"))
            continue
        if name not in names:
            names.append(name)
    missing_import = {name: _missing_import_line(texts[name]) for name in names}
    names_by_disk = {
        str(base.resolve() / name): name for name in names for base in proto_import_roots(root)
    }

    pending = sorted(names)
    descriptors = descriptor_pb2.FileDescriptorSet()
    while pending:
        returncode, stderr, data = _run_protoc(pending, root)
        if returncode == 0:
            descriptors = descriptor_pb2.FileDescriptorSet.FromString(data)
            break
        failed: set[str] = set()
        for line in stderr.splitlines():
            problem, file = _parse_protoc_line(line, shown)
            if problem is None:
                continue
            file = names_by_disk.get(file, file)
            failed.add(file)
            # protoc's own message for a missing import is obscure; ours replaces it.
            if missing_import.get(file) is not None and "damestoilet.v1" in problem.message:
                continue
            # An imported broken file is reported once for each file importing it.
            if problem not in problems:
                problems.append(problem)
        still = [name for name in pending if name not in failed]
        if len(still) == len(pending):
            # protoc named none of these files: nothing can be set aside, nothing compiles.
            if not failed:
                problems.append(
                    Problem(SourceLocation(str(root)), f"protoc failed with code {returncode}")
                )
            pending = []
        else:
            pending = still
    compiled = tuple(pending)
    for name in names:
        use_line = missing_import[name]
        if use_line is not None and name not in compiled:
            problems.append(
                Problem(
                    SourceLocation(shown[name], use_line),
                    "uses option (damestoilet.v1.event) but does not import "
                    f'"damestoilet/v1/options.proto"; add: {OPTIONS_IMPORT}',
                )
            )
    return Compiled(descriptors, compiled, texts, shown, problems)


def _import_name(path: Path, root: Path) -> str | None:
    """The name protoc knows ``path`` by: relative to the first import root holding it."""
    for base in proto_import_roots(root):
        for candidate, anchor in ((path, base), (path.resolve(), base.resolve())):
            try:
                return candidate.relative_to(anchor).as_posix()
            except ValueError:
                continue
    return None


def _run_protoc(names: Sequence[str], root: Path) -> tuple[int, str, bytes]:
    with tempfile.TemporaryDirectory(prefix="damestoilet-protoc-") as tmp:
        out = Path(tmp) / "descriptors.binpb"
        command = [
            sys.executable,
            "-m",
            "grpc_tools.protoc",
            *(f"--proto_path={d}" for d in proto_include_dirs(root)),
            "--include_imports",
            "--include_source_info",
            f"--descriptor_set_out={out}",
            *names,
        ]
        # An empty working directory: every name is looked up on the include path only, and
        # protoc reports it exactly as it is imported.
        done = subprocess.run(command, cwd=tmp, capture_output=True, text=True, check=False)
        data = out.read_bytes() if done.returncode == 0 else b""
    return done.returncode, done.stderr, data


def _parse_protoc_line(line: str, shown: dict[str, str]) -> tuple[Problem | None, str]:
    """One stderr line as a problem and the protoc name of its file; warnings give None."""
    if not line.strip() or "warning:" in line:
        return None, ""
    match = _LINE_COL.match(line)
    if match is not None:
        file = match["file"]
        location = SourceLocation(shown.get(file, file), int(match["line"]), int(match["col"]))
        text = _near_miss(match["msg"])
        hint = _hint(text)
        if hint:
            text = text.rstrip(".")
        message = f"{text}{hint} (protoc, column {match['col']})"
        return Problem(location, message), file
    match = _FILE_ONLY.match(line)
    if match is not None:
        file = match["file"]
        return Problem(SourceLocation(shown.get(file, file)), f"{match['msg']} (protoc)"), file
    return Problem(SourceLocation("protoc"), line.strip()), ""


def _near_miss(message: str) -> str:
    """protoc's message for an unknown option, with a did-you-mean when it is ours misspelled.

    A misspelled ``(damestoilet.v1.event)`` would otherwise read as a missing import.
    """
    match = _UNKNOWN_OPTION.match(message)
    if match is None:
        return message
    name = match["name"].lstrip(".")
    if not difflib.get_close_matches(name.lower(), [_EVENT_OPTION], n=1, cutoff=0.8):
        return message
    return (
        f'option "({name})" is unknown; did you mean ({_EVENT_OPTION})? That option, from '
        "damestoilet/v1/options.proto, is what makes a message an event"
    )


def _hint(message: str) -> str:
    """What to write instead, for protoc's messages about the option's own vocabulary."""
    match = _NO_FIELD.search(message)
    if match is not None:
        descriptor = options_pb2.DESCRIPTOR.message_types_by_name.get(match["type"])
        if descriptor is not None:
            allowed = [f.name for f in descriptor.fields]
            return f"{did_you_mean(match['f'], allowed)} (allowed: {', '.join(allowed)})"
    match = _NO_ENUM_VALUE.search(message)
    if match is not None:
        enum_by_field = {"mode": options_pb2.Mode, "if_absent": options_pb2.IfAbsent}
        wrapper = enum_by_field.get(match["f"])
        if wrapper is not None:
            values = [v.name for v in wrapper.DESCRIPTOR.values if v.number != 0]
            prefixed = [n for n in values if n.endswith("_" + match["v"])]
            suggestion = f"; did you mean {prefixed[0]}?" if prefixed else ""
            return f"{suggestion} (values: {', '.join(values)})"
    return ""


def _missing_import_line(text: str) -> int | None:
    """The line of the first use of the option in a file that does not import it, or None."""
    # Blank out comments but keep their newlines, so that offsets still give lines.
    code = _COMMENT.sub(lambda m: re.sub(r"[^\n]", " ", m.group()), text)
    use = _OPTION_USE.search(code)
    if use is None or _OPTIONS_IMPORTED.search(code) is not None:
        return None
    return code.count("\n", 0, use.start()) + 1
