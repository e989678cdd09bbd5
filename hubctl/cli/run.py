"""``hubctl pipelines`` and ``hubctl run``: analyses over the lake (filled in below)."""

from __future__ import annotations

import click

__all__ = ["COMMANDS"]

COMMANDS: list[click.Command] = []
