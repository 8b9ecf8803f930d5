"""A load of transactions for the SIGKILL test: each writes three nodes of its own in one
transaction with Fata's client over the daemon's socket and prints its number once the
commit is answered (acknowledged), until the daemon goes.

``python tx_loader.py SOCKET PREFIX``
"""

from __future__ import annotations

import asyncio
import sys

from fata.platform.local_unix import UnixLocalSockets
from fata.platform.unix import UnixConsole
from fata.xen.xs_client import XenstoreClient

PARTS = ("a", "b", "c")


async def main(socket: str, prefix: str) -> None:
    flow = await UnixLocalSockets(UnixConsole("tx-loader")).connect(socket)
    async with XenstoreClient(flow) as xs:
        i = 0
        while True:
            async def body(tx: int, i: int = i) -> None:
                for part in PARTS:
                    await xs.write(f"{prefix}/t{i}/{part}", f"{i}{part}", tx=tx)
            try:
                await xs.transaction(body)
            except ConnectionError:
                return
            print(i, flush=True)
            i += 1


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2]))
