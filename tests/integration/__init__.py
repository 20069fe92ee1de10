"""ignity as a real PID 1 in PID namespaces (needs root, unshare and nsenter)."""
