"""A worker for the stalled-job tests to kill.

``python -m tests.interop.doomed_worker KIND URL PREFIX``, KIND being ``minibull`` or
``python`` (BullMQ's port), works on queue ``q`` with a 1 s lock and prints
``{"run": job id}`` for every job it starts; the test sends it SIGKILL mid-job, so it
dies holding the lock, as after a crash. (The Node.js doomed worker is a NodePeer the
test kills the same way.)
"""

from __future__ import annotations

import asyncio
import json
import sys

from tests.interop.peers import open_peer

#: Short enough that the lock expires soon after the kill; the sweep must not block rescuers.
DOOMED_WORKER = {"lockDuration": 1000, "stalledInterval": 300, "drainDelay": 1}


async def main(kind: str, url: str, prefix: str) -> None:
    peer = await open_peer(kind, url, prefix, "q")
    await peer.start_worker(**DOOMED_WORKER)
    reported = 0
    while True:
        for job_id, _made in peer.runs[reported:]:
            print(json.dumps({"run": job_id}), flush=True)
        reported = len(peer.runs)
        await asyncio.sleep(0.01)


if __name__ == "__main__":
    asyncio.run(main(*sys.argv[1:4]))
