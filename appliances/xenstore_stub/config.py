"""The xenstore daemon's configuration: its devices and runtime arguments."""

from fata.config import Appliance, arg, console, lifecycle, local_sockets, xen

appliance = Appliance(
    name="xenstore_stub",
    version="0.1.0",
    entry="fata_xenstore_stub.unikernel:start",
    devices={
        "local": local_sockets(),  # the Unix sockets Xen's tools reach (XENSTORED_PATH)
        "console": console(),
        "lifecycle": lifecycle(),
        "xen": xen(),  # introduced domains' rings, with fata run --xen-hypervisor PATH
    },
    args=[
        arg("socket", type=str, default="/run/xenstored/socket",
            help="the read-write socket; the read-only one is beside it, PATH_ro"),
        arg("store", type=str, default="/var/lib/fata-xenstore",
            help="directory of the durable store (snapshot and write-ahead log)"),
        arg("snapshot_every", type=int, default=10000,
            help="log records after which the store is written whole and the log emptied"),
        arg("max_queued", type=int, default=1024,
            help="writes queued for a dom0 tool that does not read its answers before it is "
                 "dropped"),
        arg("quota_nodes", type=int, default=1000, help="nodes a domain may own"),
        arg("quota_entry_size", type=int, default=2048,
            help="bytes of a value a domain writes"),
        arg("quota_watches", type=int, default=128, help="watches per domain"),
        arg("quota_transactions", type=int, default=10,
            help="open transactions per domain"),
        arg("quota_outstanding", type=int, default=20,
            help="requests of a domain in flight before its ring is read no further"),
        arg("quota_events", type=int, default=1024,
            help="watch events waiting for a domain beyond which they are dropped"),
    ],
)
