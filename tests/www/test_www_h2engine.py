"""The HTTP/2 engine on byte streams and a virtual clock: the ``h2`` package's client as the
well-behaved peer (every file, encodings, conditionals, ranges, multiplexing, flow control,
HEAD, limits), and raw frames for what no well-behaved client sends (streams beyond the
advertised limit, rapid reset, CONTINUATION, SETTINGS and PING floods, a bad preface,
timeouts); hypothesis feeds garbage frames and bytes."""

from __future__ import annotations

import gzip
import urllib.parse

import h2.config
import h2.connection
import h2.events
import h2.settings
import hpack
import pytest
from fata_www.h2engine import MAX_STREAMS, PREFACE, H2Connection, is_preface
from hyperframe.frame import (
    ContinuationFrame,
    DataFrame,
    Frame,
    GoAwayFrame,
    HeadersFrame,
    PingFrame,
    RstStreamFrame,
    SettingsFrame,
    WindowUpdateFrame,
)
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from wwwtest_util import SAMPLE_FILES, make_server, sha256, url_path

NOW, WALL = 1.0, 1_700_000_100.0
ENHANCE_YOUR_CALM, REFUSED_STREAM, NO_ERROR = 0xB, 0x7, 0x0


def parse_frames(data: bytes) -> list[Frame]:
    """The server's output as frames (strictly: every byte belongs to a whole frame)."""
    frames, pos = [], 0
    while pos < len(data):
        frame, length = Frame.parse_frame_header(memoryview(data[pos:pos + 9]))
        frame.parse_body(memoryview(data[pos + 9:pos + 9 + length]))
        assert pos + 9 + length <= len(data), "truncated frame"
        frames.append(frame)
        pos += 9 + length
    return frames


class Client:
    """``h2``'s client on one side, the engine on the other, bytes moved by hand."""

    def __init__(self, server=None, window: int | None = None, **limits) -> None:
        self.server = server or make_server(**limits)
        self.engine = H2Connection(self.server, 0.0)
        self.h2 = h2.connection.H2Connection(h2.config.H2Configuration(
            client_side=True, header_encoding=None))
        self.h2.initiate_connection()
        if window is not None:
            self.h2.update_settings({h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: window})
        self.events: list[h2.events.Event] = []
        self.wire: list[Frame] = []
        self._deliver(b"".join(self.engine.initiate()))
        self.pump()

    def _deliver(self, data: bytes) -> None:
        self.wire += parse_frames(data)
        self.events += self.h2.receive_data(data)

    def pump(self, now: float = NOW) -> None:
        """Move bytes both ways until neither side has anything to say."""
        while True:
            out = self.h2.data_to_send()
            if not out:
                return
            self._deliver(b"".join(self.engine.receive(out, now, WALL)))

    def request(self, path: str, method: str = "GET", *headers: tuple[str, str],
                body: bytes = b"") -> int:
        sid = self.h2.get_next_available_stream_id()
        head = [(":method", method), (":path", path), (":scheme", "https"),
                (":authority", "example.org"), *headers]
        self.h2.send_headers(sid, [(n.encode(), v.encode()) for n, v in head],
                             end_stream=not body)
        if body:
            self.h2.send_data(sid, body, end_stream=True)
        return sid

    def response(self, sid: int, auto_ack: bool = True) -> tuple[dict[bytes, bytes], bytes]:
        """The headers and body the client has received on ``sid``."""
        headers: dict[bytes, bytes] = {}
        body = b""
        for event in self.events:
            if getattr(event, "stream_id", None) != sid:
                continue
            if isinstance(event, h2.events.ResponseReceived):
                headers = dict(event.headers)
            elif isinstance(event, h2.events.DataReceived):
                body += event.data
        return headers, body

    def ended(self, sid: int) -> bool:
        return any(isinstance(e, h2.events.StreamEnded) and e.stream_id == sid
                   for e in self.events)

    def get(self, path: str, *headers: tuple[str, str], method: str = "GET"
            ) -> tuple[dict[bytes, bytes], bytes]:
        sid = self.request(path, method, *headers)
        self.pump()
        assert self.ended(sid), path
        return self.response(sid)


