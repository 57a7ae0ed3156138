"""Reading a Keras 3 functional model's config as a graph (used to rebuild it elsewhere)."""
from __future__ import annotations


def layer_parents(entry: dict) -> list[str]:
    """Names of the layers feeding one entry of ``model.get_config()["layers"]``."""
    if not entry["inbound_nodes"]:
        return []
    args = entry["inbound_nodes"][0]["args"][0]
    tensors = args if isinstance(args, list) else [args]
    return [t["config"]["keras_history"][0] for t in tensors]


def endpoint_name(endpoints: list) -> str:
    """The layer name in a config's ``['image', 0, 0]`` or ``[['image', 0, 0], ...]``."""
    return endpoints[0] if isinstance(endpoints[0], str) else endpoints[0][0]
