"""``monitor bench``: each bench beside its baseline in the same run; not on the runtime path
(only ``monitor/cli.py`` imports this package)."""
