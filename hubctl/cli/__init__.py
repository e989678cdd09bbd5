"""The ``hubctl`` command line. Each command group lives in its own module; errors are turned
into messages and exit codes in one place (:func:`main`)."""

from __future__ import annotations

import atexit
import os
import sys
import threading
from pathlib import Path
from typing import NoReturn

import click

from hubctl import __version__
from hubctl.cli.context import HubContext
from hubctl.cli.output import JSON_WANTED, GuardedStdout, emit_failure
from hubctl.errors import HubError, translate

__all__ = ["OWN_PROCESS", "cli", "leave_quickly", "main", "pyarrow_without_pandas"]

#: True in the ``hubctl`` console script's own process (set by :func:`main`); False when
#: ``cli`` is called by another program (tests' CliRunner), whose pandas use is its own.
OWN_PROCESS = False


class HubCommandError(click.ClickException):
    """A HubError on its way out through click: message, hint and the error's exit code."""

    def __init__(self, error: HubError) -> None:
        super().__init__(error.message)
        self.exit_code = error.exit_code  # type: ignore[misc]
        self.hint = error.hint

    def show(self, file: object = None) -> None:
        """Print ``error: ...`` and the hint to stderr."""
        click.secho(f"error: {self.message}", fg="red", err=True)
        if self.hint:
            click.echo(f"  hint: {self.hint}", err=True)


# Which module holds each top-level command. A command's module is imported only when that
# command runs (``hubctl sql`` does not load the ingest, export or report code); ``--help``
# imports them all. tests/test_cli.py checks this table against the modules' COMMANDS.
COMMAND_MODULES = {
    "init": "admin", "lake": "admin", "demo": "admin",
    "config": "config",
    "export": "export",
    "ingest": "ingest",
    "listen": "listen",
    "entities": "ngsi", "validate": "ngsi",
    "sql": "query", "tables": "query", "rejects": "query", "catalog": "query",
    "report": "report",
    "pipelines": "run", "run": "run",
    "schedule": "schedule",
}


