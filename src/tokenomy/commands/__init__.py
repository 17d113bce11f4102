"""Command groups of the `tokenomy` CLI; each module exposes `register(app)`."""