def test_every_file_identity_and_gzip() -> None:
    client = Client()
    for key, body in SAMPLE_FILES.items():
        if key.startswith(".") or key == "404.html":
            continue
        head, got = client.get(url_path(key))
        assert head[b":status"] == b"200" and sha256(got) == sha256(body), key
        assert int(head[b"content-length"]) == len(body)
        head, got = client.get(url_path(key), ("accept-encoding", "gzip"))
        if head.get(b"content-encoding") == b"gzip":
            got = gzip.decompress(got)
        assert sha256(got) == sha256(body), key
    assert client.engine.requests == 2 * (len(SAMPLE_FILES) - 2)
    assert not client.engine.closed  # one connection for all of them


def test_the_answers_are_those_of_http1() -> None:
    client = Client()
    head, body = client.get("/docs/guide.txt", method="HEAD")
    assert head[b":status"] == b"200" and body == b"" and head[b"content-length"] == b"3800"
    head, body = client.get("/nope")
    assert head[b":status"] == b"404" and body == b"<p>custom not found</p>\n"
    head, _ = client.get("/docs")
    assert head[b":status"] == b"301" and head[b"location"] == b"/docs/"
    head, _ = client.get("/", method="DELETE")
    assert head[b":status"] == b"405" and head[b"allow"] == b"GET, HEAD, OPTIONS"
    first, _ = client.get("/style.css")
    head, body = client.get("/style.css", ("if-none-match", first[b"etag"].decode()))
    assert head[b":status"] == b"304" and body == b""
    head, body = client.get("/docs/guide.txt", ("range", "bytes=10-19"))
    assert head[b":status"] == b"206" and body == SAMPLE_FILES["docs/guide.txt"][10:20]
    assert head[b"content-range"] == b"bytes 10-19/3800"
    assert b"date" in head and b"connection" not in head


def test_many_streams_at_once_each_get_their_own_answer() -> None:
    client = Client()
    paths = [url_path(k) for k in SAMPLE_FILES if not k.startswith(".")] * 5
    sids = [client.request(p) for p in paths]
    client.pump()
    for sid, path in zip(sids, paths, strict=True):
        head, body = client.response(sid)
        key = urllib.parse.unquote(path.lstrip("/"))
        if key in SAMPLE_FILES and head[b":status"] == b"200":
            assert body == SAMPLE_FILES[key]
        assert client.ended(sid)


def test_bodies_wait_for_the_peer_window() -> None:
    big = bytes(range(256)) * 400  # 102400 bytes: past the default 65535 window too
    client = Client(make_server({"big.bin": big}), window=1000)
    sid = client.request("/big.bin")
    client.pump()
    _, body = client.response(sid)
    assert len(body) == 1000 and not client.ended(sid)  # the window, and no more
    data = [f for f in client.wire if isinstance(f, DataFrame)]
    assert all(len(f.data) <= 16384 for f in data)
    while not client.ended(sid):  # the client grants as it reads
        client.h2.acknowledge_received_data(len(client.response(sid)[1]), sid)
        client.h2.increment_flow_control_window(200_000, sid)
        client.h2.increment_flow_control_window(200_000)
        client.pump()
    assert client.response(sid)[1] == big


def test_a_request_body_past_the_limit_gets_413() -> None:
    client = Client(max_body=100)
    sid = client.request("/", "POST", body=b"x" * 500)
    client.pump()
    head, _ = client.response(sid)
    assert head[b":status"] == b"413"
    assert client.get("/")[0][b":status"] == b"200"  # the connection goes on


# -- raw frames: what a well-behaved client never sends ------------------------------------

