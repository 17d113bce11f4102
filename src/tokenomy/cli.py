"""The `tokenomy` command. Thin: parse arguments, call the packages, print tables or JSON.

Each command group lives in `tokenomy.commands.<name>` and exposes `register(app)`.
"""

from __future__ import annotations

import errno
import importlib
import inspect
import sys
from collections.abc import Callable
from typing import Any

import typer
from rich.markup import escape
from typer.models import OptionInfo

from tokenomy.commands._help_layout import fit_option_tables
from tokenomy.commands.examples import epilog
from tokenomy.errors import TokenomyError, scrub

app = typer.Typer(
    name="tokenomy",
    help="Cut the cost of LLM workloads: route, cache, batch, benchmark, plan and report.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def _version(value: bool) -> None:
    if value:
        from importlib.metadata import version

        typer.echo(f"tokenomy {version('tokenomy')}")
        raise typer.Exit()


@app.callback()
def _root(
    _version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Print the installed version and exit."
    ),
) -> None:
    """Cut the cost of LLM workloads: route, cache, batch, benchmark, plan and report."""


COMMAND_MODULES = (
    "core",
    "ledger",
    "emulate",
    "serve",
    "keys",
    "route",
    "batch",
    "caches",
    "bench",
    "plan",
    "report",
    "alerts",
    "review",
    "export",
    "imports",
    "demo",
)

for _name in COMMAND_MODULES:
    importlib.import_module(f"tokenomy.commands.{_name}").register(app)


def _flow_help(group: typer.Typer, path: str = "") -> None:
    """Join the lines of each help paragraph: Typer keeps a docstring's single line breaks after its first paragraph,
    so `--help` broke sentences ("... when" / "they are POSTed ...") where the source happened to wrap. Then end
    each command's help with its examples (`commands.examples`)."""
    for info in group.registered_commands:
        text = info.help if info.help is not None else inspect.getdoc(info.callback)
        if text:
            info.help = "\n\n".join(" ".join(p.split()) for p in inspect.cleandoc(text).split("\n\n"))
        name = info.name or (info.callback.__name__.replace("_", "-") if info.callback else "")
        if info.callback is not None:
            _bare_flags(info.callback)
        examples = epilog(f"{path} {name}".strip())
        if examples is not None and info.epilog is None:
            info.epilog = escape(examples)  # an example's brackets are text, not Rich markup
    for sub in group.registered_groups:
        if sub.typer_instance is not None:
            _flow_help(sub.typer_instance, f"{path} {sub.name or sub.typer_instance.info.name}".strip())


def _bare_flags(callback: Callable[..., Any]) -> None:
    """Show a flag as `--json`, not `--json <bool>`: Typer 0.29 prints each option's type beside it, which for a
    flag reads as if it took a value (`--json true`). An empty metavar is Typer's own way to print no type."""
    for parameter in inspect.signature(callback).parameters.values():
        option = parameter.default
        if isinstance(option, OptionInfo) and isinstance(option.default, bool) and option.metavar is None:
            option.metavar = ""


def _bare_help_flag() -> None:
    """Show `--help` bare too: Typer 0.29 makes each command's help option itself (after `_bare_flags` ran), and
    printed it as `--help <bool>` in every help page. Its option gets the same empty metavar when Typer makes it."""
    try:
        from typer._click.core import Command
    except ImportError:  # a Typer that uses click itself, which prints flags bare
        return
    make = Command.get_help_option

    def get_help_option(self: Command, ctx: Any) -> Any:
        option = make(self, ctx)
        if option is not None and option.metavar is None:
            option.metavar = ""
        return option

    setattr(Command, "get_help_option", get_help_option)  # noqa: B010  (mypy refuses assigning to a method)


_flow_help(app)
if app.registered_callback is not None and app.registered_callback.callback is not None:
    _bare_flags(app.registered_callback.callback)
_bare_help_flag()
fit_option_tables()


