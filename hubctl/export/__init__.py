"""Open-data bundles: ``hubctl export`` (see docs/export.md).

:mod:`.publish` holds the privacy rules (``x-hub-publish``), :mod:`.where` the ``--where``
check, :mod:`.tables` the published view of each table, :mod:`.writers` the data files,
:mod:`.metadata` datapackage.json and DCAT-AP, :mod:`.docs` README.md and index.html, and
:mod:`.bundle` puts them together and keeps the ``_exports`` ledger.
"""

from __future__ import annotations

__all__: list[str] = []
