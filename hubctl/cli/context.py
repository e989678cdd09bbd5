"""What every command gets: the resolved config and lake, loaded on first use."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import click

from hubctl.config import Config, load_config
from hubctl.s3 import LakeRoot

if TYPE_CHECKING:
    from hubctl.lake import Lake

__all__ = ["HubContext", "hub"]


@dataclass
class HubContext:
    """Global options and the lazily loaded configuration."""

    lake_option: str | None = None  # --lake: a folder or s3://BUCKET/PREFIX
    config_option: Path | None = None
    debug: bool = False
    _config: Config | None = field(default=None, repr=False)

    @property
    def config(self) -> Config:
        """hub.toml and the lake path, resolved once."""
        if self._config is None:
            self._config = load_config(self.config_option, self.lake_option)
        return self._config

    @property
    def lake(self) -> Lake:
        """The lake this invocation works on; runs whose process died are recorded as
        ``interrupted`` first (one directory listing when there are none)."""
        from hubctl.lake import Lake  # deltalake loads only for commands that use the lake
        from hubctl.running import any_markers

        lake = Lake(self.config.lake)
        if any_markers(lake.root):
            from hubctl.ledger import mark_interrupted

            mark_interrupted(lake)
        return lake

    @property
    def lake_root(self) -> LakeRoot:
        """The lake's folder, for commands that read it without the lake module (``sql``):
        runs whose process died are still recorded as ``interrupted`` first, as by
        :attr:`lake`, at the cost of one directory listing when there are none."""
        from hubctl.running import any_markers

        root = self.config.lake
        if any_markers(root):
            self.lake  # noqa: B018 - opening it marks the interrupted runs
        return root

    def refresh_catalogs(self) -> None:
        """Rewrite the catalog files registered with the lake if this command changed it
        (nothing to do, and nothing imported, for a lake without registered catalogs)."""
        if self._config is None:
            return
        from hubctl.catalog import REGISTRY

        root = self._config.lake
        if isinstance(root, Path) and (root / REGISTRY).is_file():
            from hubctl.catalog import refresh_catalogs

            refresh_catalogs(root)


def hub() -> HubContext:
    """The HubContext of the running command."""
    obj = click.get_current_context().find_object(HubContext)
    return obj if obj is not None else HubContext()
