"""The use cases behind the ``monitor`` commands: each opens what it needs from ``Settings``,
does one thing, and returns typed rows that ``monitor/cli.py`` prints (``--json`` prints the
rows as they are)."""
