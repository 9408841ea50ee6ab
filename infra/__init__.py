"""Tooling around the service: the local stack, the CLI, deploy helpers."""
