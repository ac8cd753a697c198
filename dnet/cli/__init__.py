"""The `dnet` command line: one thin module per command."""
