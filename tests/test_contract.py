"""One contract test over every registered adapter and pipeline: a new one gets these checks
for free (STYLE.md 14). Names, one-line summaries, examples that run the real command with
options and parameters that exist, help text on every option, and entity types the schema
registry knows."""

from __future__ import annotations

import re
import shlex

import click
import pytest
from click.testing import CliRunner

from hubctl.adapters import MODULES, get_adapter
from hubctl.cli import cli
from hubctl.registry import get_type
from pipelines import PIPELINES


def _ingest_command(name: str) -> click.Command:
    group = cli.get_command(click.Context(cli), "ingest")
    assert isinstance(group, click.Group)
    ctx = click.Context(group)
    command = group.get_command(ctx, name)
    assert command is not None, f"hubctl ingest {name} is not a command"
    return command


def _options(command: click.Command) -> set[str]:
    return {o for p in command.params for o in (*p.opts, *getattr(p, "secondary_opts", []))}


@pytest.mark.parametrize("name", sorted(MODULES))
def test_every_adapter_keeps_the_contract(name: str) -> None:
    adapter = get_adapter(name)
    assert adapter.name == name
    assert adapter.summary and "\n" not in adapter.summary
    assert adapter.entity_types, "an adapter produces at least one entity type"
    for type_name in adapter.entity_types:
        assert get_type(type_name).name == type_name
    command = _ingest_command(name)
    for param in command.params:
        if isinstance(param, click.Option):
            assert param.help, f"{name}: {param.opts[0]} has no help text"
    known = _options(command) | {"--lake", "--json", "--config", "--force", "--quiet",
                                 "--max-reject-rate", "--batch-rows", "--debug"}
    for example in filter(None, (adapter.example, adapter.pull_example)):
        words = shlex.split(example)
        start = words.index("hubctl")
        assert words[start:start + 3] == ["hubctl", "ingest", name], example
        used = {w.split("=", 1)[0] for w in words if w.startswith("--")}
        assert used <= known, f"{name}: its example uses {sorted(used - known)}"
    result = CliRunner().invoke(cli, ["ingest", name, "--help"])
    assert result.exit_code == 0
    assert adapter.example.splitlines()[0].split(" --")[0].strip() in result.output


@pytest.mark.parametrize("name", sorted(PIPELINES))
def test_every_pipeline_keeps_the_contract(name: str) -> None:
    pipeline = PIPELINES[name]
    assert pipeline.name == name
    assert pipeline.summary and "\n" not in pipeline.summary
    words = shlex.split(pipeline.example)
    assert words[:3] == ["hubctl", "run", name], pipeline.example
    declared = {p.name for p in pipeline.params} | {
        a for p in pipeline.params for a in getattr(p, "aliases", ())}
    used = {re.split(r"[=<>!]", words[i + 1], maxsplit=1)[0]
            for i, w in enumerate(words[:-1]) if w == "--param"}
    assert used <= declared, f"{name}: its example sets {sorted(used - declared)}"
    for param in pipeline.params:
        assert param.help, f"{name}: --param {param.name} has no help text"
    result = CliRunner().invoke(cli, ["pipelines", "--json"])
    assert result.exit_code == 0 and name in result.output


def test_facility_kinds_are_the_point_of_interest_vocabulary() -> None:
    """The places adapter's --kind and the pipelines' kind parameter offer the terms the
    PointOfInterest schema declares for its category, not a list of their own."""
    from hubctl.registry import vocabulary

    kinds = vocabulary("PointOfInterest", "category")
    assert "patrol-point" in kinds and "fire-station" in kinds
    kind = next(p for p in _ingest_command("places").params if p.name == "kind")
    assert tuple(kind.type.choices) == kinds  # type: ignore[attr-defined]
    for name in ("patrol_points", "dispatch_coverage"):
        assert next(p for p in PIPELINES[name].params if p.name == "kind").choices == kinds
