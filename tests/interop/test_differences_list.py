"""The map's "Differences" list (rendered by notebook 10) stays true: each item names the
interop tests that prove it, those tests exist and run (no xfail, no skip mark), the prose
claims no known bug, and docs/bullmq-map.md shows exactly this list.

Runs on every backend (no Redis, no peers): it reads the test files. The proving tests
themselves run on the real-Redis pass with both BullMQ peers and fail when a behaviour
changes; then the item must change with them.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

from tests.interop import bullmq_map

HERE = Path(__file__).parent


def test_functions(module: str) -> dict[str, list[str]]:
    """The test functions of a module of tests/interop/, with their decorators' source."""
    tree = ast.parse((HERE / module).read_text())
    return {
        node.name: [ast.unparse(d) for d in node.decorator_list]
        for node in tree.body
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
        and node.name.startswith("test_")
    }


test_functions.__test__ = False  # a helper, not a test


@pytest.mark.parametrize("item", bullmq_map.DIFFERENCES, ids=lambda d: d.title)
def test_each_difference_is_proved_by_tests_that_run(item):
    assert item.tests, f"{item.title}: no test proves it"
    for test in item.tests:
        module, name = test.split("::")
        functions = test_functions(module)
        assert name in functions, f"{item.title}: {test} does not exist"
        marks = [d for d in functions[name] if re.search(r"\b(xfail|skip|skipif)\b", d)]
        assert not marks, f"{item.title}: {test} does not prove it while marked {marks}"


@pytest.mark.parametrize("item", bullmq_map.DIFFERENCES, ids=lambda d: d.title)
def test_no_difference_claims_a_known_bug(item):
    # A known bug is a failing test, not a line of the map: the map says what holds.
    stale = re.search(r"core bug|fails? until|not yet|until (it is )?fixed", item.text, re.I)
    assert stale is None, f"{item.title}: {stale.group(0)!r}"


def test_the_docs_show_this_list():
    doc = bullmq_map.DOC.read_text()
    assert doc.endswith(bullmq_map.NOTES.rstrip() + "\n"), (
        "docs/bullmq-map.md's Differences differ from tests/interop/bullmq_map.py's "
        "DIFFERENCES: regenerate it (MINIBULL_WRITE_MAP=1, see test_bullmq_map.py)"
    )


def test_a_stale_item_is_caught():
    # The checks above on made-up items: a missing test, an xfail test, a bug claim.
    missing = bullmq_map.Difference("x", ("test_differences.py::test_nothing_like_it",), "t")
    with pytest.raises(AssertionError, match="does not exist"):
        test_each_difference_is_proved_by_tests_that_run(missing)
    bug = bullmq_map.Difference("x", (), "a core bug, fails until fixed")
    with pytest.raises(AssertionError, match="core bug"):
        test_no_difference_claims_a_known_bug(bug)
    assert "xfail" not in str(test_functions("test_differences.py"))
