"""Each script's KEYS are declared once, by name, in ``scripts.SCRIPT_KEYS``: these tests
check that every Lua header lists the same names in the same order, and that every name
is a key a builder can find."""

from __future__ import annotations

import re

import pytest

from minibull.keys import QueueKeys
from minibull.scripts import LUA_DIR, SCRIPT_KEYS, script_key_count, script_keys

_HEADER = re.compile(r"^--\[\[(.*?)\]\]", re.DOTALL)
_KEY = re.compile(r"KEYS\[(\d+)\]\s+([\w-]+)")
#: The keys a call names itself (a job's hash, the state it works on), not a QueueKeys name.
CALL_NAMED = {"job", "logs", "finished", "state", "record", "metrics", "metrics-data"}


def header_keys(name: str) -> list[str]:
    """The key names a script's header lists, in KEYS order (``KEYS[1] wait ...``)."""
    (path,) = LUA_DIR.glob(f"{name}-*.lua")
    header = _HEADER.match(path.read_text())
    assert header, f"{path.name} has no --[[ ... ]] header"
    found = {int(index): key for index, key in _KEY.findall(header.group(1))}
    assert sorted(found) == list(range(1, len(found) + 1)), f"{path.name}: KEYS numbered {found}"
    return [found[index] for index in sorted(found)]


def script_names() -> list[str]:
    return sorted(path.stem.rsplit("-", 1)[0] for path in LUA_DIR.glob("*.lua"))


def test_every_script_has_its_keys_declared() -> None:
    assert sorted(SCRIPT_KEYS) == script_names()


@pytest.mark.parametrize("name", script_names())
def test_a_scripts_header_lists_its_declared_keys(name: str) -> None:
    assert header_keys(name) == list(SCRIPT_KEYS[name])
    assert len(SCRIPT_KEYS[name]) == script_key_count(name)


@pytest.mark.parametrize("name", sorted(SCRIPT_KEYS))
def test_every_declared_key_is_found_for_a_queue(name: str) -> None:
    keys = QueueKeys("emails", "bull")
    named = {key.replace("-", "_"): f"<{key}>" for key in CALL_NAMED}
    resolved = script_keys(name, keys, **named)
    assert len(resolved) == len(SCRIPT_KEYS[name])
    for key_name, key in zip(SCRIPT_KEYS[name], resolved, strict=True):
        if key_name in CALL_NAMED:
            assert key == f"<{key_name}>"
        else:
            assert key.startswith("bull:emails:"), (name, key_name, key)
