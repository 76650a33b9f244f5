"""Observers of what a server decides: Prometheus metrics and connection log lines."""
