"""`csbridge status`'s watcher in this process against the session's mosquitto: retained reports
shown as text and as live tables, bad ones warned about, an unreachable broker named."""

from __future__ import annotations

import aiomqtt
import orjson

from csbridge.mqtt.embedded_broker import free_port
from csbridge.testing.brokers import Broker
from csbridge.tools.status_view import watch_status
from tests.support import dc_report, line_of, text_console

DC = "DE*CSB*E0001"
AC = "DE*CSB*E0002"


async def test_an_unreachable_broker_returns_one_and_says_why() -> None:
    console, buffer = text_console()
    url = f"mqtt://127.0.0.1:{free_port()}"
    assert await watch_status(url, duration_s=2, console=console) == 1
    assert f"could not connect to broker {url}" in buffer.getvalue()


async def test_plain_watch_shows_retained_reports_and_warns_about_bad_ones(
    prefix: str, broker: Broker, raw_client: aiomqtt.Client
) -> None:
    report = dc_report(("m1", "m2"))
    status_topic = f"{prefix}/status"
    published = [
        (status_topic, b"online"),
        (f"{prefix}/{DC}/limits", orjson.dumps(report)),
        (f"{prefix}/{AC}/limits", b"{not json"),
    ]
    for topic, payload in published:
        await raw_client.publish(topic, payload, qos=1, retain=True)
    console, buffer = text_console()
    try:
        code = await watch_status(
            broker.url,
            prefix=prefix,
            status_topic=status_topic,
            duration_s=1.5,
            console=console,
        )
    finally:
        for topic, _ in published:
            await raw_client.publish(topic, b"", qos=1, retain=True)
    text = buffer.getvalue()
    assert code == 0, text
    assert f"-- bridge online ({status_topic})" in text
    assert f"{DC}  evse_ready  isolation valid" in text
    assert line_of(text, "max_current ").endswith("bound by module_dropout")
    assert f"warning: {prefix}/{AC}/limits: ignored: not JSON" in text


async def test_live_watch_on_a_terminal_draws_the_tables(
    prefix: str, broker: Broker, raw_client: aiomqtt.Client
) -> None:
    topic = f"{prefix}/{DC}/limits"
    await raw_client.publish(topic, orjson.dumps(dc_report(("m1", "m2"))), qos=1, retain=True)
    console, buffer = text_console(terminal=True)
    try:
        code = await watch_status(broker.url, prefix=prefix, duration_s=1.0, console=console)
    finally:
        await raw_client.publish(topic, b"", qos=1, retain=True)
    text = buffer.getvalue()
    assert code == 0, text
    assert "limits (as told to Josev)" in text
    assert "module_dropout" in text
    assert "bridge unknown" in text
