"""The `csbridge` command."""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import Iterable, Sequence
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import orjson
import typer
from rich.console import Console

from csbridge.config import Config, ConfigError
from csbridge.tools.cli_text import installed_version, usage_error_line
from csbridge.tools.launcher import EXIT_BAD_CONFIG, load_settings, refuse, serve

if TYPE_CHECKING:
    from csbridge.mqtt import BrokerLogin

app = typer.Typer(
    help="The charging-station side of Josev's MQTT API.",
    # Help as plain text: a help text naming a TOML table ([station]) or an extra ([plot])
    # keeps its brackets, which rich markup would take for tags.
    rich_markup_mode=None,
    # A failure is one line of ours (main below), never typer's framed traceback.
    pretty_exceptions_enable=False,
)
out = Console(highlight=False, soft_wrap=True)
err = Console(stderr=True, highlight=False, soft_wrap=True)

EXIT_INVALID = 1
"""What was checked failed: an invalid message, a problem the emulator found, a lost broker."""
PROG_NAME = "csbridge"


def _print_version(asked: bool) -> None:
    if asked:
        out.print(f"{PROG_NAME} {installed_version()}", markup=False)
        raise typer.Exit(0)


@app.callback(invoke_without_command=True)
def _options(
    context: typer.Context,
    version: Annotated[
        bool,
        typer.Option(
            "--version",
            is_eager=True,
            callback=_print_version,
            help="Print the installed version and exit.",
        ),
    ] = False,
) -> None:
    """The charging-station side of Josev's MQTT API."""
    if context.invoked_subcommand is None:  # a bare `csbridge`: what it can do
        out.print(context.get_help(), markup=False, highlight=False)


ConfigOption = Annotated[
    Path, typer.Option("--config", "-c", help="Station configuration (TOML).", show_default=False)
]
UsernameOption = Annotated[
    str | None,
    typer.Option(help="Broker user (the password: --password-file or $CSBRIDGE_MQTT_PASSWORD)."),
]
PasswordFileOption = Annotated[
    Path | None, typer.Option(help="File holding the broker password.", show_default=False)
]
CaFileOption = Annotated[
    Path | None, typer.Option(help="CA of the broker's certificate (mqtts://).", show_default=False)
]
CertFileOption = Annotated[
    Path | None, typer.Option(help="Client certificate (PEM), with --key-file.", show_default=False)
]
KeyFileOption = Annotated[Path | None, typer.Option(help="Client key (PEM).", show_default=False)]
HalDirOption = Annotated[
    list[Path] | None,
    typer.Option(
        "--hal-dir",
        help="A folder of device profiles, searched after [station] profile_dirs and before "
        "$CSBRIDGE_HAL_PATH and the shipped ones (repeatable).",
        show_default=False,
    ),
]


def _positive_seconds(value: float | None) -> float | None:
    """A duration or a timeout: more than 0 (nan is not)."""
    if value is not None and not value > 0:
        raise typer.BadParameter(f"{value:g} s: must be more than 0")
    return value


DurationOption = Annotated[
    float | None,
    typer.Option(
        help="Stop after this many seconds, more than 0 (default: until Ctrl-C).",
        callback=_positive_seconds,
    ),
]
BrokerOption = Annotated[
    str | None, typer.Option("--broker", help="Override the broker, e.g. mqtt://127.0.0.1:1883.")
]


def _login(
    broker: str,
    username: str | None,
    password_file: Path | None,
    ca_file: Path | None,
    cert_file: Path | None,
    key_file: Path | None,
) -> BrokerLogin:
    from csbridge.config import broker_address  # noqa: PLC0415
    from csbridge.mqtt import BrokerLogin  # noqa: PLC0415

    try:
        broker_address(broker)
    except ValueError as error:
        err.print(f"--broker: {error}", markup=False)
        raise typer.Exit(EXIT_BAD_CONFIG) from None
    try:
        return BrokerLogin.for_broker(
            broker,
            username=username,
            password_file=password_file,
            ca_file=ca_file,
            cert_file=cert_file,
            key_file=key_file,
        )
    except ConfigError as error:
        refuse(error)


