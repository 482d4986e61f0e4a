"""Operations: logs, secret masking, metrics, /healthz and /metrics, status, operator alerts,
progress of long commands."""
