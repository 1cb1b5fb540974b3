"""The ``asrkit`` command line: one typer module per command group, thin
(parse, call the library, print)."""
