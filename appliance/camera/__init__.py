"""Booth cameras: one interface, sources found by the registry, each recovering by itself."""
