"""Every command's `--help` ends with examples, and every example names a real command with options it has."""

from __future__ import annotations

import shlex
from typing import Any

import pytest
import typer.main
from typer.testing import CliRunner

from tokenomy.cli import app
from tokenomy.commands.examples import EXAMPLES


def _leaves(command: Any, path: tuple[str, ...] = ()) -> dict[str, Any]:
    """Typer's commands by path (Typer ships its own click, so they are told apart by what they have)."""
    if hasattr(command, "commands"):
        found: dict[str, Any] = {}
        for name, sub in command.commands.items():
            found.update(_leaves(sub, (*path, name)))
        return found
    return {" ".join(path): command}


LEAVES = _leaves(typer.main.get_command(app))


def test_the_command_tree_is_walked() -> None:
    assert {"prices", "batch submit", "import anthropic-usage", "emulate azure-openai"} <= set(LEAVES)


@pytest.mark.parametrize("path", sorted(LEAVES))
def test_help_ends_with_examples_of_that_command(path: str) -> None:
    result = CliRunner().invoke(app, [*path.split(), "--help"], env={"COLUMNS": "400"})
    assert result.exit_code == 0, result.output
    assert "Examples:" in result.output, f"`tokenomy {path} --help` shows no example"
    after = result.output.split("Examples:", 1)[1]
    assert f"tokenomy {path}" in after, after


@pytest.mark.parametrize("path", sorted(EXAMPLES))
def test_each_example_names_options_the_command_has(path: str) -> None:
    assert path in LEAVES, f"examples for `{path}`, which is not a command"
    command = LEAVES[path]
    named = [p for p in command.params if p.param_type_name == "option"]
    options = {opt for p in named for opt in (*p.opts, *p.secondary_opts)}
    flags = {opt for p in named if p.is_flag for opt in p.opts}
    arguments = [p for p in command.params if p.param_type_name == "argument"]
    for example in EXAMPLES[path]:
        words = shlex.split(example)
        assert words[: len(path.split()) + 1] == ["tokenomy", *path.split()], example
        rest, positional = words[len(path.split()) + 1 :], 0
        while rest:
            word = rest.pop(0)
            if word.startswith("-"):
                assert word.split("=")[0] in options, f"{example}: `tokenomy {path}` has no option {word}"
                if word not in flags and "=" not in word:
                    rest.pop(0)  # its value
            else:
                positional += 1
        takes = sum(1 if a.nargs == 1 else 99 for a in arguments)
        assert positional <= takes, f"{example}: {positional} arguments, the command takes {takes}"
