"""``hubctl listen SOURCE...``: live MQTT sources (oneM2M, IoT-Agent JSON) into the lake."""

from __future__ import annotations

import click

from hubctl.cli.context import hub
from hubctl.cli.output import emit_json, json_option, print_rows
from hubctl.errors import ConfigError

__all__ = ["COMMANDS"]


@click.command()
@click.argument("sources", nargs=-1, required=True, metavar="SOURCE...")
@click.option("--workers", type=int, default=None, metavar="N",
              help="listener processes per source, sharing its subscription "
                   "($share/hubctl-SOURCE/...); default: the source's `workers`, else 1")
@json_option
def listen(sources: tuple[str, ...], workers: int | None, as_json: bool) -> None:
    """Listen to MQTT sources declared in hub.toml and commit what they publish to the lake.

    Each source is a [sources.NAME.mqtt] table: broker, protocol (onem2m or iotagent-json),
    topics and the mapping to entity types. Messages are committed in micro-batches (by count
    and time) before they are acknowledged, so a crash or a broker restart loses nothing and a
    redelivered message is counted as a duplicate. Runs until SIGTERM or Ctrl-C, then commits
    what it holds and exits 0. Each micro-batch is one run in `_runs`.

    With register = true (oneM2M), the hub registers as the AE ae_id on the CSE cse_id,
    subscribes to every mapped container, and catches up on what it missed (at start, after a
    reconnect, every `reconcile` seconds), so a CSE publishing at QoS 0 loses nothing;
    notify_http = "host:port" also receives notifications over HTTP (docs/live.md).

    One process handles about 10,000 messages/s; --workers N (or workers = N in the source's
    mqtt table) runs N processes that share the subscription, each with its own persistent
    session (client id <client_id>-w<i>); a worker that dies is restarted with backoff.

    \b
    Example:
      export DAEGU_MQTT_PASSWORD=...
      hubctl listen daegu-air daegu-iot
      hubctl listen daegu-iot --workers 2
      hubctl sql "SELECT count(*) FROM AirQualityObserved WHERE _source = 'daegu-air'"

    Exit codes: 0 stopped cleanly, 1 failed, 2 bad configuration, 75 source already listened to.
    """
    from dataclasses import replace

    from hubctl.mqtt.client import listen as run_listen
    from hubctl.mqtt.client import stderr_log
    from hubctl.mqtt.settings import check_workers, parse_settings
    from hubctl.mqtt.workers import supervise, warn_retired

    if workers is not None:
        check_workers(workers, "--workers")

    ctx = hub()
    config = ctx.config
    settings = []
    for name in sources:
        src = config.sources.get(name)
        if src is None:
            raise ConfigError(f"unknown source {name!r}",
                              hint=f"declared in {config.path or 'hub.toml (none found)'}: "
                                   f"{', '.join(config.sources) or 'none'}")
        if src.mqtt is None:
            raise ConfigError(f"source {name} is not an MQTT source (no [sources.{name}.mqtt])",
                              hint=f"use `hubctl ingest --source {name}` for it")
        s = parse_settings(name, src.mqtt, src.base)
        settings.append(s if workers is None else replace(s, workers=workers))
    if all(s.workers == 1 for s in settings):
        warn_retired(ctx.lake, settings, stderr_log)
        totals = run_listen(ctx.lake, settings, stderr_log)
    else:
        totals = supervise(ctx.lake, settings, stderr_log)
    if as_json:
        emit_json([t.summary() for t in totals])
        return
    cols = ["source", "messages", "batches", "read", "written", "updated", "duplicate",
            "rejected", "responses"]
    print_rows(cols, [[getattr(t, c) for c in cols] for t in totals])


COMMANDS = [listen]
