"""Routers grouped by resource."""
