"""The three loops of the daemon: poll (sources → items), process (items → alerts), dispatch
(alerts → channels). They share Redis streams, never imports (``docs/layout.md``)."""
