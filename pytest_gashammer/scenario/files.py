"""Scenario files: YAML files of named scenarios, each validated as a ``@pytest.mark.gashammer`` marker.

A file ``gashammer_*.yaml`` (or ``*.gashammer.yaml``) holds ``scenarios:``, a mapping of scenario
name to marker arguments, and optionally ``defaults:``, arguments every scenario of the file starts
from (a scenario's own value of an argument replaces the default's whole). Each scenario goes
through the marker's own table and parser (:func:`parse_spec`), so a file and a marker with the same
arguments give the same spec and plan.

The YAML is read as a node tree that keeps every key's line and column, so a problem is one line
pointing at what to fix: ``gashammer_l2.yaml:14:7: workload.transfr: unknown template ...``.
PyYAML is imported only when a file is read.
"""

from __future__ import annotations

import dataclasses
import fnmatch
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from pytest_gashammer.errors import ConfigError, did_you_mean
from pytest_gashammer.scenario.arguments import ARGUMENTS, ArgumentError, argument_schema
from pytest_gashammer.scenario.spec import ScenarioSpec, parse_spec

#: The file names collected as scenario files (``fnmatch`` patterns on the file's name).
FILE_PATTERNS = ("gashammer_*.yaml", "*.gashammer.yaml")
SCENARIOS = "scenarios"
DEFAULTS_KEY = "defaults"
#: The keys a file may hold at its top, with what each is.
FILE_KEYS = {
    SCENARIOS: "scenario name to its arguments (the marker's); each scenario is one test, file.yaml::name",
    DEFAULTS_KEY: "arguments every scenario of the file starts from; a scenario's own value replaces one",
}
#: A scenario's name is its test's name: no spaces, brackets or "::" in a pytest node id.
NAME_PATTERN = r"^[A-Za-z_][A-Za-z0-9_.-]*$"
_NAME = re.compile(NAME_PATTERN)

#: A path inside the document: mapping keys and sequence indices from the top.
KeyPath = tuple[Any, ...]


def is_scenario_file(path: Path) -> bool:
    """Whether pytest collects ``path`` as a scenario file."""
    return any(fnmatch.fnmatchcase(path.name, pattern) for pattern in FILE_PATTERNS)


@dataclasses.dataclass(frozen=True)
class Mark:
    """Where a key or value starts in the file: 1-based line and column."""

    line: int
    column: int


class ScenarioFileError(ConfigError):
    """A problem with the file as a whole (YAML syntax, its top-level shape); ``str()`` is located."""


@dataclasses.dataclass(frozen=True)
class FileScenario:
    """One named scenario of a file: its arguments (defaults merged) and the spec, or the located error."""

    name: str
    #: The marker arguments the scenario amounts to: the file's defaults, then its own.
    arguments: dict[str, Any]
    #: Where its name is written.
    mark: Mark
    spec: ScenarioSpec | None
    #: The located one-line error, when the arguments are invalid.
    error: str | None
    display: str = dataclasses.field(repr=False, default="")
    #: Where each argument was written: its path in the document (under the scenario or the defaults).
    origins: dict[str, KeyPath] = dataclasses.field(repr=False, default_factory=dict)
    marks: dict[KeyPath, Mark] = dataclasses.field(repr=False, default_factory=dict)

    def locate(self, error: ConfigError, argument: str | None = None) -> str:
        """``error`` as one line: ``file:line:col: key.path: message``, at the key it is about.

        The argument comes from ``error`` (an :class:`ArgumentError`) or ``argument``; below it, the
        path follows the keys and indices the message names (``'transfr'``, ``[1]``) as deep as it can.
        """
        name = error.argument if isinstance(error, ArgumentError) else argument
        if name is None or name not in self.origins:
            return f"{_where(self.display, self.mark)}: {self.name}: {error}"
        base = self.origins[name]
        path: KeyPath = (name,)
        value = self.arguments[name]
        text = str(error)
        while True:
            step = _named_child(value, text)
            if step is None:
                break
            path += (step,)
            value = value[step]
        where = _where(self.display, self.marks[base + path[1:]])
        return (
            f"{where}: {text}" if text.startswith(f"{dotted(path)}:") else f"{where}: {dotted(path)}: {text}"
        )


