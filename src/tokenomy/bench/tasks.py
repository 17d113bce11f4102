"""Task files (YAML or JSONL): a name, a prompt template, examples, and a scorer per task."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from tokenomy.errors import ConfigError

SCORERS = ("exact_match", "normalized_match", "regex", "json_valid", "json_fields", "json_schema", "numeric",
           "classification", "judge")


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
        try:
            return self.prompt.format(**example.fields)
        except KeyError as exc:
            raise ConfigError(f"task {self.name!r} example {example.index}: the prompt uses {{{exc.args[0]}}} "
                              "but the example has no such field") from None


def _task(data: dict[str, Any], where: str) -> Task:
    for key in ("name", "prompt", "scorer", "examples"):
        if key not in data:
            raise ConfigError(f"{where}: '{key}' is required (a task has name, prompt, scorer, examples)")
    scorer = data["scorer"]
    if scorer not in SCORERS:
        raise ConfigError(f"{where}.scorer: {scorer!r} is not one of {', '.join(SCORERS)}")
    examples = []
    for index, raw in enumerate(data["examples"] or []):
        if not isinstance(raw, dict):
            raw = {"input": raw}
        fields = {k: v for k, v in raw.items() if k != "expected"}
        examples.append(Example(index, fields, raw.get("expected")))
    if not examples:
        raise ConfigError(f"{where}.examples: a task needs at least one example")
    known = {"name", "prompt", "scorer", "examples", "system", "max_tokens"}
    options = {k: v for k, v in data.items() if k not in known}
    return Task(name=str(data["name"]), prompt=str(data["prompt"]), scorer=scorer, examples=tuple(examples),
                system=data.get("system"), max_tokens=data.get("max_tokens"), options=options)


def load_tasks(path: str | Path) -> list[Task]:
    """Read a YAML file with `tasks:` or a JSONL file with one task per line."""
    path = Path(path)
    if not path.exists():
        raise ConfigError(f"{path}: task file not found")
    if path.suffix.lower() == ".jsonl":
        tasks = []
        for number, line in enumerate(path.read_text().splitlines(), start=1):
            if line.strip():
                try:
                    tasks.append(_task(json.loads(line), f"{path.name}:{number}"))
                except json.JSONDecodeError as exc:
                    raise ConfigError(f"{path.name}:{number}: invalid JSON ({exc.msg})") from None
        return tasks
    try:
        doc = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML ({exc})") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("tasks"), list):
        raise ConfigError(f"{path}: expected a top-level `tasks:` list")
    tasks = [_task(t, f"{path.name}: tasks[{i}]") for i, t in enumerate(doc["tasks"])]
    names = [t.name for t in tasks]
    if len(set(names)) != len(names):
        raise ConfigError(f"{path}: task names must be unique ({names})")
    return tasks
