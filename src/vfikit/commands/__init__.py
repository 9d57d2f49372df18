"""Command-line subcommands: each module provides ``configure(parser)`` and ``run(args) -> int``."""