@app.command()
def run(
    config: ConfigOption,
    broker: BrokerOption = None,
    replay: Annotated[
        list[Path] | None,
        typer.Option(help="Feed these CAN logs in real time instead of opening the buses."),
    ] = None,
    hal_dir: HalDirOption = None,
) -> None:
    """Answer Josev and push every change, until SIGTERM or Ctrl-C (then: modules off, every
    EVSE to evse_shutdown, status offline, exit 0). Under systemd: READY=1 and the watchdog."""
    serve(load_settings(config, broker, hal_dir or ()), replay or ())


@app.command("check-config")
def check_config(
    path: Annotated[Path, typer.Argument(help="Configuration file to check.")],
    hal_dir: HalDirOption = None,
    json_output: Annotated[
        bool,
        typer.Option(
            "--json",
            help="One JSON object on stdout: ok, problems, warnings (the exit code as without).",
        ),
    ] = False,
    dump: Annotated[
        bool,
        typer.Option(
            "--dump",
            help="Print the effective configuration, every default filled in and every secret "
            "removed, as TOML (with --json: under `effective`).",
        ),
    ] = False,
) -> None:
    """Check a configuration file and the device profiles it names; exit 2 with every problem
    named by key."""
    try:
        settings, found_warnings = checked_config(path, hal_dir or ())
    except ConfigError as error:
        if json_output:
            write_json(check_report(path, error=error))
            raise typer.Exit(EXIT_BAD_CONFIG) from None
        refuse(error)
    warnings = [*config_warnings(settings), *found_warnings]
    if json_output:
        write_json(check_report(path, settings, warnings=warnings, effective=dump))
        return
    if dump:
        from csbridge.config import redacted_config  # noqa: PLC0415
        from csbridge.tools.toml_text import toml_document  # noqa: PLC0415

        sys.stdout.write(f"# {path}: the effective configuration, secrets removed\n")
        sys.stdout.write(toml_document(redacted_config(settings)))
    else:
        out.print(f"{path}: ok, broker {settings.mqtt.broker}", markup=False)
        for evse in settings.evse:
            kind = f"{evse.kind.value}{' + bpt' if evse.bpt else ''}"
            connectors = ", ".join(f"{c.id}:{c.connector_type}" for c in evse.connectors)
            out.print(
                f"  {evse.evse_id}: {kind}, {evse.network_interface}, connectors {connectors}",
                markup=False,
            )
    for warning in warnings:
        err.print(f"warning: {warning}", markup=False)


def checked_config(path: Path, hal_dirs: Sequence[Path] = ()) -> tuple[Config, list[str]]:
    """The configuration with everything `run` would refuse at start-up checked: the file,
    the device profiles (searched as `run` searches them) and buses, simulated devices, the
    meters, the pools' boards, the broker password file. ConfigError names every problem;
    returned with it, the warnings of the buses and the pools' boards found on the way."""
    from csbridge.config import load_config, read_password  # noqa: PLC0415
    from csbridge.sources.can import DeviceRouter, bus_warnings, with_search_path  # noqa: PLC0415
    from csbridge.sources.simulated import wire_simulation_problems  # noqa: PLC0415

    settings = with_search_path(load_config(path), hal_dirs)
    try:
        router = DeviceRouter(settings)
    except ConfigError as error:
        raise ConfigError(str(path), error.problems) from None
    simulated = wire_simulation_problems(settings, router.registry)
    if simulated:
        raise ConfigError(str(path), simulated)
    if any(evse.meter is not None for evse in settings.evse):
        from csbridge.sources.meters import meter_problems  # noqa: PLC0415

        problems = meter_problems(settings)
        if problems:
            raise ConfigError(str(path), problems)
    warnings = bus_warnings(settings, router)
    if settings.pool:
        from csbridge.power import pool_problems  # noqa: PLC0415

        problems = pool_problems(settings, path.parent)
        if problems:
            raise ConfigError(str(path), problems)
    # As `run` does before anything else: a password file it cannot read is refused, naming
    # the key and the file; the password itself goes nowhere.
    read_password(settings.mqtt)
    return settings, warnings


