"""Request and event ids: 32 hex characters, unique in a process and across forked workers."""

from __future__ import annotations

import os
import re

from tokenomy.ids import new_id


def test_ids_are_hex_unique_and_differ_in_a_forked_child() -> None:
    ids = {new_id() for _ in range(10_000)}
    assert len(ids) == 10_000 and all(re.fullmatch(r"[0-9a-f]{32}", i) for i in ids)
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: a worker forked after the parent made ids
        os.write(write, new_id().encode())
        os._exit(0)
    os.waitpid(pid, 0)
    child = os.read(read, 64).decode()
    mine = new_id()
    assert child not in ids and child[:16] != mine[:16]  # a new random prefix, not the parent's counter
