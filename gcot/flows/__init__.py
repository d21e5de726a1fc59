"""Prefect flows: thin wiring over the plain step functions."""