def check_report(
    path: Path,
    settings: Config | None = None,
    *,
    error: ConfigError | None = None,
    warnings: Sequence[str] = (),
    effective: bool = False,
) -> dict[str, Any]:
    """`check-config --json`: the verdict, every problem as `config error` would print it
    (without those words), every warning; for a configuration that passed, its EVSEs."""
    problems = [] if error is None else [f"{error.source}: {problem}" for problem in error.problems]
    report: dict[str, Any] = {
        "config": str(path),
        "ok": error is None,
        "problems": problems,
        "warnings": list(warnings),
    }
    if settings is not None:
        report["broker"] = settings.mqtt.broker
        report["evses"] = [
            {
                "evse_id": evse.evse_id,
                "kind": evse.kind.value,
                "bpt": evse.bpt,
                "network_interface": evse.network_interface,
                "connectors": [
                    {"id": c.id, "connector_type": str(c.connector_type)} for c in evse.connectors
                ],
            }
            for evse in settings.evse
        ]
        if effective:
            from csbridge.config import redacted_config  # noqa: PLC0415

            report["effective"] = redacted_config(settings)
    return report


def write_json(document: Any) -> None:
    """One JSON object on one line of stdout, flushed (a pipe reads it at once)."""
    sys.stdout.write(orjson.dumps(document).decode() + "\n")
    sys.stdout.flush()


@app.command("check-profile")
def check_profile(
    path: Annotated[Path, typer.Argument(help="Device profile (TOML) to check.")],
    json_output: Annotated[
        bool, typer.Option("--json", help="One JSON object on stdout instead of lines.")
    ] = False,
) -> None:
    """Check one device profile alone: its schema, its DBC, and every message and command
    built and decoded back. Exit 0 ok, 1 a frame would be misread, 2 the profile cannot be
    used; every problem named by key."""
    from csbridge.tools.check_profile import check_profile_file  # noqa: PLC0415

    report = check_profile_file(path)
    if json_output:
        sys.stdout.write(orjson.dumps(report.as_json()).decode() + "\n")
    else:
        for problem in report.problems:
            err.print(f"profile error {path}: {problem.line()}", markup=False)
        if not report.problems:
            out.print(report.summary(), markup=False)
    raise typer.Exit(report.exit_code)


def config_warnings(settings: Config) -> list[str]:
    """What check-config warns of: a configuration that loads but will not do what was likely
    meant."""
    warnings = []
    if settings.station.identity is None:
        warnings.append("no [station.identity]: Josev's device_model (OCPP) will not be answered")
        if "ocpp" in settings.station.josev_services.ask:
            # No identity: no OCPP set up, as with Josev Community, which has no OCPP service.
            warnings.append(
                "[station.josev_services] ask includes ocpp, but without an identity there is "
                "likely no OCPP (Josev Community has none): it will show as unknown; leave "
                "ocpp out of ask"
            )
    from csbridge.sources.can import profile_warnings  # noqa: PLC0415

    return warnings + profile_warnings(settings)


@app.command()
def init(
    profiles: Annotated[
        list[str],
        typer.Argument(
            help="Device profiles, e.g. huawei-r4850 bender-iso165c generic-charger-board.",
            show_default=False,
        ),
    ],
    output: Annotated[Path, typer.Option("--output", "-o", help="Where to write it.")] = Path(
        "station.toml"
    ),
    force: Annotated[bool, typer.Option("--force", help="Overwrite an existing file.")] = False,
) -> None:
    """Write a commented starter configuration for the device profiles named; it passes
    check-config as written (placeholders marked CHANGE ME). Exit 2 on an unknown profile or
    an existing file (without --force)."""
    from csbridge.tools.init_command import starter_config, write_starter  # noqa: PLC0415

    try:
        text = starter_config(profiles, installed_version())
    except ConfigError as error:
        refuse(error)
    try:
        write_starter(output, text, force=force)
    except FileExistsError:
        refuse(ConfigError(str(output), ["exists; --force overwrites it"]), kind="init")
    except OSError as error:
        refuse(ConfigError(str(output), [f"cannot write: {error}"]), kind="init")
    out.print(f"wrote {output}: check it with csbridge check-config {output}", markup=False)


