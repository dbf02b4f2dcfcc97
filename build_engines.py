#!/usr/bin/env python3
"""Build the models in engines/models.toml for this machine: the same as ``ephemera build``."""

from appliance.cli import main

if __name__ == "__main__":
    raise SystemExit(main(["build", *__import__("sys").argv[1:]]))
