"""Arrays of many stored ArrayData nodes read in one pass (:func:`aiida_mlepi.data.array_reading.read_arrays`)."""

from __future__ import annotations

import numpy as np


def test_read_arrays_equals_get_array_for_stored_unstored_and_shared_arrays(aiida_profile):
    from aiida import orm

    from aiida_mlepi.data.array_reading import read_arrays

    rng = np.random.default_rng(11)
    shared = rng.normal(size=(6, 5, 9))
    nodes = []
    for n in range(5):
        node = orm.ArrayData()
        node.set_array("energies", rng.normal(size=(6, 5, 9 + n)))
        node.set_array("weights", shared)  # the same content in every node: one repository object
        node.set_array("counts", np.arange(n + 1))
        nodes.append(node.store() if n != 2 else node)  # node 2 stays unstored
    loaded = [orm.load_node(node.pk) if node.is_stored else node for node in nodes]
    arrays = read_arrays(loaded)
    assert [sorted(a) for a in arrays] == [["counts", "energies", "weights"]] * 5
    for node, got in zip(nodes, arrays):
        for name in ("energies", "weights", "counts"):
            expected = node.get_array(name)
            assert got[name].dtype == expected.dtype and np.array_equal(got[name], expected)
    assert read_arrays([]) == []