@app.command()
def validate(
    sources: Annotated[
        list[str],
        typer.Argument(help="Messages as JSON files (one message each), or - for stdin."),
    ],
    lines: Annotated[
        bool,
        typer.Option("--lines", help="Each file holds JSON lines: one message per line."),
    ] = False,
) -> None:
    """Check messages against the envelope and their own schemas: one line per message,
    `valid: FILE:LINE: name/type` on stdout or `invalid: FILE:LINE: what, where, why` on
    stderr; exit 1 when any message is invalid or a file cannot be read."""
    from csbridge.messages import SchemaRegistry  # noqa: PLC0415
    from csbridge.tools.validate_command import (  # noqa: PLC0415
        STDIN,
        Verdict,
        display_name,
        json_lines,
        whole_file,
    )

    registry = SchemaRegistry()
    failed = False
    for source in sources:
        name = display_name(source)
        try:
            raw = sys.stdin.buffer.read() if source == STDIN else Path(source).read_bytes()
        except OSError as error:
            verdicts: Iterable[Verdict] = [Verdict(name, False, f"cannot read: {error}")]
        else:
            verdicts = (
                json_lines(registry, name, raw) if lines else [whole_file(registry, name, raw)]
            )
        for verdict in verdicts:
            failed = failed or not verdict.valid
            (out if verdict.valid else err).print(verdict.line(), markup=False, highlight=False)
    if failed:
        raise typer.Exit(EXIT_INVALID)


@app.command()
def demo(duration: DurationOption = None) -> None:
    """Embedded broker, the bridge on a simulated station and a Josev emulator: no setup."""
    from csbridge.support import configure_logging  # noqa: PLC0415
    from csbridge.tools.demo import run_demo  # noqa: PLC0415

    configure_logging("error")
    try:
        code = asyncio.run(run_demo(duration, out))
    except KeyboardInterrupt:
        code = 0
    raise typer.Exit(code)


@app.command()
def emulate(
    broker: Annotated[str, typer.Option(help="Broker URL, e.g. mqtt://127.0.0.1:1883.")],
    duration: DurationOption = None,
    timeout: Annotated[
        float,
        typer.Option(
            help="Seconds to wait for each response, more than 0.", callback=_positive_seconds
        ),
    ] = 10.0,
    request_topic: Annotated[str, typer.Option(help="Where Josev publishes.")] = "josev/cs",
    response_topic: Annotated[str, typer.Option(help="Where the station answers.")] = "cs/josev",
    scenario: Annotated[
        str | None,
        typer.Option(
            help="Against a simulated station: dc-session (a whole DC session), ac-session (a "
            "whole AC session), misuse (out-of-sequence requests, each must be refused), "
            "bpt-session (charge, through zero, discharge, signed meter values), shared-pool (two "
            "EVs on one module pool: examples/shared-pool.toml)."
        ),
    ] = None,
    local_prefix: Annotated[str, typer.Option(help="The station's own topics.")] = "csbridge",
    username: UsernameOption = None,
    password_file: PasswordFileOption = None,
    ca_file: CaFileOption = None,
    cert_file: CertFileOption = None,
    key_file: KeyFileOption = None,
    json_output: Annotated[
        bool,
        typer.Option(
            "--json",
            help="JSON on stdout: a scenario's steps and result as one object; without "
            "--scenario each exchange as an object, then the result.",
        ),
    ] = False,
) -> None:
    """Act as Josev: boot requests, check every answer and update; exit 1 on any problem."""
    from csbridge.tools.emulate_command import (  # noqa: PLC0415
        SCENARIOS,
        emulate_session,
        run_scenario,
    )

    if scenario is not None and scenario not in SCENARIOS:
        err.print(f"--scenario: unknown scenario {scenario!r} (have: {', '.join(SCENARIOS)})")
        raise typer.Exit(EXIT_BAD_CONFIG)
    login = _login(broker, username, password_file, ca_file, cert_file, key_file)
    try:
        if scenario is not None:
            code = asyncio.run(
                run_scenario(
                    scenario,
                    broker,
                    out,
                    request_topic=request_topic,
                    response_topic=response_topic,
                    local_prefix=local_prefix,
                    login=login,
                    write_json=write_json if json_output else None,
                    errors=err,
                )
            )
            raise typer.Exit(code)
        code = asyncio.run(
            emulate_session(
                broker,
                duration_s=duration,
                timeout_s=timeout,
                request_topic=request_topic,
                response_topic=response_topic,
                console=out,
                login=login,
                write_json=write_json if json_output else None,
                errors=err,
            )
        )
    except KeyboardInterrupt:
        code = 0
    raise typer.Exit(code)


