"""The DNS appliance's configuration: the devices it needs and its runtime arguments."""

from fata.config import Appliance, arg, clock, console, kv_ro, kv_runtime, lifecycle, random, stack

appliance = Appliance(
    name="dns",
    version="0.1.0",
    entry="fata_dns.unikernel:start",
    devices={
        "stack": stack(),
        "data": kv_ro("data"),  # the zones baked into the image (data/*.zone)
        "zones": kv_runtime(),  # the --zone files: fata run --kv zones=DIR, or host paths
        "clock": clock(),
        "random": random(),  # NOTIFY message IDs
        "console": console(),
        "lifecycle": lifecycle(),
    },
    args=[
        arg("zone", type=str, multiple=True,
            help="zone file (master format), or ORIGIN=FILE for a file without $ORIGIN; "
                 "read from the run-time store 'zones' (a host path; confined to DIR by "
                 "fata run --kv zones=DIR); repeatable; default: the baked data/*.zone"),
        arg("listen", type=str, default="",
            help="address to answer on (default: the stack's own address, 127.0.0.1 on "
                 "--net socket, 10.77.0.2 on --net direct)"),
        arg("port", type=int, default=53, help="UDP and TCP port"),
        arg("axfr_allow", type=str, multiple=True,
            help="address or CIDR allowed to transfer zones (AXFR/IXFR); repeatable"),
        arg("notify", type=str, multiple=True,
            help="secondary ADDR[:PORT] to NOTIFY when a reload raises a serial; repeatable"),
        arg("rrl", type=float, default=0.0,
            help="response rate limiting: UDP answers per second per client network (/24, "
                 "/56) and kind of answer; over it answers are dropped or slipped (0: off)"),
        arg("rrl_slip", type=int, default=2,
            help="with --rrl, every Nth answer over the rate goes out truncated (TC) so a real "
                 "client retries over TCP (0: never)"),
        arg("rrl_window", type=float, default=15.0,
            help="with --rrl, seconds of debt a flooding client must wait off"),
        arg("rrl_exempt", type=str, multiple=True,
            help="with --rrl, address or CIDR whose answers are never limited (a monitor, "
                 "a known resolver); repeatable"),
        arg("tcp_idle_timeout", type=float, default=10.0,
            help="seconds before an idle TCP connection is closed"),
        arg("tcp_initial_timeout", type=float, default=5.0,
            help="seconds from a TCP connection's accept to its first complete message "
                 "(bytes trickling in do not extend it)"),
        arg("tcp_message_timeout", type=float, default=2.0,
            help="seconds from the first byte of a TCP message to its last"),
        arg("tcp_max_connections", type=int, default=100,
            help="concurrent TCP connections; when full, a new one takes the slot of the "
                 "oldest still waiting for its first message, else it is refused"),
        arg("tcp_max_per_client", type=int, default=10,
            help="concurrent TCP connections per client (IPv4 address, IPv6 /64); more "
                 "are refused"),
        arg("memo_bytes", type=int, default=32 << 20,
            help="bytes of precomputed and memoised answers (accounted: key and value "
                 "lengths plus a per-entry estimate); the zone's own names are kept, other "
                 "answers enter on their second sighting once half is used"),
        arg("reply_cache_bytes", type=int, default=16 << 20,
            help="bytes of whole replies answered by query bytes (the platform's reply "
                 "cache), bounded as --memo-bytes"),
    ],
    include=["dns.rdtypes"],
)
