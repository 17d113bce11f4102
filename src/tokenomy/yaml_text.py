"""The one way Tokenomy reads YAML: PyYAML's safe loader, refusing a key written twice in one mapping.

PyYAML keeps the last of two equal keys without a word, so a second `models:` or a price written twice for one
model replaced the first silently; here it is a YAMLError whose mark is the second key's line, which the callers
already print as "FILE: not valid YAML at line N, column M: ..." (see `errors.yaml_problem`)."""

from __future__ import annotations

from typing import Any

import yaml
from yaml.constructor import ConstructorError
from yaml.nodes import MappingNode

MERGE_TAG = "tag:yaml.org,2002:merge"


class UniqueKeyLoader(yaml.SafeLoader):
    """SafeLoader whose mappings refuse a repeated key. Keys brought in by a `<<:` merge may still be overridden by
    the mapping's own keys (that is what a merge is for); only keys written in the same mapping are compared."""

    def construct_mapping(self, node: MappingNode, deep: bool = False) -> dict[Any, Any]:
        if isinstance(node, MappingNode):
            self._refuse_repeated_keys(node)
        return super().construct_mapping(node, deep=deep)

    def _refuse_repeated_keys(self, node: MappingNode) -> None:
        first_line: dict[Any, int] = {}
        for key_node, _ in node.value:
            if key_node.tag == MERGE_TAG:
                continue
            key = self.construct_object(key_node, deep=True)
            try:
                seen = first_line.get(key)
            except TypeError:  # an unhashable key: the base constructor names it
                continue
            if seen is not None:
                raise ConstructorError(
                    None,
                    None,
                    f"duplicate key {key!r} (first at line {seen}); keep one of them",
                    key_node.start_mark,
                )
            first_line[key] = key_node.start_mark.line + 1


def load_yaml(text: str) -> Any:
    """`yaml.safe_load`, but a key repeated in one mapping is a YAMLError naming the key and both lines."""
    return yaml.load(text, Loader=UniqueKeyLoader)  # a SafeLoader: no Python objects from tags