@app.command()
def status(
    broker: Annotated[str, typer.Option(help="Broker URL, e.g. mqtt://127.0.0.1:1883.")],
    prefix: Annotated[
        str, typer.Option(help="The bridge's topic prefix (mqtt.local_prefix).")
    ] = "csbridge",
    status_topic: Annotated[
        str, typer.Option(help="The bridge's online/offline topic (mqtt.status_topic).")
    ] = "csbridge/status",
    duration: Annotated[
        float | None, typer.Option(help="Stop after this many seconds (default: until Ctrl-C).")
    ] = None,
    username: UsernameOption = None,
    password_file: PasswordFileOption = None,
    ca_file: CaFileOption = None,
    cert_file: CertFileOption = None,
    key_file: KeyFileOption = None,
    json_output: Annotated[
        bool,
        typer.Option(
            "--json",
            help="JSON on stdout: the retained reports as one object, then exit; with --watch "
            "or --duration one object per change instead.",
        ),
    ] = False,
    watch: Annotated[
        bool, typer.Option("--watch", help="With --json: one object per change until Ctrl-C.")
    ] = False,
) -> None:
    """Watch the bridge's retained reports: each limit, what binds it, each source's health."""
    from csbridge.tools.status_view import argument_problems, watch_status  # noqa: PLC0415

    problems = argument_problems(broker, prefix, status_topic, duration)
    for problem in problems:
        err.print(problem, markup=False)
    if problems:
        raise typer.Exit(EXIT_BAD_CONFIG)
    login = _login(broker, username, password_file, ca_file, cert_file, key_file)
    watching = watch or duration is not None
    try:
        code = asyncio.run(
            watch_status(
                broker,
                prefix=prefix,
                status_topic=status_topic,
                duration_s=duration,
                console=out,
                login=login,
                json_mode=None if not json_output else "changes" if watching else "once",
                write_json=write_json,
                errors=err,
            )
        )
    except KeyboardInterrupt:
        code = 0
    raise typer.Exit(code)


@app.command()
def replay(
    config: ConfigOption,
    logs: Annotated[
        list[str],
        typer.Argument(
            help="CAN logs: candump (.log), .asc, .blf, .trc, .csv, .mf4 (with python-can's mf4 "
            "extra); - reads candump lines from stdin.",
            show_default=False,
            metavar="LOG",
        ),
    ],
    only_josev: Annotated[
        bool, typer.Option("--only-josev", help="Print only what goes to Josev.")
    ] = False,
    plot: Annotated[
        Path | None,
        typer.Option(help="Also draw limits, present values and isolation over time (PNG)."),
    ] = None,
    hal_dir: HalDirOption = None,
    bus_map: Annotated[
        list[str] | None,
        typer.Option(
            "--bus-map",
            help="LOGNAME=BUS: the log's bus under the configured name (repeatable).",
            metavar="LOGNAME=BUS",
        ),
    ] = None,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print only the summary, as one JSON object.")
    ] = False,
    strict: Annotated[
        bool,
        typer.Option(
            "--strict",
            help="Exit 1 if a configured device was never seen, a bus is not configured or a "
            "line was not read.",
        ),
    ] = False,
) -> None:
    """Feed CAN logs through the profiles and the limits engine on the log's clock; print every
    message the bridge would publish as a JSON line, then a summary on stderr."""
    from csbridge.tools.replay_command import ReplayOptions, run_replay  # noqa: PLC0415

    settings = load_settings(config, None, hal_dir or ())
    options = ReplayOptions(logs, bus_map or (), only_josev, plot, as_json, strict)
    code = run_replay(
        settings,
        options,
        config_name=str(config),
        stdout=sys.stdout,
        complain=lambda line: err.print(line, markup=False, emoji=False),
    )
    raise typer.Exit(code)


