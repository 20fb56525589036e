"""The one guarded reader for every JSON and YAML input: files, checkpoint headers and metadata,
model-folder configs, flag values.

Python's parsers trust their input: deep nesting reaches the interpreter's recursion limit
(RecursionError), a 5,000-digit integer trips int()'s digit limit (ValueError), and a YAML
document can expand a few lines of aliases into a billion nodes ("billion laughs") or into a
structure that contains itself. Every input goes through here first, and every way it can be
hostile ends as one HRMEvalError line naming where it came from (the file, the flag):

    parse_json(text, where)        JSON text (a header, a metadata value, a flag)
    parse_yaml(text, where)        YAML text, safe tags only, aliases bounded
    read_json(path, what)          a JSON file: its kind and size checked before it is read
    read_yaml(path, what)          a YAML file, the same way
    read_text(path, what)          the text of a regular file (never blocks on a FIFO)

The limits are far above what any real input needs (a model folder's config.json nests 3 deep;
the bundled ARC identifiers file is a few MB) and far below what hurts.
"""

from __future__ import annotations

import json
import os
import re
import stat
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

from hrm_eval.utils.errors import HRMEvalError

MAX_TEXT_BYTES = 16 << 20  # a config, a header's metadata, a flag value
MAX_DATA_BYTES = 256 << 20  # a dataset's identifiers list (ARC with augmentations: tens of MB)
MAX_DEPTH = 64  # nesting of lists / mappings
MAX_INT_DIGITS = 64  # far beyond any count, far below int()'s 4,300-digit refusal
MAX_YAML_NODES = 100_000  # nodes after alias expansion (the billion-laughs bound)

_JSON_STRING = re.compile(r'"(?:[^"\\]|\\.)*"', re.DOTALL)
_INT_TAG = "tag:yaml.org,2002:int"
_STR_TAG = "tag:yaml.org,2002:str"
_MERGE_TAG = "tag:yaml.org,2002:merge"


# ---- files -------------------------------------------------------------------------------------
def path_kind(mode: int) -> str:
    """What a stat mode is, in the words of an error message."""
    for test, name in (
        (stat.S_ISREG, "regular file"),
        (stat.S_ISDIR, "directory"),
        (stat.S_ISFIFO, "FIFO (named pipe)"),
        (stat.S_ISSOCK, "socket"),
        (stat.S_ISCHR, "character device"),
        (stat.S_ISBLK, "block device"),
    ):
        if test(mode):
            return name
    return "special file"


def expect_file(path: str | Path, what: str = "file") -> Path:
    """`path` when it is a regular file (links followed); else one line saying what it is."""
    return _expect(path, what, stat.S_ISREG, "a regular file")


def expect_dir(path: str | Path, what: str = "directory") -> Path:
    """`path` when it is a directory (links followed); else one line saying what it is."""
    return _expect(path, what, stat.S_ISDIR, "a directory")


def _expect(path: str | Path, what: str, is_kind: Callable[[int], bool], kind: str) -> Path:
    path = Path(path)
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        raise HRMEvalError(f"{what} not found: {path}") from None
    except OSError as e:
        raise HRMEvalError(f"{what} {path}: cannot read it ({e.strerror})") from None
    if not is_kind(mode):
        raise HRMEvalError(f"{what} {path} is a {path_kind(mode)}, expected {kind}")
    return path


def read_bytes(path: str | Path, what: str = "file", max_bytes: int = MAX_TEXT_BYTES) -> bytes:
    """The bytes of a regular file of at most `max_bytes`, checked before reading. Opened
    non-blocking: a FIFO swapped in after the check cannot make the read wait forever."""
    path = expect_file(path, what)
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    except OSError as e:
        raise HRMEvalError(f"cannot read {what} {path}: {e.strerror}") from None
    try:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            raise HRMEvalError(f"{what} {path} is a {path_kind(mode)}, expected a regular file")
        size = os.fstat(fd).st_size
        if size > max_bytes:
            raise HRMEvalError(f"{what} {path} is {size:,} bytes, more than the {max_bytes:,} such a file may hold")
        with os.fdopen(fd, "rb", closefd=False) as f:
            data = f.read(max_bytes + 1)
    except OSError as e:
        raise HRMEvalError(f"cannot read {what} {path}: {e.strerror}") from None
    finally:
        os.close(fd)
    if len(data) > max_bytes:  # it grew after the check
        raise HRMEvalError(f"{what} {path} is more than the {max_bytes:,} bytes such a file may hold")
    return data