class Raw:
    """Frames straight to the engine."""

    def __init__(self, **limits) -> None:
        self.engine = H2Connection(make_server(**limits), 0.0)
        self.out = parse_frames(b"".join(self.engine.initiate()))
        self.encoder = hpack.Encoder()
        self.send(SettingsFrame(0), preface=True)

    def send(self, *frames: Frame, preface: bool = False, now: float = NOW) -> list[Frame]:
        data = (PREFACE if preface else b"") + b"".join(f.serialize() for f in frames)
        got = parse_frames(b"".join(self.engine.receive(data, now, WALL)))
        self.out += got
        return got

    def headers(self, sid: int, end_stream: bool = True, path: str = "/") -> HeadersFrame:
        flags = {"END_HEADERS"} | ({"END_STREAM"} if end_stream else set())
        block = self.encoder.encode([(b":method", b"GET"), (b":path", path.encode()),
                                     (b":scheme", b"http"), (b":authority", b"x")])
        return HeadersFrame(sid, data=block, flags=flags)

    def goaway(self) -> GoAwayFrame | None:
        found = [f for f in self.out if isinstance(f, GoAwayFrame)]
        return found[-1] if found else None


def test_streams_beyond_the_advertised_limit_are_refused_not_the_connection() -> None:
    raw = Raw()
    settings_frame = next(f for f in raw.out if isinstance(f, SettingsFrame))
    assert settings_frame.settings[SettingsFrame.MAX_CONCURRENT_STREAMS] == MAX_STREAMS
    opened = [raw.headers(2 * i + 1, end_stream=False) for i in range(MAX_STREAMS + 5)]
    got = raw.send(*opened)
    refused = [f.stream_id for f in got if isinstance(f, RstStreamFrame)
               and f.error_code == REFUSED_STREAM]
    assert refused == [2 * i + 1 for i in range(MAX_STREAMS, MAX_STREAMS + 5)]
    assert raw.goaway() is None and not raw.engine.closed
    ended = raw.send(DataFrame(1, data=b"", flags={"END_STREAM"}))
    assert any(isinstance(f, HeadersFrame) and f.stream_id == 1 for f in ended)


def test_rapid_reset_ends_the_connection_calmly() -> None:
    raw = Raw()
    frames: list[Frame] = []
    for i in range(1000):
        sid = 2 * i + 1
        frames += [raw.headers(sid, end_stream=False), RstStreamFrame(sid, error_code=8)]
    raw.send(*frames)
    goaway = raw.goaway()
    assert goaway is not None and goaway.error_code == ENHANCE_YOUR_CALM
    assert raw.engine.closed and raw.engine.calm == "stream resets"


def test_resets_at_a_modest_rate_are_fine() -> None:
    raw = Raw()
    for i in range(600):  # 600 resets over 60 s of virtual time: 10 per second
        sid = 2 * i + 1
        raw.send(raw.headers(sid, end_stream=False), RstStreamFrame(sid, error_code=8),
                 now=NOW + i * 0.1)
    assert raw.goaway() is None and not raw.engine.closed


@pytest.mark.parametrize("flood, what", [
    (lambda: [SettingsFrame(0) for _ in range(3000)], "RemoteSettingsChanged"),
    (lambda: [PingFrame(0, opaque_data=b"12345678") for _ in range(3000)], "PingReceived"),
    (lambda: [WindowUpdateFrame(0, window_increment=1) for _ in range(3000)],
     "window updates"),
])
def test_control_frame_floods_end_the_connection_calmly(flood, what: str) -> None:
    raw = Raw()
    raw.send(*flood())
    goaway = raw.goaway()
    assert goaway is not None and goaway.error_code == ENHANCE_YOUR_CALM
    assert raw.engine.calm == what


def test_a_continuation_flood_is_a_connection_error() -> None:
    raw = Raw()
    first = raw.headers(1)
    first.flags.discard("END_HEADERS")
    raw.send(first, *[ContinuationFrame(1, data=b"") for _ in range(200)])
    goaway = raw.goaway()
    assert goaway is not None and goaway.error_code != NO_ERROR and raw.engine.closed


