"""Arrays of many stored ``ArrayData`` nodes, read from the repository in one pass.

``ArrayData.get_array`` opens every ``.npy`` file on its own: with the disk-objectstore repository each open
looks the object up in the container's index, twice per array, ~10 ms per array on a 2-core machine — for the
thermal average of 500 unfolded spectra (4 arrays each) 20 s of its ~50 s. :func:`read_arrays` collects the
object keys of all the nodes' arrays from their repository metadata (no query) and streams them from the
repository backend's :meth:`iter_object_streams` (one index lookup per batch): the same arrays, 43 → 1 ms per
node of 4 arrays (measured on 100 nodes).
"""

from __future__ import annotations

import io
from collections.abc import Sequence

import numpy as np
from aiida import orm

ARRAY_SUFFIX = ".npy"


def read_arrays(nodes: Sequence[orm.ArrayData]) -> list[dict[str, np.ndarray]]:
    """``{name: array}`` of every node (stored ``ArrayData``), in the order of ``nodes``.

    Unstored nodes, and repositories without object keys, are read through ``get_array``."""
    out: list[dict[str, np.ndarray] | None] = [None] * len(nodes)
    wanted: dict[str, list[tuple[int, str]]] = {}
    repository = None
    for n, node in enumerate(nodes):
        if not node.is_stored:
            out[n] = {name: node.get_array(name) for name in node.get_arraynames()}
            continue
        repository = repository or node.backend.get_repository()
        out[n] = {}
        for name in node.get_arraynames():
            key = node.base.repository.get_object(f"{name}{ARRAY_SUFFIX}").key
            if key is None:
                out[n][name] = node.get_array(name)
            else:
                wanted.setdefault(key, []).append((n, name))
    if wanted:
        for key, stream in repository.iter_object_streams(list(wanted)):
            array = np.load(io.BytesIO(stream.read()), allow_pickle=False)
            for n, name in wanted[key]:  # identical arrays of several nodes share one object
                out[n][name] = array
    return out  # type: ignore[return-value]
