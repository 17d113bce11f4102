"""`--help` of every command on a terminal 80 columns wide: every word of every option whole, none cut short with
"…" or folded onto the next line in the middle."""

from __future__ import annotations

import pytest
import typer.main
from rich.text import Text
from typer.testing import CliRunner

from helpers.cli import all_command_paths
from tokenomy.cli import app

BOX = str.maketrans({c: " " for c in "│╭╮╰╯─"})


def _param_words(command) -> list[str]:
    """The words --help shows for each argument and option: its help, default and range, and an option's names, as
    Typer writes them."""
    words: list[str] = []
    for param in command.params:
        if getattr(param, "hidden", False):
            continue
        if param.param_type_name == "option":
            words += [*param.opts, *param.secondary_opts]
        words += Text.from_markup(getattr(param, "help", None) or "").plain.split()
        default = getattr(param.default, "value", param.default)
        if getattr(param, "show_default", None) is not False and default not in (None, True, False, "", [], ()):
            words += f"[default: {default}]".split()
        if getattr(param, "min", None) is not None or getattr(param, "max", None) is not None:
            words.append(f"[{param._get_number_range_help_str()}]")
    return words


@pytest.mark.parametrize("path", all_command_paths(), ids=lambda path: " ".join(path) or "tokenomy")
@pytest.mark.parametrize("columns", [80, 100])
def test_help_shows_every_word_whole(path: list[str], columns: int) -> None:
    # At 80 columns Rich shrank the names, types and help of `route eval --help` to about 22 characters each and cut
    # what did not fit: "--strong-model,--stro…", "[default: anthropic.claude-3-7-…", "[0<=x<=42949" / "67295]";
    # `emulate gemini` showed "--batch-pending-secon…".
    command = typer.main.get_command(app)
    for name in path:
        command = command.commands[name]
    result = CliRunner().invoke(app, [*path, "--help"], env={"COLUMNS": str(columns), "TERM": "dumb"})
    assert result.exit_code == 0, result.output
    shown = set()
    for word in result.output.translate(BOX).split():
        shown |= {word, *word.split(",")}  # Typer joins an option's names with commas: --out,--output
    cut = [word for word in _param_words(command) if word not in shown]
    assert not cut, (cut, result.output)
