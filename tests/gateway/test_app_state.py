"""The gateway app's state behaves as Starlette's (set, read, replaced, deleted), its values held as plain
attributes too, so reading one (`request.app.state.gateway`, on every request) is an ordinary attribute lookup."""

from __future__ import annotations

import pytest
from starlette.datastructures import State

from tokenomy.gateway.fast_path import GatewayApp, PlainState


def test_the_state_reads_sets_and_deletes_as_starlettes() -> None:
    app = GatewayApp()
    assert isinstance(app.state, State) and isinstance(app.state, PlainState)
    app.state.gateway = "first"
    app.state.gateway = "second"
    assert app.state.gateway == "second" and app.state._state == {"gateway": "second"}
    assert vars(app.state)["gateway"] == "second"  # found without State.__getattr__
    del app.state.gateway
    with pytest.raises(AttributeError):
        app.state.gateway  # noqa: B018
    assert app.state._state == {}