def read_text(path: str | Path, what: str = "file", max_bytes: int = MAX_TEXT_BYTES) -> str:
    data = read_bytes(path, what, max_bytes)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise HRMEvalError(f"{path}: not UTF-8 text ({e.reason} at byte {e.start})") from None


def read_json(path: str | Path, what: str = "file", max_bytes: int = MAX_TEXT_BYTES) -> Any:
    return parse_json(read_text(path, what, max_bytes), str(path))


def read_yaml(path: str | Path, what: str = "config file", max_bytes: int = MAX_TEXT_BYTES) -> Any:
    return parse_yaml(read_text(path, what, max_bytes), str(path))


# ---- JSON --------------------------------------------------------------------------------------
def parse_json(text: str | bytes, where: str, max_bytes: int = MAX_TEXT_BYTES) -> Any:
    """JSON text, its size, nesting depth and integer lengths checked before the parser sees it."""
    if isinstance(text, bytes):
        try:
            text = text.decode("utf-8")
        except UnicodeDecodeError as e:
            raise HRMEvalError(f"{where}: not UTF-8 text ({e.reason} at byte {e.start})") from None
    if len(text) > max_bytes:
        raise HRMEvalError(f"{where}: {len(text):,} characters of JSON, more than the {max_bytes:,} allowed")
    openers = text.count("[") + text.count("{")  # the usual case is decided without a scan
    depth = json_depth(text) if openers > MAX_DEPTH else 0
    if depth > MAX_DEPTH:
        raise HRMEvalError(f"{where}: JSON nested too deeply ({depth} levels, at most {MAX_DEPTH})")
    try:
        return json.loads(text, parse_int=lambda s: _int(s, where))
    except json.JSONDecodeError as e:
        line = f":{e.lineno}" if "\n" in text.strip() else ""  # a one-line value is named by `where` alone
        raise HRMEvalError(f"{where}{line}: not valid JSON: {e.msg} (column {e.colno})") from None


def json_depth(text: str) -> int:
    """The deepest bracket nesting of JSON text, outside strings; no recursion, no parsing.
    (Unbalanced text gives some number; the parser then names the real problem.)"""
    import numpy as np

    bare = _JSON_STRING.sub('""', text)
    b = np.frombuffer(bare.encode("utf-8", "replace"), dtype=np.uint8)
    if not b.size:
        return 0
    step = (b == ord("[")).astype(np.int32) + (b == ord("{")) - (b == ord("]")) - (b == ord("}"))
    return int(np.cumsum(step).max(initial=0))


def _int(digits: str, where: str) -> int:
    if len(digits.lstrip("-")) > MAX_INT_DIGITS:
        n = len(digits.lstrip("-"))
        raise HRMEvalError(f"{where}: an integer with too many digits ({n:,}, at most {MAX_INT_DIGITS})")
    return int(digits)


# ---- YAML --------------------------------------------------------------------------------------
class _BoundedLoader(yaml.SafeLoader):
    """SafeLoader whose composer stops at MAX_DEPTH before recursing further."""

    _depth = 0

    def compose_node(self, parent: Any, index: Any) -> Any:
        self._depth += 1
        try:
            if self._depth > MAX_DEPTH:
                raise _Refused(f"YAML nested too deeply (more than {MAX_DEPTH} levels)")
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1


class _Refused(Exception):
    """A guard's refusal inside the YAML machinery, turned into one line by parse_yaml."""


