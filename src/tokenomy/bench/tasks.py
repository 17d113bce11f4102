"""Task files (YAML or JSONL): a name, a prompt template, examples, and a scorer per task."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jsonschema
import yaml

from tokenomy.errors import ConfigError, read_utf8, yaml_problem
from tokenomy.yaml_text import load_yaml

OPTIONS = ("labels", "required", "schema", "pattern", "tolerance", "contains")
SCORERS = (
    "exact_match",
    "normalized_match",
    "regex",
    "json_valid",
    "json_fields",
    "json_schema",
    "numeric",
    "classification",
    "judge",
)


@dataclass(frozen=True)
class Example:
    """One input of a task; `fields` fill the template, `expected` is the reference answer if known."""

    index: int
    fields: dict[str, Any]
    expected: Any = None


@dataclass(frozen=True)
class Task:
    name: str
    prompt: str
    scorer: str
    examples: tuple[Example, ...]
    system: str | None = None
    max_tokens: int | None = None
    options: dict[str, Any] = field(default_factory=dict)

    def render(self, example: Example) -> str:
        """The prompt with this example's fields filled in."""
        try:
            return self.prompt.format(**example.fields)
        except KeyError as exc:
            raise ConfigError(
                f"task {self.name!r} example {example.index}: the prompt uses {{{exc.args[0]}}} "
                "but the example has no such field"
            ) from None
        except (IndexError, ValueError) as exc:
            raise ConfigError(
                f"task {self.name!r}: the prompt is not a valid template ({exc}); write literal braces as {{{{ and }}}}"
            ) from None


def _task(data: dict[str, Any], where: str) -> Task:
    if not isinstance(data, dict):
        raise ConfigError(f"{where}: a task must be a mapping with name, prompt, scorer, examples")
    for key in ("name", "prompt", "scorer", "examples"):
        if key not in data:
            raise ConfigError(f"{where}: '{key}' is required (a task has name, prompt, scorer, examples)")
    scorer = data["scorer"]
    if scorer not in SCORERS:
        raise ConfigError(f"{where}.scorer: {scorer!r} is not one of {', '.join(SCORERS)}")
    if not isinstance(data["examples"], list) or not data["examples"]:  # [] ran nothing and printed an empty table
        raise ConfigError(f"{where}.examples: must be a non-empty list of examples ({{input: ..., expected: ...}})")
    examples = []
    for index, raw in enumerate(data["examples"]):
        if not isinstance(raw, dict):
            raw = {"input": raw}
        fields = {k: v for k, v in raw.items() if k != "expected"}
        examples.append(Example(index, fields, raw.get("expected")))
    if not examples:
        raise ConfigError(f"{where}.examples: a task needs at least one example")
    known = {"name", "prompt", "scorer", "examples", "system", "max_tokens"}
    options = dict(data.get("options") or {})
    options.update({k: v for k, v in data.items() if k not in known | {"options"}})
    for key in options:
        if key not in OPTIONS:
            raise ConfigError(
                f"{where}.{key}: unknown task field (fields: {', '.join(sorted(known))}; scorer "
                f"options: {', '.join(OPTIONS)})"
            )
    max_tokens = data.get("max_tokens")
    if max_tokens is not None and (not isinstance(max_tokens, int) or max_tokens < 1):
        raise ConfigError(f"{where}.max_tokens: must be a positive integer, got {max_tokens!r}")
    task = Task(
        name=str(data["name"]),
        prompt=str(data["prompt"]),
        scorer=scorer,
        examples=tuple(examples),
        system=data.get("system"),
        max_tokens=max_tokens,
        options=options,
    )
    _check(task, where)
    return task


def _check(task: Task, where: str) -> None:
    """Fail at load time, naming the example, rather than half-way through a paid run."""
    options = task.options
    for example in task.examples:
        task.render(example)
        needs_expected = task.scorer in ("exact_match", "normalized_match", "numeric", "classification") or (
            task.scorer == "regex" and "pattern" not in options
        )
        if needs_expected and example.expected is None:
            raise ConfigError(f"{where}.examples[{example.index}]: the {task.scorer} scorer needs `expected`")
        if task.scorer == "numeric":
            try:
                float(example.expected)
            except (TypeError, ValueError):
                raise ConfigError(
                    f"{where}.examples[{example.index}].expected: {example.expected!r} is not a number (numeric scorer)"
                ) from None
        if task.scorer == "regex" and "pattern" not in options:
            try:
                re.compile(str(example.expected))
            except re.error as exc:
                raise ConfigError(
                    f"{where}.examples[{example.index}].expected: not a valid regular expression ({exc})"
                ) from None
        labels = options.get("labels")
        if (
            task.scorer == "classification"
            and labels
            and str(example.expected).lower() not in [str(label).lower() for label in labels]
        ):
            raise ConfigError(
                f"{where}.examples[{example.index}].expected: {example.expected!r} is not one of the labels {labels}"
            )
    if task.scorer == "regex" and "pattern" in options:
        try:
            re.compile(str(options["pattern"]))
        except re.error as exc:
            raise ConfigError(f"{where}.pattern: not a valid regular expression ({exc})") from None
    if task.scorer == "json_schema":
        if not isinstance(options.get("schema"), dict):
            raise ConfigError(f"{where}.schema: the json_schema scorer needs a JSON Schema object")
        try:
            jsonschema.validators.validator_for(options["schema"]).check_schema(options["schema"])
        except jsonschema.SchemaError as exc:
            raise ConfigError(f"{where}.schema: not a valid JSON Schema ({exc.message})") from None
    if "required" in options and not isinstance(options["required"], list):
        raise ConfigError(f"{where}.required: must be a list of field names")


_EXPECTED = "tasks as YAML (a top-level `tasks:` list) or JSONL (one task object per line)"


def load_tasks(path: str | Path) -> list[Task]:
    """Read a YAML file with `tasks:` or a JSONL file with one task per line."""
    path = Path(path)
    if not path.exists():
        raise ConfigError(f"{path}: task file not found")
    if path.suffix.lower() == ".jsonl":
        tasks = []
        for number, line in enumerate(read_utf8(path, _EXPECTED).splitlines(), start=1):
            if line.strip():
                try:
                    tasks.append(_task(json.loads(line), f"{path.name}:{number}"))
                except json.JSONDecodeError as exc:
                    raise ConfigError(f"{path.name}:{number}: invalid JSON ({exc.msg})") from None
        if not tasks:
            raise ConfigError(f"{path}: no tasks; write one task object per line")
        return tasks
    try:
        doc = load_yaml(read_utf8(path, _EXPECTED))
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML at {yaml_problem(exc)}") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("tasks"), list):
        raise ConfigError(f"{path}: expected a top-level `tasks:` list")
    if not doc["tasks"]:
        raise ConfigError(f"{path}: `tasks:` is empty; add at least one task (name, prompt, scorer, examples)")
    tasks = [_task(t, f"{path.name}: tasks[{i}]") for i, t in enumerate(doc["tasks"])]
    names = [t.name for t in tasks]
    if len(set(names)) != len(names):
        raise ConfigError(f"{path}: task names must be unique ({names})")
    return tasks