def _named_child(value: Any, text: str) -> Any:
    """The key or index of ``value`` that ``text`` names, or ``None``."""
    if isinstance(value, Mapping):
        named = {key: text.find(repr(key)) for key in value}
    elif isinstance(value, list):
        named = {index: text.find(f"[{index}]") for index in range(len(value))}
    else:
        return None
    # The first one named: a hint later in the message may quote a sibling ("did you mean 'transfer'?").
    found = sorted(
        (position, order, key) for order, (key, position) in enumerate(named.items()) if position >= 0
    )
    return found[0][2] if found else None


def dotted(path: KeyPath) -> str:
    """``('workload', 'transfr')`` → ``workload.transfr``; ``('faults', 0, 'kind')`` → ``faults[0].kind``."""
    text = ""
    for step in path:
        text += f"[{step}]" if isinstance(step, int) else (f".{step}" if text else str(step))
    return text


def _where(display: str, mark: Mark) -> str:
    return f"{display}:{mark.line}:{mark.column}"


# ----------------------------------------------------------------------------------------------
# reading YAML with marks


def _mark(node: Any) -> Mark:
    return Mark(node.start_mark.line + 1, node.start_mark.column + 1)


def _read(text: str, display: str) -> tuple[Any, dict[KeyPath, Mark]]:
    """The document as plain data, with the mark of every mapping key and sequence item by path."""
    import yaml

    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f"{display}:{mark.line + 1}:{mark.column + 1}" if mark is not None else display
        raise ScenarioFileError(f"{where}: not valid YAML: {exc.problem or exc.context}") from None
    except yaml.YAMLError as exc:
        raise ScenarioFileError(f"{display}: not valid YAML: {exc}") from None
    if root is None:
        raise ScenarioFileError(f"{display}:1:1: the file is empty; write {SCENARIOS}: {{name: {{...}}}}")
    constructor = yaml.SafeLoader("")
    marks: dict[KeyPath, Mark] = {(): _mark(root)}

    def value(node: Any, path: KeyPath) -> Any:
        if isinstance(node, yaml.MappingNode):
            own = sum(key_node.tag != "tag:yaml.org,2002:merge" for key_node, _ in node.value)
            constructor.flatten_mapping(node)  # YAML merge keys (<<: *anchor): merged pairs first
            merged = len(node.value) - own
            mapping: dict[Any, Any] = {}
            written: set[Any] = set()  # keys written here, not merged: a merged one may be replaced
            for position, (key_node, value_node) in enumerate(node.value):
                key = value(key_node, ())
                if isinstance(key, list | dict):
                    raise ScenarioFileError(
                        f"{_where(display, _mark(key_node))}: a key must be a plain value"
                    )
                if position >= merged and key in written:
                    first = marks[(*path, key)]
                    raise ScenarioFileError(
                        f"{_where(display, _mark(key_node))}: {dotted((*path, key))}: duplicate key "
                        f"(first at line {first.line}); remove one"
                    )
                if position >= merged:
                    written.add(key)
                marks[(*path, key)] = _mark(key_node)
                mapping[key] = value(value_node, (*path, key))
            return mapping
        if isinstance(node, yaml.SequenceNode):
            items = []
            for index, item in enumerate(node.value):
                marks[(*path, index)] = _mark(item)
                items.append(value(item, (*path, index)))
            return items
        return constructor.construct_object(node)

    try:
        return value(root, ()), marks
    except yaml.MarkedYAMLError as exc:  # a scalar that its tag cannot construct
        mark = exc.problem_mark or exc.context_mark
        where = f"{display}:{mark.line + 1}:{mark.column + 1}" if mark is not None else display
        raise ScenarioFileError(f"{where}: not valid YAML: {exc.problem or exc.context}") from None


# ----------------------------------------------------------------------------------------------
# files → scenarios