def parse_yaml(text: str | bytes, where: str, max_bytes: int = MAX_TEXT_BYTES) -> Any:
    """Safe YAML (plain data tags only) with depth, alias expansion, integer length and key
    types checked on the composed node graph before any Python object is made from it."""
    if len(text) > max_bytes:
        raise HRMEvalError(f"{where}: {len(text):,} characters of YAML, more than the {max_bytes:,} allowed")
    loader = _BoundedLoader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        _check_graph(node)
        return loader.construct_document(node)
    except _Refused as e:
        raise HRMEvalError(f"{where}: {e}") from None
    except yaml.MarkedYAMLError as e:  # the line users need to look at, 1-based
        line = f":{e.problem_mark.line + 1}" if e.problem_mark is not None else ""
        raise HRMEvalError(f"{where}{line}: not valid YAML: {e.problem or e.context}") from None
    except yaml.YAMLError as e:
        raise HRMEvalError(f"{where}: not valid YAML: {str(e).splitlines()[0]}") from None
    finally:
        loader.dispose()


def _check_graph(root: yaml.Node) -> None:
    """Nodes after alias expansion and depth after alias expansion bounded, no node containing
    itself, integers of sane length, mapping keys strings. Each node is measured once (aliases
    are the same node object), so the check costs the document's size, not its expansion."""
    sizes: dict[int, tuple[int, int] | None] = {}  # id(node) -> (nodes, depth) expanded; None while open

    def measure(node: yaml.Node, depth: int) -> tuple[int, int]:
        if id(node) in sizes:
            known = sizes[id(node)]
            if known is None:
                raise _Refused(f"a YAML anchor refers to itself (line {node.start_mark.line + 1})")
            return known
        if depth > MAX_DEPTH:
            raise _Refused(f"YAML nested too deeply after expanding aliases (more than {MAX_DEPTH} levels)")
        sizes[id(node)] = None
        count, deepest = 1, 0
        for child in _children(node):
            n, d = measure(child, depth + 1)
            count, deepest = count + n, max(deepest, d)
            if count > MAX_YAML_NODES:
                raise _Refused(f"YAML aliases expand to more than {MAX_YAML_NODES:,} values (refused)")
        if depth + deepest > MAX_DEPTH:
            raise _Refused(f"YAML nested too deeply after expanding aliases (more than {MAX_DEPTH} levels)")
        sizes[id(node)] = (count, deepest + 1)
        return count, deepest + 1

    measure(root, 1)


def _check_int(node: yaml.Node, name: str = "") -> None:
    """An integer scalar of sane length (int() refuses 4,300 digits only after trying)."""
    if isinstance(node, yaml.ScalarNode) and node.tag == _INT_TAG:
        digits = len(re.sub(r"[^0-9a-fA-F]", "", node.value))
        if digits > MAX_INT_DIGITS:
            field = f"{name}: " if name else ""
            raise _Refused(
                f"{field}an integer with too many digits ({digits:,}, at most {MAX_INT_DIGITS}; "
                f"line {node.start_mark.line + 1})"
            )


def _children(node: yaml.Node) -> list:
    if isinstance(node, yaml.ScalarNode):
        _check_int(node)
        return []
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    out = []
    for key, value in node.value:
        if not (isinstance(key, yaml.ScalarNode) and key.tag in (_STR_TAG, _MERGE_TAG)):
            shown = key.value if isinstance(key, yaml.ScalarNode) else "a collection"
            raise _Refused(
                f"mapping key {shown!r} (line {key.start_mark.line + 1}) is not a string; quote it if it is a name"
            )
        _check_int(value, key.value)
        out += [key, value]
    return out


def mapping(data: Any, where: str, expected: str = "a mapping (key: value lines) at the top level") -> dict[str, Any]:
    """`data` when it is a mapping, else one line saying what it is instead."""
    if not isinstance(data, dict):
        raise HRMEvalError(f"{where}: expected {expected}, got {type(data).__name__}")
    return data