def test_a_header_list_past_the_limit_is_refused() -> None:
    raw = Raw(max_header_bytes=2048)
    block = raw.encoder.encode([(b":method", b"GET"), (b":path", b"/"), (b":scheme", b"http"),
                                (b":authority", b"x"), (b"x-big", b"a" * 4000)])
    raw.send(HeadersFrame(1, data=block, flags={"END_HEADERS", "END_STREAM"}))
    assert not any(isinstance(f, HeadersFrame) for f in raw.out)  # never answered
    assert raw.goaway() is not None or any(isinstance(f, RstStreamFrame) for f in raw.out)


def test_a_bad_preface_is_a_goaway() -> None:
    engine = H2Connection(make_server(), 0.0)
    engine.initiate()
    out = parse_frames(b"".join(engine.receive(b"PRI * HTTP/2.0\r\n\r\nXX\r\n\r\n" + b"\0" * 9,
                                               NOW, WALL)))
    assert engine.closed and any(isinstance(f, GoAwayFrame) for f in out)


def test_preface_sniffing() -> None:
    assert is_preface(PREFACE + b"\0\0\0\4") is True
    assert is_preface(PREFACE[:10]) is None and is_preface(b"") is None
    assert is_preface(b"GET / HTTP/1.1\r\n") is False and is_preface(b"PRX") is False


def test_timeouts() -> None:
    silent = H2Connection(make_server(header_timeout=2.0, idle_timeout=5.0), 0.0)
    assert silent.next_deadline() == 2.0 and silent.on_timer(1.0) == []
    silent.on_timer(2.0)
    assert silent.closed and silent.timed_out == "header"
    raw = Raw(header_timeout=2.0, idle_timeout=5.0)
    raw.send(raw.headers(1))  # answered at NOW
    assert raw.engine.next_deadline() == NOW + 5.0
    raw.out += parse_frames(b"".join(raw.engine.on_timer(NOW + 5.0)))
    assert raw.engine.timed_out == "idle" and raw.goaway().error_code == NO_ERROR
    slow = Raw(header_timeout=2.0, idle_timeout=5.0)
    slow.send(slow.headers(1, end_stream=False))  # a request whose end never comes
    assert slow.engine.next_deadline() == NOW + 2.0
    slow.engine.on_timer(NOW + 2.0)
    assert slow.engine.timed_out == "header"


# -- garbage -------------------------------------------------------------------------------

FRAMES = st.one_of(
    st.builds(lambda sid: Raw.headers(RAW_HELPER, sid), st.integers(1, 50).map(
        lambda n: 2 * n - 1)),
    st.builds(lambda sid, d: DataFrame(sid, data=d), st.integers(1, 100), st.binary(max_size=64)),
    st.builds(lambda sid, c: RstStreamFrame(sid, error_code=c), st.integers(1, 99),
              st.integers(0, 20)),
    st.builds(lambda sid, n: WindowUpdateFrame(sid, window_increment=n), st.integers(0, 9),
              st.integers(1, 2**31 - 1)),
    st.just(SettingsFrame(0)),
    st.builds(lambda d: PingFrame(0, opaque_data=d), st.binary(min_size=8, max_size=8)),
    st.builds(lambda sid, d: ContinuationFrame(sid, data=d), st.integers(1, 9),
              st.binary(max_size=32)),
)
RAW_HELPER = Raw.__new__(Raw)
RAW_HELPER.encoder = hpack.Encoder()


def _still_framed(engine: H2Connection, data: bytes) -> None:
    out = b"".join(engine.receive(data, NOW, WALL))
    parse_frames(out)  # whatever it said is whole frames


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(FRAMES, max_size=30))
def test_random_frames_never_crash_the_engine(frames: list[Frame]) -> None:
    engine = H2Connection(make_server(), 0.0)
    engine.initiate()
    RAW_HELPER.encoder = hpack.Encoder()
    _still_framed(engine, PREFACE + SettingsFrame(0).serialize()
                  + b"".join(f.serialize() for f in frames))


@settings(max_examples=150, deadline=None)
@given(st.binary(max_size=300))
def test_random_bytes_after_the_preface_never_crash_the_engine(data: bytes) -> None:
    engine = H2Connection(make_server(), 0.0)
    engine.initiate()
    _still_framed(engine, PREFACE + data)
