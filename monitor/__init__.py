"""newsmonitor: alerts once per story from news feeds and wire services."""

__version__ = "0.1.0.dev0"
