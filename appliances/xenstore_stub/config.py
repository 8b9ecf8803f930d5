"""The xenstore daemon's configuration: its devices and runtime arguments."""

from fata.config import Appliance, arg, console, lifecycle, local_sockets

appliance = Appliance(
    name="xenstore_stub",
    version="0.1.0",
    entry="fata_xenstore_stub.unikernel:start",
    devices={
        "local": local_sockets(),  # the Unix sockets Xen's tools reach (XENSTORED_PATH)
        "console": console(),
        "lifecycle": lifecycle(),
    },
    args=[
        arg("socket", type=str, default="/run/xenstored/socket",
            help="the read-write socket; the read-only one is beside it, PATH_ro"),
        arg("store", type=str, default="/var/lib/fata-xenstore",
            help="directory of the durable store (snapshot and write-ahead log)"),
        arg("snapshot_every", type=int, default=10000,
            help="log records after which the store is written whole and the log emptied"),
        arg("max_queued", type=int, default=1024,
            help="answers and watch events queued for a connection that does not read "
                 "before it is dropped"),
    ],
)
