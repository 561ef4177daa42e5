"""Generate libs/contracts/src from proto/ and guard the compatibility of the event contracts.

    python proto/generate.py                    regenerate the code and update proto/snapshot.binpb
    python proto/generate.py --check            fail (exit 1) if the committed code or snapshot
                                                drift from proto/, or if proto/ breaks the snapshot
    python proto/generate.py --accept-breaking  regenerate even though the change is breaking

The snapshot (proto/snapshot.binpb) is the FileDescriptorSet of every proto/**/*.proto file as
last accepted. A change is breaking when, compared to it, a message, an enum or an enum value
disappears, a field disappears without its number being reserved, a field number is reused with
another name, type or cardinality, or an event's topic option changes. Additive changes pass.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from collections.abc import Iterable, Sequence
from importlib import resources
from pathlib import Path

from google.protobuf import descriptor_pb2
from google.protobuf.unknown_fields import UnknownFieldSet
from grpc_tools import protoc  # type: ignore[import-untyped]

ROOT = Path(__file__).resolve().parent.parent
PROTO_DIR = ROOT / "proto"
OUT_DIR = ROOT / "libs" / "contracts" / "src"
SNAPSHOT = PROTO_DIR / "snapshot.binpb"
# Field number of the `maillage.common.v1.topic` message option (common/v1/options.proto).
TOPIC_FIELD_NUMBER = 50001

FieldDescriptorProto = descriptor_pb2.FieldDescriptorProto
MessageProto = descriptor_pb2.DescriptorProto
EnumProto = descriptor_pb2.EnumDescriptorProto


class GenerationError(Exception):
    """protoc or its plugin failed."""


# --------------------------------------------------------------------------------------------
# Generation
# --------------------------------------------------------------------------------------------


def proto_files() -> list[Path]:
    files = sorted(PROTO_DIR.rglob("*.proto"))
    if not files:
        raise GenerationError(f"no .proto file under {PROTO_DIR}")
    return files


def mypy_plugin() -> str:
    """protoc-gen-mypy from mypy-protobuf, next to this interpreter (the virtualenv) or on PATH."""
    beside = Path(sys.executable).parent / "protoc-gen-mypy"
    found = str(beside) if beside.exists() else shutil.which("protoc-gen-mypy")
    if found is None:
        raise GenerationError("protoc-gen-mypy not found: install mypy-protobuf")
    return found


def generate(work: Path) -> tuple[dict[str, bytes], bytes]:
    """Compile every proto into `work`; return the generated tree and the descriptor set."""
    code_dir = work / "src"
    code_dir.mkdir()
    descriptor_set = work / "descriptors.binpb"
    with resources.as_file(resources.files("grpc_tools") / "_proto") as well_known:
        args = [
            "grpc_tools.protoc",
            f"--proto_path={PROTO_DIR}",
            f"--proto_path={well_known}",
            f"--plugin=protoc-gen-mypy={mypy_plugin()}",
            f"--python_out={code_dir}",
            f"--mypy_out=quiet:{code_dir}",
            # No source info: comments and formatting must not change the snapshot.
            f"--descriptor_set_out={descriptor_set}",
            *(str(path) for path in proto_files()),
        ]
        if int(protoc.main(args)) != 0:
            raise GenerationError("protoc failed (see the messages above)")
    # Regular packages (not namespace packages) so every tool resolves them the same way,
    # and a PEP 561 marker so type checkers use the .pyi stubs of the installed package.
    for directory in sorted(path for path in code_dir.rglob("*") if path.is_dir()):
        (directory / "__init__.py").write_bytes(b"")
    for package in code_dir.iterdir():
        (package / "py.typed").write_bytes(b"")
    return read_tree(code_dir), descriptor_set.read_bytes()


def read_tree(root: Path) -> dict[str, bytes]:
    if not root.is_dir():
        return {}
    return {
        path.relative_to(root).as_posix(): path.read_bytes()
        for path in sorted(root.rglob("*"))
        if path.is_file() and "__pycache__" not in path.parts
    }


def tree_differences(expected: dict[str, bytes], actual: dict[str, bytes]) -> list[str]:
    differences = []
    for name in sorted(expected.keys() | actual.keys()):
        if name not in actual:
            differences.append(f"missing: {name}")
        elif name not in expected:
            differences.append(f"stale:   {name}")
        elif expected[name] != actual[name]:
            differences.append(f"differs: {name}")
    return differences


def write_tree(tree: dict[str, bytes]) -> None:
    """Make OUT_DIR hold exactly `tree`: write what changed, delete stale files and dirs."""
    current = read_tree(OUT_DIR)
    for name in current.keys() - tree.keys():
        (OUT_DIR / name).unlink()
    for name, data in tree.items():
        if current.get(name) != data:
            path = OUT_DIR / name
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)
    directories = sorted(
        (path for path in OUT_DIR.rglob("*") if path.is_dir() and path.name != "__pycache__"),
        key=lambda path: len(path.parts),
        reverse=True,
    )
    for directory in directories:
        if all(child.name == "__pycache__" for child in directory.iterdir()):
            shutil.rmtree(directory)


# --------------------------------------------------------------------------------------------
# Compatibility against the snapshot
# --------------------------------------------------------------------------------------------


def index(descriptor_set: bytes) -> tuple[dict[str, MessageProto], dict[str, EnumProto]]:
    """Every message and enum (nested ones included) by full name."""
    messages: dict[str, MessageProto] = {}
    enums: dict[str, EnumProto] = {}

    def walk(scope: str, nested: Iterable[MessageProto], nested_enums: Iterable[EnumProto]) -> None:
        for enum in nested_enums:
            enums[f"{scope}.{enum.name}"] = enum
        for message in nested:
            name = f"{scope}.{message.name}"
            messages[name] = message
            walk(name, message.nested_type, message.enum_type)

    for file in descriptor_pb2.FileDescriptorSet.FromString(descriptor_set).file:
        walk(file.package, file.message_type, file.enum_type)
    return messages, enums


def topic_of(message: MessageProto) -> str:
    # The descriptor set is parsed without our extension registered: the topic option is an
    # unknown field of MessageOptions, read as such (no dependency on the generated code).
    unknown = UnknownFieldSet(message.options)
    for position in range(len(unknown)):
        if unknown[position].field_number == TOPIC_FIELD_NUMBER:
            return bytes(unknown[position].data).decode()
    return ""


def field_signature(field: FieldDescriptorProto) -> str:
    """`repeated uint32 attempt`, `.maillage.common.v1.Act act`: what must never change."""
    scalar = FieldDescriptorProto.Type.Name(field.type).removeprefix("TYPE_").lower()
    kind = field.type_name or scalar
    repeated = "repeated " if field.label == FieldDescriptorProto.LABEL_REPEATED else ""
    return f"{repeated}{kind} {field.name}"


def is_reserved(number: int, ranges: Iterable[MessageProto.ReservedRange]) -> bool:
    return any(r.start <= number < r.end for r in ranges)  # end is exclusive for messages


def is_reserved_value(number: int, ranges: Iterable[EnumProto.EnumReservedRange]) -> bool:
    return any(r.start <= number <= r.end for r in ranges)  # end is inclusive for enums


def breaking_changes(old: bytes, new: bytes) -> list[str]:
    old_messages, old_enums = index(old)
    new_messages, new_enums = index(new)
    problems = []
    for name, before in old_messages.items():
        after = new_messages.get(name)
        if after is None:
            problems.append(f"message {name} removed")
            continue
        if topic_of(before) and topic_of(before) != topic_of(after):
            problems.append(f"{name}: topic {topic_of(before)!r} changed to {topic_of(after)!r}")
        after_fields = {field.number: field for field in after.field}
        for field in before.field:
            where = f"{name} field {field.number} ({field_signature(field)})"
            replacement = after_fields.get(field.number)
            if replacement is None:
                if not is_reserved(field.number, after.reserved_range):
                    problems.append(f"{where} removed without `reserved {field.number};`")
            elif field_signature(replacement) != field_signature(field):
                problems.append(f"{where} is now {field_signature(replacement)}")
    for name, before_enum in old_enums.items():
        after_enum = new_enums.get(name)
        if after_enum is None:
            problems.append(f"enum {name} removed")
            continue
        after_values = {value.number: value.name for value in after_enum.value}
        for value in before_enum.value:
            where = f"enum {name} value {value.number} ({value.name})"
            if value.number not in after_values:
                if not is_reserved_value(value.number, after_enum.reserved_range):
                    problems.append(f"{where} removed")
            elif after_values[value.number] != value.name:
                problems.append(f"{where} renamed to {after_values[value.number]}")
    return problems


# --------------------------------------------------------------------------------------------
# Command line
# --------------------------------------------------------------------------------------------


def report(title: str, lines: Sequence[str]) -> None:
    print(title, file=sys.stderr)
    for line in lines:
        print(f"  {line}", file=sys.stderr)


def check(tree: dict[str, bytes], descriptors: bytes, snapshot: bytes | None) -> int:
    failed = False
    differences = tree_differences(tree, read_tree(OUT_DIR))
    if differences:
        failed = True
        report(f"{OUT_DIR.relative_to(ROOT)} drifts from proto/ (run `make proto`):", differences)
    if snapshot is None:
        failed = True
        report(f"{SNAPSHOT.relative_to(ROOT)} is missing (run `make proto`).", [])
    elif problems := breaking_changes(snapshot, descriptors):
        failed = True
        report("Breaking changes to the event contracts:", problems)
    elif snapshot != descriptors:
        failed = True
        report(f"{SNAPSHOT.relative_to(ROOT)} is out of date (run `make proto`).", [])
    if not failed:
        print(f"contracts up to date: {len(tree)} generated files, snapshot matches proto/")
    return 1 if failed else 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--check", action="store_true", help="verify only, write nothing")
    mode.add_argument(
        "--accept-breaking",
        action="store_true",
        help="overwrite the snapshot even if the change is breaking (only before anything is "
        "deployed; otherwise publish a new package version side by side)",
    )
    args = parser.parse_args(argv)

    try:
        with tempfile.TemporaryDirectory(prefix="maillage-proto-") as work:
            tree, descriptors = generate(Path(work))
    except GenerationError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    snapshot = SNAPSHOT.read_bytes() if SNAPSHOT.exists() else None

    if args.check:
        return check(tree, descriptors, snapshot)

    problems = breaking_changes(snapshot, descriptors) if snapshot is not None else []
    if problems and not args.accept_breaking:
        report("Breaking changes to the event contracts:", problems)
        print(
            "Nothing written. Reserve removed field numbers, add fields instead of changing "
            "them, or publish a new package version (v2) side by side. Use --accept-breaking "
            "only for contracts nothing consumes yet.",
            file=sys.stderr,
        )
        return 1
    write_tree(tree)
    if snapshot != descriptors:
        SNAPSHOT.write_bytes(descriptors)
        print(f"updated {SNAPSHOT.relative_to(ROOT)}")
    print(f"generated {len(tree)} files in {OUT_DIR.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
