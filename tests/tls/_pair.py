"""In-memory client/server pairs: both engines, bytes shuttled by hand."""

from __future__ import annotations

from fata.tls import ConnectionClosed, Event, TLSClient, TLSServer


def pump(client: TLSClient, server: TLSServer, rounds: int = 20) -> tuple[list[Event], list[Event]]:
    """Exchange bytes until both sides are quiet; return (client events, server events)."""
    cev: list[Event] = []
    sev: list[Event] = []
    for _ in range(rounds):
        a = client.data_to_send()
        if a:
            sev += server.receive_data(a)
        b = server.data_to_send()
        if b:
            cev += client.receive_data(b)
        if not a and not b:
            break
    return cev, sev


def closed_alert(events: list[Event]):
    for ev in events:
        if isinstance(ev, ConnectionClosed):
            return ev.alert
    return "open"
