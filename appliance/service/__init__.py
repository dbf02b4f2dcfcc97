"""Living under systemd: readiness, status and watchdog notifications, and the journald audit."""