class HubGroup(click.Group):
    """The root group: turns HubErrors (and bugs, unless --debug) into messages, once;
    loads each command's module when the command is asked for (see COMMAND_MODULES)."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        """Every command name, sorted (without importing the commands)."""
        return sorted(set(self.commands) | set(COMMAND_MODULES))

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        """The command ``cmd_name``, importing its module on first use."""
        if cmd_name not in self.commands and cmd_name in COMMAND_MODULES:
            import importlib

            module = importlib.import_module(f"hubctl.cli.{COMMAND_MODULES[cmd_name]}")
            for command in module.COMMANDS:
                self.commands.setdefault(command.name or "", command)
        return self.commands.get(cmd_name)

    def invoke(self, ctx: click.Context) -> object:
        """Run the command; translate errors for people (``--debug`` shows tracebacks)."""
        if "--json" in ctx.args:  # known before the command's options are parsed, so that a
            ctx.meta[JSON_WANTED] = True  # usage error in an option before --json is JSON too
        try:
            result = super().invoke(ctx)
            sys.stdout.flush()  # a full disk behind `> file` says so here (OutputError)
            return result
        except HubError as exc:
            emit_failure(exc, exc.exit_code)  # --json: the failure as JSON on stdout too
            if _debug(ctx):
                raise
            raise HubCommandError(exc) from exc
        except click.ClickException as exc:
            emit_failure(exc, exc.exit_code)
            raise
        except (click.exceptions.Exit, click.exceptions.Abort):
            raise
        except BrokenPipeError:
            raise click.exceptions.Exit(0) from None
        except Exception as exc:  # the machine's problem, or a bug (traceback with --debug)
            error = _translated(ctx, exc)
            emit_failure(error, error.exit_code)
            if _debug(ctx):
                raise
            raise HubCommandError(error) from exc
        except BaseException as exc:
            if type(exc).__name__ != "PanicException":  # a Rust panic in deltalake
                raise
            error = _translated(ctx, exc)
            emit_failure(error, error.exit_code)
            if _debug(ctx):
                raise
            raise HubCommandError(error) from exc


def _translated(ctx: click.Context, exc: BaseException) -> HubError:
    """A machine's or input's problem as a message (see :func:`hubctl.errors.translate`);
    anything else is an internal error to report."""
    obj = ctx.find_object(HubContext)
    lake = None
    try:
        lake = str(obj.config.lake) if obj is not None else None
    except Exception:  # the configuration itself is broken: name no lake
        lake = None
    known = translate(exc, lake)
    if known is not None:
        return known
    return HubError(f"internal error: {type(exc).__name__}: {exc}",
                    hint="rerun with --debug for the traceback and report it")


def _debug(ctx: click.Context) -> bool:
    obj = ctx.find_object(HubContext)
    return bool(obj and obj.debug)


@click.group(cls=HubGroup, context_settings={"help_option_names": ["-h", "--help"],
                                             "max_content_width": 100})
@click.option("--lake", default=None, metavar="PATH|s3://BUCKET/PREFIX",
              help="Lake folder, or a lake on S3 (endpoint and credentials from the AWS_* "
                   "variables) (default: $HUBCTL_LAKE, else hub.toml [lake] path, else ./lake).")
@click.option("--config", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="hub.toml to read (default: ./hub.toml if present).")
@click.option("--debug", is_flag=True, help="Show tracebacks instead of short messages.")
@click.version_option(__version__, prog_name="hubctl")
@click.pass_context
def cli(ctx: click.Context, lake: str | None, config: Path | None, debug: bool) -> None:
    """hubctl: a smart-city data hub on one machine.

    Sources (CSV, JSON, NGSI-LD) are normalised into NGSI-LD entities, checked against the
    JSON Schemas in schemas/, kept in Delta tables under the lake, and queried with DuckDB.

    \b
    Example:
      hubctl init
      hubctl ingest openaq air_quality_long.csv --stations air_quality_stations.csv
      hubctl tables
      hubctl sql "SELECT id, avg(no2) FROM AirQualityObserved GROUP BY id"
    """
    ctx.obj = HubContext(lake_option=lake, config_option=config, debug=debug)
    ctx.call_on_close(ctx.obj.refresh_catalogs)


def main() -> None:
    """Console-script entry point. Without --debug, a Rust panic report (deltalake prints one
    on stderr when, e.g., the disk fills up mid-write) is kept off the terminal: the error it
    leads to is reported as a message. A command that asked for it (:func:`leave_quickly`)
    ends the process without tearing the interpreter down."""
    from hubctl.cli.panics import quiet_rust_panics

    global OWN_PROCESS
    OWN_PROCESS = True
    sys.stdout = GuardedStdout(sys.stdout)  # type: ignore[assignment]
    try:
        with quiet_rust_panics(enabled="--debug" not in sys.argv[1:]):
            cli(prog_name="hubctl")
    except SystemExit as exc:
        if _QUICK_EXIT:
            _exit_now(exc.code)
        raise


_QUICK_EXIT = False


def leave_quickly() -> None:
    """Let the console script end this process as soon as the command is done (see
    :func:`_exit_now`). For commands whose every file is closed when they return (``ingest``:
    its commits are done, its files written with ``with`` blocks or by deltalake); nothing
    changes when ``cli`` runs inside another program (:data:`OWN_PROCESS` is False)."""
    global _QUICK_EXIT
    _QUICK_EXIT = OWN_PROCESS


def _exit_now(code: object) -> NoReturn:
    """Exit with ``code`` (as ``sys.exit`` would) once the exit handlers have run and stdout
    and stderr are flushed, skipping the interpreter's teardown: freeing every module and
    object pyarrow, deltalake and hubctl loaded cost 0.08 s of CPU and wall time at the end
    of every ``hubctl ingest`` (a sixth of a small one), for nothing the process still needs.
    Falls back to a normal exit while another non-daemon thread runs (it would be joined)
    or when a flush fails (a closed pipe: Python reports it as usual)."""
    if any(t is not threading.main_thread() and t.is_alive() and not t.daemon
           for t in threading.enumerate()):
        raise SystemExit(code)
    atexit._run_exitfuncs()  # what a normal exit runs first: temp folders, Spark, logging
    try:
        sys.stdout.flush()
        sys.stderr.flush()
    except (OSError, ValueError):
        raise SystemExit(code) from None
    if code is None or isinstance(code, int):
        os._exit(code or 0)
    print(code, file=sys.stderr, flush=True)  # sys.exit("message"): the message, status 1
    os._exit(1)


class _NoPandas:
    """A meta-path finder for which pandas is not installed."""

    def find_spec(self, name: str, path: object = None, target: object = None) -> None:
        """Refuse pandas and its submodules; leave every other import alone."""
        if name == "pandas" or name.startswith("pandas."):
            raise ModuleNotFoundError(f"{name} is not imported by hubctl", name=name)


def pyarrow_without_pandas() -> None:
    """In hubctl's own process, answer pyarrow's lazy pandas checks with "not installed"
    before they import pandas (0.3-0.5 s of CPU, a third of a small ingest).

    pyarrow imports pandas, when it is installed, on the first ``pa.array``, ``pa.scalar``
    or ``Table.from_pylist`` of Python or numpy values (to ask whether they are pandas
    objects; passing a type does not avoid it), and its C++ converter again on the first
    untyped one. hubctl never hands pyarrow pandas objects and does not depend on pandas (a
    dev dependency), so both checks are made once here while pandas cannot be imported: the
    process then behaves as an install without pandas. An explicit ``import pandas`` and
    ``to_pandas()`` still work afterwards. Does nothing when pandas is already loaded or
    ``cli`` runs inside another program (:data:`OWN_PROCESS` is False)."""
    if not OWN_PROCESS or "pandas" in sys.modules:
        return
    import pyarrow as pa

    refuse = _NoPandas()
    sys.meta_path.insert(0, refuse)
    try:
        pa.array([], pa.int8())  # the Cython check (pyarrow's _PandasAPIShim)
        pa.array([None])  # the C++ converter's pandas constants (inferred type)
    finally:
        sys.meta_path.remove(refuse)
