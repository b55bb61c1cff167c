"""Command-line entry points (top layer). Each subcommand lives in its own module."""