@app.command("collect-logs")
def collect_logs(
    config: Annotated[
        Path | None, typer.Option("--config", "-c", help="Station configuration.")
    ] = None,
    snapshot: Annotated[
        Path | None, typer.Option(help="The running station's snapshot (it passes one).")
    ] = None,
    remote_location: Annotated[
        str | None, typer.Option(help="Upload here: http(s):// (PUT or POST) or ftp(s)://.")
    ] = None,
    output: Annotated[
        Path | None, typer.Option(help="Without --remote-location: the archive's path.")
    ] = None,
    request_id: Annotated[
        int | None, typer.Option(help="Josev's request id (for the manifest).")
    ] = None,
    log_type: Annotated[
        str, typer.Option(help="diagnostics_log or security_log.")
    ] = "diagnostics_log",
    retries: Annotated[float, typer.Option(help="Upload attempts after the first.")] = 0,
    retry_interval: Annotated[float, typer.Option(help="Seconds between attempts.")] = 30.0,
    oldest_timestamp: Annotated[
        str | None, typer.Option(help="Journal from (UTC without an offset).")
    ] = None,
    latest_timestamp: Annotated[str | None, typer.Option(help="Journal until.")] = None,
    filename: Annotated[str | None, typer.Option(help="The archive's name where it lands.")] = None,
    http_method: Annotated[str, typer.Option(help="PUT or POST.")] = "PUT",
) -> None:
    """Journal or log file, configuration without secrets, versions and the last limits reports
    in one .tar.gz; uploaded (printing uploading, then uploaded or upload_failure) or written."""
    from csbridge.tools.collect_logs import run_collect_logs  # noqa: PLC0415

    raise typer.Exit(
        run_collect_logs(
            config=config,
            snapshot=snapshot,
            remote_location=remote_location,
            output=output,
            request_id=request_id,
            log_type=log_type,
            retries=retries,
            retry_interval=retry_interval,
            oldest_timestamp=oldest_timestamp,
            latest_timestamp=latest_timestamp,
            filename=filename,
            http_method=http_method,
            complain=lambda line: err.print(line, markup=False),
        )
    )


class CompletionShell(StrEnum):
    bash = "bash"
    zsh = "zsh"
    fish = "fish"


@app.command()
def completion(
    shell: Annotated[CompletionShell, typer.Argument(help="The shell to complete in.")],
) -> None:
    """Print the shell completion script for SHELL, e.g. `csbridge completion bash >
    ~/.local/share/bash-completion/completions/csbridge`. Unlike --show-completion, which
    guesses the shell from the parent processes (and fails where there is none, as in a
    script or a container's exec), the shell is named."""
    # typer's --show-completion uses this very function; it is not re-exported publicly, and
    # test_completion_prints_a_bash_script_that_completes_commands notices if it moves.
    from typer._completion_shared import get_completion_script  # noqa: PLC0415

    script = get_completion_script(
        prog_name=PROG_NAME, complete_var=f"_{PROG_NAME.upper()}_COMPLETE", shell=shell.value
    )
    sys.stdout.write(script + "\n")  # as is: rich would expand its tabs


def main(arguments: Sequence[str] | None = None) -> None:
    """The command line, every failure one line on stderr: a usage error (an unknown option, a
    value of the wrong type or out of range) `usage error: <command>: <why>`, exit 2."""
    try:
        code = app(args=arguments, prog_name=PROG_NAME, standalone_mode=False)
    except typer.TyperException as error:
        err.print(usage_error_line(error), markup=False)
        raise SystemExit(error.exit_code) from None
    except BrokenPipeError:
        # The reader went away (`csbridge validate --lines big.jsonl | head`): nothing to say,
        # and nothing left to flush into the closed pipe at exit.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        raise SystemExit(EXIT_INVALID) from None
    raise SystemExit(code if isinstance(code, int) else 0)
