from vfikit.cli import entry

raise SystemExit(entry())