def load_text(text: str, display: str) -> tuple[FileScenario, ...]:
    """The scenarios of a file's ``text``; ``display`` names the file in errors.

    A problem with the file as a whole raises :class:`ScenarioFileError`; a scenario's invalid
    arguments are its ``error`` (its test fails with it, the file's other scenarios still run).
    """
    document, marks = _read(text, display)
    top = marks[()]
    example = f"e.g. {SCENARIOS}: {{transfers: {{gas_per_sec: 2M, duration: 10s}}}}"
    if not isinstance(document, Mapping):
        raise ScenarioFileError(
            f"{_where(display, top)}: the file must be a mapping with {SCENARIOS}:, {example}"
        )
    for key in document:
        if key not in FILE_KEYS:
            raise ScenarioFileError(
                f"{_where(display, marks[(key,)])}: {key}: unknown key{did_you_mean(key, FILE_KEYS)}; "
                f"known: {', '.join(FILE_KEYS)}"
            )
    if SCENARIOS not in document:
        raise ScenarioFileError(f"{_where(display, top)}: the file needs {SCENARIOS}:, {example}")
    scenarios = document[SCENARIOS]
    if not isinstance(scenarios, Mapping) or not scenarios:
        raise ScenarioFileError(
            f"{_where(display, marks[(SCENARIOS,)])}: {SCENARIOS} must map each scenario's name to its "
            f"arguments, {example}"
        )
    defaults = document.get(DEFAULTS_KEY) or {}
    if not isinstance(defaults, Mapping):
        raise ScenarioFileError(
            f"{_where(display, marks[(DEFAULTS_KEY,)])}: {DEFAULTS_KEY} must be a mapping of arguments, "
            "e.g. {duration: 3s, warmup: 1s}"
        )
    loaded = []
    for name, own in scenarios.items():
        mark = marks[(SCENARIOS, name)]
        if not isinstance(name, str) or not _NAME.match(name):
            raise ScenarioFileError(
                f"{_where(display, mark)}: scenario name {name!r} must be letters, digits, '_', '.' or '-', "
                "starting with a letter or '_' (it is the test's name)"
            )
        if not isinstance(own, Mapping):
            raise ScenarioFileError(
                f"{_where(display, mark)}: {name}: a scenario is a mapping of arguments, "
                "e.g. {gas_per_sec: 2M, duration: 10s}"
            )
        for base, arguments in (((DEFAULTS_KEY,), defaults), ((SCENARIOS, name), own)):
            for key in arguments:
                if not isinstance(key, str):
                    raise ScenarioFileError(
                        f"{_where(display, marks[(*base, key)])}: {key!r} is not an argument name, e.g. gas_per_sec"
                    )
        origins: dict[str, KeyPath] = {key: (DEFAULTS_KEY, key) for key in defaults}
        origins.update({key: (SCENARIOS, name, key) for key in own})
        arguments = {**defaults, **own}
        scenario = FileScenario(name, arguments, mark, None, None, display, origins, marks)
        try:
            spec = parse_spec(arguments)
        except ConfigError as exc:
            scenario = dataclasses.replace(scenario, error=scenario.locate(exc))
        else:
            scenario = dataclasses.replace(scenario, spec=spec)
        loaded.append(scenario)
    return tuple(loaded)


def load_file(path: Path, display: str | None = None) -> tuple[FileScenario, ...]:
    """The scenarios of the file at ``path`` (see :func:`load_text`)."""
    shown = display if display is not None else str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ScenarioFileError(f"{shown}: cannot read the file ({exc})") from None
    return load_text(text, shown)


def file_problems(path: Path) -> list[str]:
    """Every problem of one file, one located line each (``gashammer validate``); empty when valid."""
    try:
        scenarios = load_file(path)
    except ScenarioFileError as exc:
        return [str(exc)]
    return [scenario.error for scenario in scenarios if scenario.error is not None]


# ----------------------------------------------------------------------------------------------
# the JSON Schema


def file_schema() -> dict[str, Any]:
    """The JSON Schema of a scenario file, from the marker's argument table (``gashammer schema``).

    It says the shape, names and types, for an editor to check as you type; ranges and combinations
    are the parser's (``gashammer validate``).
    """
    scenario = {
        "type": "object",
        "properties": {argument.name: argument_schema(argument) for argument in ARGUMENTS},
        "additionalProperties": False,
    }
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "pytest-gashammer scenario file",
        "description": f"A file {' or '.join(FILE_PATTERNS)}: named load scenarios, each a pytest test.",
        "type": "object",
        "required": [SCENARIOS],
        "properties": {
            SCENARIOS: {
                "type": "object",
                "description": FILE_KEYS[SCENARIOS],
                "minProperties": 1,
                "propertyNames": {"pattern": NAME_PATTERN},
                "additionalProperties": {"$ref": "#/$defs/scenario"},
            },
            DEFAULTS_KEY: {"description": FILE_KEYS[DEFAULTS_KEY], "$ref": "#/$defs/scenario"},
        },
        "additionalProperties": False,
        "$defs": {"scenario": scenario},
    }


def scenario_paths(paths: Sequence[Path]) -> list[Path]:
    """The scenario files among ``paths``, directories searched (sorted), for ``gashammer validate DIR``."""
    found: list[Path] = []
    for path in paths:
        if path.is_dir():
            found.extend(sorted(p for p in path.rglob("*.yaml") if is_scenario_file(p)))
        else:
            found.append(path)
    return found
