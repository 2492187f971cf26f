"""The one way this project reads a file a user hands it (config, recipe, choice, prompt file):
any malformation (missing, a folder, a dangling link, not UTF-8, binary, too big, bad YAML or
JSON, duplicate keys, aliases, nesting too deep) becomes one ``SoupError`` line naming the file.

YAML is read with PyYAML's safe loader, refusing two things it accepts: a key given twice (the
last one silently won: ``positive`` loaded the concise folder) and aliases (``*name``: a 400-byte
"billion laughs" file expands to gigabytes). A UTF-8 byte-order mark is dropped.
"""

from __future__ import annotations

import json
from pathlib import Path

import yaml

from explorer.errors import SoupError

MAX_BYTES = 16 << 20  # no file we read is larger; a bigger one is a mistake (or an attack)


def read_text(path: str | Path, *, what: str, hint: str = "") -> str:
    """The text of ``path`` (UTF-8, BOM dropped); ``what`` names the file in messages ("prompts
    file"), ``hint`` says what it should be."""
    file = Path(path).expanduser()
    tail = f": {hint}" if hint else ""
    if file.is_dir():
        raise SoupError(f"{what} {file} is a folder{tail}")
    if file.is_symlink() and not file.exists():
        raise SoupError(f"{what} {file} is a symbolic link to nothing (missing or looping): fix the link")
    if not file.is_file():
        raise SoupError(
            f"{what} {file} {'does not exist' if not file.exists() else 'is not a regular file'}{tail}"
        )
    try:
        if file.stat().st_size > MAX_BYTES:
            raise SoupError(f"{what} {file} is larger than {MAX_BYTES >> 20} MB{tail}")
        raw = file.read_bytes()
    except OSError as err:
        raise SoupError(f"{what} {file} cannot be read ({err.strerror or err})") from None
    try:
        text = raw.decode("utf-8-sig")  # drops a byte-order mark, which is no part of the text
    except UnicodeDecodeError:
        raise SoupError(f"{what} {file} is not UTF-8 text{tail}") from None
    if "\x00" in text:
        raise SoupError(f"{what} {file} is binary, not text{tail}")
    return text


class _StrictLoader(yaml.SafeLoader):
    """PyYAML's safe loader without aliases and without duplicate keys."""

    def compose_node(self, parent, index):  # type: ignore[no-untyped-def]
        if self.check_event(yaml.AliasEvent):
            mark = self.peek_event().start_mark
            raise yaml.MarkedYAMLError(
                problem="aliases (*name) are not allowed here; write the value out", problem_mark=mark
            )
        return super().compose_node(parent, index)

    def construct_mapping(self, node, deep=False):  # type: ignore[no-untyped-def]
        seen: set = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=True)
            try:
                twice = key in seen
                seen.add(key)
            except TypeError:  # an unhashable key: the base class says so
                break
            if twice:
                raise yaml.MarkedYAMLError(
                    problem=f"the key {key!r} is given twice; keep one", problem_mark=key_node.start_mark
                )
        return super().construct_mapping(node, deep=deep)


def parse_yaml(text: str, *, where: str) -> object:
    """``text`` as YAML (strict: see the module docstring); ``where`` names the file in messages."""
    try:
        return yaml.load(text, Loader=_StrictLoader)  # noqa: S506 (a SafeLoader subclass)
    except yaml.YAMLError as err:
        raise SoupError(f"{where} is not valid YAML: {_one_line(err)}") from None
    except RecursionError:
        raise SoupError(f"{where} is nested too deeply to be a file of this project") from None


def load_yaml(path: str | Path, *, what: str) -> object:
    """The YAML file ``path``, strictly parsed."""
    file = Path(path).expanduser()
    return parse_yaml(read_text(file, what=what), where=f"{what} {file}")


def parse_json(text: str, *, where: str) -> object:
    """``text`` as JSON (standard JSON only: NaN and Infinity are refused)."""
    try:
        return json.loads(text, parse_constant=_no_constant)
    except RecursionError:
        raise SoupError(f"{where} is nested too deeply to be a file of this project") from None
    except ValueError as err:
        raise SoupError(f"{where} is not valid JSON: {_one_line(err)}") from None


def load_json(path: str | Path, *, what: str) -> object:
    """The JSON file ``path``."""
    file = Path(path).expanduser()
    return parse_json(read_text(file, what=what), where=f"{what} {file}")


def _no_constant(name: str) -> float:
    raise ValueError(f"{name} is not a JSON number")


def _one_line(err: Exception) -> str:
    return " ".join(str(err).split())
