"""docs/bullmq-map.md matches what minibull and both BullMQs actually write and read.

Set ``MINIBULL_WRITE_MAP=1`` to rewrite the file from the observation instead.
"""

from __future__ import annotations

import difflib
import os

import pytest

from tests.interop import bullmq_map
from tests.interop.conftest import require_peer


def test_monitor_lines_are_split_into_arguments():
    line = r'1795892254.532129 [0 lua] "HSET" "q:te st" "a b" "1\"x\\" "\x00"'
    assert bullmq_map.monitor_args(line) == ["HSET", "q:te st", "a b", '1"x\\', "\x00"]


def test_key_kinds():
    rests = ("wait", "42", "custom-1:lock", "wakeup:ab", "de:report")
    kinds = [bullmq_map.key_kind(rest) for rest in rests]
    assert kinds == ["wait", "<id>", "<id>:lock", "wakeup:<worker id>", "de:<id>"]


async def test_the_map_in_docs_is_current(prefix: str):
    urls = {kind: require_peer(kind) for kind in bullmq_map.IMPLEMENTATIONS}
    observed = {}
    for kind, url in urls.items():
        observed[kind] = await bullmq_map.observe(kind, url, prefix)
    text = bullmq_map.render(observed, bullmq_map.versions())
    if os.environ.get("MINIBULL_WRITE_MAP"):
        bullmq_map.DOC.parent.mkdir(exist_ok=True)
        bullmq_map.DOC.write_text(text)
        pytest.skip(f"wrote {bullmq_map.DOC}")
    current = bullmq_map.DOC.read_text() if bullmq_map.DOC.exists() else ""
    if current != text:
        diff = "".join(
            difflib.unified_diff(
                current.splitlines(keepends=True),
                text.splitlines(keepends=True),
                "docs/bullmq-map.md",
                "observed",
            )
        )
        pytest.fail(
            "docs/bullmq-map.md is stale; check the change below, then regenerate it with "
            "MINIBULL_WRITE_MAP=1 MINIBULL_REDIS_URL=... pytest "
            f"tests/interop/test_bullmq_map.py\n{diff}",
            pytrace=False,
        )
