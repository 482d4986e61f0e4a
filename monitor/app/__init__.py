"""The application: settings, the wiring that builds every adapter, and the daemon."""
