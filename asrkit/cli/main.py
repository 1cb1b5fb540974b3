"""Entry point of the ``asrkit`` command.

Global options come before the subcommand::

    asrkit --version
    asrkit -q featurize ...      # no progress or info on stderr
    asrkit --debug score ...     # show tracebacks of user errors

Each command group lives in its own module in ``asrkit/cli/`` and is
registered in :func:`_register`. An :class:`asrkit.errors.AsrkitError` becomes
one red line on stderr and exit status 1 (2 for usage errors).
"""
from __future__ import annotations

import sys
from typing import Optional

import typer
from typer.core import TyperGroup
from typer.exceptions import TyperException

from asrkit import __version__, log
from asrkit.errors import AsrkitError

# Command names in the order they were registered (the pipeline's order).
_ORDER: list[str] = []


class _PipelineOrder(TyperGroup):
    """Lists commands in registration order; typer would list every single
    command before every group, splitting the stages apart in --help."""

    def list_commands(self, ctx):  # type: ignore[no-untyped-def]
        names = super().list_commands(ctx)
        return sorted(names, key=lambda n: _ORDER.index(n) if n in _ORDER else len(_ORDER))


app = typer.Typer(
    name="asrkit",
    cls=_PipelineOrder,
    help="Speech recognition experiments: data dirs, features, models, decoding and scoring.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)

_debug = False


def _version_callback(value: bool) -> None:
    if value:
        typer.echo(f"asrkit {__version__}")
        raise typer.Exit()


@app.callback()
def _global_options(
    version: Optional[bool] = typer.Option(
        None, "--version", callback=_version_callback, is_eager=True, help="Print the version and exit."
    ),
    quiet: bool = typer.Option(False, "-q", "--quiet", help="No progress bars or info on stderr."),
    debug: bool = typer.Option(False, "--debug", help="Show Python tracebacks for user errors."),
) -> None:
    global _debug
    _debug = debug
    log.set_quiet(quiet)


def _register() -> None:
    """Add every command group. Each module defines ``register(app)``; what it
    adds goes under its pipeline stage's heading in ``asrkit --help``."""
    from asrkit.cli import (align, audio, corpus, data, decode, demo, featurize, frechet, g2p, lm, plot, predict,
                            rescore, sample, score, segment, tokenizer, train, transcribe, tune, verify)

    # Listed in --help in this order: the data flow, then the demo.
    stages = (
        ("Data", (corpus, data, audio, segment)),
        ("Features", (featurize,)),
        ("Training", (tokenizer, train)),
        ("Language models", (lm, g2p)),
        ("Decoding", (decode, transcribe, align, rescore, tune, predict, sample)),
        ("Scoring", (score, verify, frechet)),
        ("Plots", (plot,)),
        ("Demo & tools", (demo,)),
    )
    for panel, modules in stages:
        for module in modules:
            commands, groups = len(app.registered_commands), len(app.registered_groups)
            module.register(app)
            for info in (*app.registered_groups[groups:], *app.registered_commands[commands:]):
                info.rich_help_panel = panel
                _ORDER.append(info.name)


def _bare_flags() -> None:
    """Show flags without a value type in help.

    typer's rich help prints a type after every option, so a flag that takes
    no value read ``--quiet <bool>``. A flag is shown as its names only
    (``--skip-bad``, ``--cmudict/--no-cmudict``), as click's plain help does.
    """
    from typer.core import TyperOption

    shown = getattr(TyperOption, "display_type_rich", None)
    if shown is None or getattr(shown, "asrkit_bare_flags", False):
        return  # an older typer that never typed flags, or already done

    def display_type_rich(self, ctx):  # type: ignore[no-untyped-def]
        if self.is_bool_flag:
            return None
        return shown(self, ctx)

    display_type_rich.asrkit_bare_flags = True  # type: ignore[attr-defined]
    TyperOption.display_type_rich = display_type_rich  # type: ignore[method-assign]


_register()
_bare_flags()


def main(argv: list[str] | None = None) -> int:
    """Run the CLI and return (and exit with) its status."""
    command = typer.main.get_command(app)
    args = sys.argv[1:] if argv is None else list(argv)
    try:
        rv = command.main(args=args, prog_name="asrkit", standalone_mode=False)
        code = rv if isinstance(rv, int) else 0
    except SystemExit as e:
        # typer turns EPIPE into a silent exit 1; a reader that went away is not
        # an error of ours (`asrkit decode ... | head`).
        if not _is_broken_pipe(e.__context__):
            raise
        code = _stdout_gone()
    except typer.Exit as e:
        code = e.exit_code
    except typer.Abort:
        log.console.print("[red]asrkit: aborted[/red]", highlight=False)
        code = 130
    except TyperException as e:
        # typer's (bundled click) usage errors: bad option, missing argument.
        msg = e.format_message() if hasattr(e, "format_message") else str(e)
        ctx = getattr(e, "ctx", None)
        hint = f" (see '{ctx.command_path} --help')" if ctx is not None else ""
        log.console.print(f"[red]asrkit: {_escape(msg + hint)}[/red]", highlight=False, soft_wrap=True)
        code = getattr(e, "exit_code", 2)
    except AsrkitError as e:
        if _debug:
            log.console.print_exception()
        log.console.print(f"[red]asrkit: {_escape(str(e))}[/red]", highlight=False, soft_wrap=True)
        code = e.exit_code
    except KeyboardInterrupt:
        log.console.print("[red]asrkit: interrupted[/red]", highlight=False)
        code = 130
    except BrokenPipeError:
        # `asrkit ... | head`: the reader went away; not an error of ours.
        code = _stdout_gone()
    if argv is None:
        finish(code, args)
    return code


#: Commands whose process ends without the interpreter's teardown once they succeed (see
#: :func:`finish`). Only commands whose outputs are all closed when they return: ``decode``
#: writes its hypotheses to stdout and anything else (``--save-emissions``) through ``with``
#: blocks, and its worker pools (``--jobs``) are ended by theirs.
FAST_EXIT = ("decode",)


def finish(code: int, args: list[str]) -> None:
    """End this process with ``code`` after the command ``args`` ran
    (``main`` does this when it runs as the ``asrkit`` program).

    stdout is flushed first (a reader that went away is not an error).
    After a successful command of :data:`FAST_EXIT` the process then ends
    with ``os._exit``: the interpreter's teardown (freeing every module and
    object, torch's among them) took ~0.7 CPU seconds after ``import
    torch``, a fifth of a small decode. That skips ``atexit`` handlers and
    the flush of files nobody closed, so it is safe only when everything the
    command wrote is closed and flushed here: stdout and stderr are flushed
    explicitly, and the commands listed close their files themselves. Any
    other command, and any failure, ends through ``sys.exit`` as usual."""
    try:
        sys.stdout.flush()
    except (BrokenPipeError, ValueError):
        code = _stdout_gone() if code == 0 else code
    command = next((a for a in args if not a.startswith("-")), None)  # global options take no value
    if code == 0 and command in FAST_EXIT:
        import os

        try:
            sys.stderr.flush()
        finally:
            os._exit(code)
    sys.exit(code)


def _is_broken_pipe(exc: BaseException | None) -> bool:
    import errno

    return isinstance(exc, OSError) and exc.errno in (errno.EPIPE, errno.ESHUTDOWN)


def _stdout_gone() -> int:
    """stdout's reader has gone: end quietly with status 0. Output still
    buffered is dropped (stdout is pointed at /dev/null so that the flush at
    exit cannot fail again and print 'Exception ignored')."""
    import os

    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.__stdout__.fileno())
        os.close(devnull)
    except (OSError, AttributeError, ValueError):
        pass
    return 0


def _escape(text: str) -> str:
    from rich.markup import escape

    return escape(text)


if __name__ == "__main__":
    main()
