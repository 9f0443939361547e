"""The `csbridge` command."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import orjson
import typer
from rich.console import Console

from csbridge.config import Config, ConfigError
from csbridge.tools.launcher import EXIT_BAD_CONFIG, load_settings, refuse, serve

if TYPE_CHECKING:
    from csbridge.mqtt import BrokerLogin

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    help="The charging-station side of Josev's MQTT API.",
)
out = Console(highlight=False, soft_wrap=True)
err = Console(stderr=True, highlight=False, soft_wrap=True)

EXIT_INVALID = 1


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
) -> None:
    """Answer Josev and push every change, until SIGTERM or Ctrl-C (then: modules off, every
    EVSE to evse_shutdown, status offline, exit 0). Under systemd: READY=1 and the watchdog."""
    serve(load_settings(config, broker), replay or ())


@app.command("check-config")
def check_config(
    path: Annotated[Path, typer.Argument(help="Configuration file to check.")],
) -> None:
    """Check a configuration file and the device profiles it names; exit 2 with every problem
    named by key."""
    from csbridge.sources.can import DeviceRouter, bus_warnings  # noqa: PLC0415

    settings = load_settings(path, None)
    try:
        router = DeviceRouter(settings)
    except ConfigError as error:
        refuse(error, path)
    if any(evse.meter is not None for evse in settings.evse):
        from csbridge.sources.meters import meter_problems  # noqa: PLC0415

        problems = meter_problems(settings)
        if problems:
            refuse(ConfigError(str(path), problems), path)
    out.print(f"{path}: ok, broker {settings.mqtt.broker}")
    for evse in settings.evse:
        kind = f"{evse.kind.value}{' + bpt' if evse.bpt else ''}"
        connectors = ", ".join(f"{c.id}:{c.connector_type}" for c in evse.connectors)
        out.print(f"  {evse.evse_id}: {kind}, {evse.network_interface}, connectors {connectors}")
    for warning in [*config_warnings(settings), *bus_warnings(settings, router)]:
        err.print(f"warning: {warning}", markup=False)


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
    return warnings


@app.command()
def validate(
    source: Annotated[str, typer.Argument(help="A message as a JSON file, or - for stdin.")],
) -> None:
    """Check one message against the envelope and its own schema; exit 1 with what, where, why."""
    from csbridge.messages import (  # noqa: PLC0415
        InboundRejected,
        SchemaRegistry,
        check_document,
    )

    raw = sys.stdin.buffer.read() if source == "-" else _read_bytes(source)
    try:
        document: Any = orjson.loads(raw)
    except orjson.JSONDecodeError as error:
        err.print(f"invalid: {source}: not JSON: {error}")
        raise typer.Exit(EXIT_INVALID) from None
    if not isinstance(document, dict):
        err.print(f"invalid: {source}: a message is a JSON object, got {type(document).__name__}")
        raise typer.Exit(EXIT_INVALID)
    try:
        check_document(SchemaRegistry(), document)
    except InboundRejected as rejected:
        err.print(
            f"invalid: {source}: message={rejected.message} where={rejected.where} "
            f"why={rejected.why}"
        )
        raise typer.Exit(EXIT_INVALID) from None
    out.print(f"valid: {source}: {document['name']}/{document['type']}")


def _read_bytes(path: str) -> bytes:
    try:
        return Path(path).read_bytes()
    except OSError as error:
        err.print(f"invalid: {path}: cannot read: {error}")
        raise typer.Exit(EXIT_INVALID) from None


@app.command()
def demo(
    duration: Annotated[
        float | None, typer.Option(help="Stop after this many seconds (default: until Ctrl-C).")
    ] = None,
) -> None:
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
    duration: Annotated[
        float | None, typer.Option(help="Stop after this many seconds (default: until Ctrl-C).")
    ] = None,
    timeout: Annotated[float, typer.Option(help="Seconds to wait for each response.")] = 10.0,
    request_topic: Annotated[str, typer.Option(help="Where Josev publishes.")] = "josev/cs",
    response_topic: Annotated[str, typer.Option(help="Where the station answers.")] = "cs/josev",
    scenario: Annotated[
        str | None,
        typer.Option(
            help="Against a simulated station: dc-session (a whole DC session), ac-session (a "
            "whole AC session), misuse (out-of-sequence requests, each must be refused), "
            "bpt-session (charge, through zero, discharge, signed meter values)."
        ),
    ] = None,
    local_prefix: Annotated[str, typer.Option(help="The station's own topics.")] = "csbridge",
    username: UsernameOption = None,
    password_file: PasswordFileOption = None,
    ca_file: CaFileOption = None,
    cert_file: CertFileOption = None,
    key_file: KeyFileOption = None,
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
) -> None:
    """Watch the bridge's retained reports: each limit, what binds it, each source's health."""
    from csbridge.tools.status_view import argument_problems, watch_status  # noqa: PLC0415

    problems = argument_problems(broker, prefix, status_topic, duration)
    for problem in problems:
        err.print(problem, markup=False)
    if problems:
        raise typer.Exit(EXIT_BAD_CONFIG)
    login = _login(broker, username, password_file, ca_file, cert_file, key_file)
    try:
        code = asyncio.run(
            watch_status(
                broker,
                prefix=prefix,
                status_topic=status_topic,
                duration_s=duration,
                console=out,
                login=login,
            )
        )
    except KeyboardInterrupt:
        code = 0
    raise typer.Exit(code)


@app.command()
def replay(
    config: ConfigOption,
    logs: Annotated[
        list[Path], typer.Argument(help="candump -L (.log) or Vector ASC (.asc) logs.")
    ],
    only_josev: Annotated[
        bool, typer.Option("--only-josev", help="Print only what goes to Josev.")
    ] = False,
    plot: Annotated[
        Path | None,
        typer.Option(help="Also draw limits, present values and isolation over time (PNG)."),
    ] = None,
) -> None:
    """Feed CAN logs through the profiles and the limits engine on the log's clock; print every
    message the bridge would publish as a JSON line, then a summary on stderr."""
    from csbridge.sources.can import LogError  # noqa: PLC0415
    from csbridge.tools.replay import ReplayRun, summary, write_lines  # noqa: PLC0415

    settings = load_settings(config, None)
    try:
        run = ReplayRun(settings)
        publications = run.publications(logs)
    except ConfigError as error:
        refuse(error, config)
    except LogError as error:
        refuse(ConfigError(str(config), [str(error)]), kind="log")
    only = settings.mqtt.response_topic if only_josev else None
    written = write_lines(publications, sys.stdout, only_topic=only)
    for line in [*summary(run), f"published: {written} messages"]:
        err.print(line)
    if plot is not None:
        from csbridge.tools.plot import PlotUnavailableError, plot_publications  # noqa: PLC0415

        try:
            plot_publications(publications, settings.mqtt.response_topic, plot)
        except PlotUnavailableError:
            err.print("--plot needs the plot extra: pip install 'csbridge[plot]'")
            raise typer.Exit(EXIT_BAD_CONFIG) from None
        err.print(f"plot: {plot}")


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


def main() -> None:
    app()