# The fix for a path the system refused, by its errno: "check the path and its permissions" sent someone who gave a
# file for `demo --workdir` ("Not a directory") or a folder for a file ("Is a directory") to look at permissions.
_PATH_FIXES = {
    errno.EISDIR: "give a file path, not a folder",
    errno.ENOTDIR: "a file stands where a folder is needed; give a folder path, or move the file",
    errno.EEXIST: "a file stands where a folder would be made; give a folder path, or move the file",
    errno.ENOENT: "check the path (the file or a folder on the way is not there)",
    errno.EACCES: "check its permissions (and those of the folders on the way)",
    errno.ENOSPC: "free some space on that disk, or give a path on another",
}


def _one_line(message: str) -> str:
    """Click's message on one line, without the period that ends its sentence (`; see ...` follows it). Only a period
    after a word: a message that ended in a path, such as `.` (`bench summary results.csv`: "give the folder that
    holds it, ."), lost the path and read "give the folder that holds it, ;"."""
    text = " ".join(message.split())
    if len(text) > 1 and text.endswith(".") and text[-2] not in " ./":
        text = text[:-1]
    return text


def _not_utf8(argv: list[str]) -> str | None:
    """The error for a word of the command line that is not UTF-8 (Python keeps its bytes as lone surrogates): a name,
    prompt or task went on to the ledger, the model or the terminal as a traceback ("surrogates not allowed"), after
    `keys create` had made no key. A file that is there may have such a name; a new one is refused too."""
    import os

    for index, word in enumerate(argv):
        try:
            word.encode("utf-8")
        except UnicodeEncodeError:
            value = word.split("=", 1)[1] if word.startswith("--") and "=" in word else word
            if os.path.lexists(value):
                continue
            shown = word.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
            option = argv[index - 1] if index > 0 and argv[index - 1].startswith("-") else None
            where = f"{option} '{shown}'" if option else f"'{shown}'"  # repr() doubled the backslash
            fix = "type it again in UTF-8 (a terminal set to UTF-8, e.g. LANG=C.UTF-8)"
            return f"error: {where}: not UTF-8 text; {fix}"
    return None


def main() -> None:
    """Entry point that turns Tokenomy errors and usage errors into one readable line and exit code 2."""
    refused = _not_utf8(sys.argv[1:])
    if refused is not None:
        print(scrub(refused), file=sys.stderr)
        sys.exit(2)
    try:
        code = app(standalone_mode=False)  # click's own errors come here instead of as a multi-line box
    except typer.Abort:
        print("aborted", file=sys.stderr)
        sys.exit(130)
    except typer.TyperException as exc:  # typer's click: usage errors (bad option/value), unreadable file arguments
        message = exc.format_message() if hasattr(exc, "format_message") else str(exc)
        ctx = getattr(exc, "ctx", None)
        where = f"; see `{ctx.command_path} --help`" if ctx is not None else ""
        if message.strip():  # empty for a group run without a command: its help was printed instead
            # scrub: click quotes the value it refused, as typed (a URL with its password, a key)
            print(f"error: {scrub(_one_line(message))}{where}", file=sys.stderr)
        sys.exit(getattr(exc, "exit_code", 2))
    except TokenomyError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(2)
    except OSError as exc:
        # A file named on the command line that cannot be read or written: name it, no traceback.
        if exc.filename is not None:
            fix = _PATH_FIXES.get(exc.errno or 0, "check the path and its permissions")
            print(scrub(f"error: {exc.filename}: {exc.strerror or exc}; {fix}"), file=sys.stderr)
        elif exc.errno == errno.ENOSPC:  # stdout sent to a full disk: "[Errno 28] No space left on device", no fix
            print("error: no space left on the disk the output goes to; free some space, or send it to another disk",
                  file=sys.stderr)  # fmt: skip
        else:
            print(scrub(f"error: {exc}"), file=sys.stderr)
        sys.exit(2)
    sys.exit(code if isinstance(code, int) else 0)


if __name__ == "__main__":
    main()
