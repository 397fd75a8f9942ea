"""Orbital blocks ↔ e3nn irreps: the Clebsch–Gordan change of basis l1 ⊗ l2 → ⊕ l (DeepH-E3 style).

A block H_ij between atom i (shells (la, ...)) and atom j (shells (lb, ...)) transforms under a
rotation M as H' = D_i H D_jᵀ (:mod:`aiida_mlepi.core.wigner`, OpenMX orbital order). Each shell
pair (la, lb) is the tensor product la ⊗ lb = ⊕_{l=|la−lb|}^{la+lb} l with parity (−1)^{la+lb}; a
vector f of those irreps (e3nn basis) gives the block

    B_ab = Σ_l Σ_m  [Q_la C^{la lb l}[:, :, m] Q_lbᵀ]_ab f_lm,

with C the e3nn real Wigner-3j symbols and Q_l the orthogonal map from e3nn's real harmonics to
the OpenMX orbitals (``Y_openmx = Q_l Y_e3nn``, computed by projection on the sphere, so the
convention is checked against :func:`aiida_mlepi.core.wigner.real_harmonics`, not assumed).
Then f → D_e3nn f gives B → D_openmx B D_openmxᵀ exactly.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
import torch

torch.serialization.add_safe_globals([slice])  # e3nn 0.4.4 reads its constants with torch.load

from e3nn import o3  # noqa: E402

from ..hamiltonian import shell_size  # noqa: E402
from ..wigner import real_harmonics, sphere_quadrature  # noqa: E402


@lru_cache(maxsize=None)
def e3nn_to_openmx(l: int) -> np.ndarray:
    """Orthogonal (2l+1, 2l+1) matrix Q with Y_openmx(r̂) = Q · Y_e3nn(r̂) (both unit-normalised)."""
    pts, w = sphere_quadrature(2 * l)
    y_e3nn = o3.spherical_harmonics(l, torch.tensor(pts, dtype=torch.float64), normalize=True,
                                    normalization="integral").numpy()
    y_omx = real_harmonics(l, pts)
    q = (y_omx * w[:, None]).T @ y_e3nn
    if np.abs(q @ q.T - np.eye(2 * l + 1)).max() > 1e-8:  # pragma: no cover - a broken e3nn/wigner pair
        raise RuntimeError(f"e3nn and OpenMX harmonics of l={l} do not span the same space")
    return q


def pair_irreps(shells_i: tuple[int, ...], shells_j: tuple[int, ...]) -> o3.Irreps:
    """Irreps whose vector fills a block between shells ``shells_i`` and ``shells_j`` (unsorted)."""
    parts = []
    for la in shells_i:
        for lb in shells_j:
            parity = "e" if (la + lb) % 2 == 0 else "o"
            parts += [f"1x{l}{parity}" for l in range(abs(la - lb), la + lb + 1)]
    return o3.Irreps("+".join(parts))


@lru_cache(maxsize=None)
def _block_map_np(shells_i: tuple[int, ...], shells_j: tuple[int, ...]) -> np.ndarray:
    ni = sum(shell_size(l) for l in shells_i)
    nj = sum(shell_size(l) for l in shells_j)
    rows = []
    oi = 0
    for la in shells_i:
        oj = 0
        for lb in shells_j:
            qa, qb = e3nn_to_openmx(la), e3nn_to_openmx(lb)
            for l in range(abs(la - lb), la + lb + 1):
                c = o3.wigner_3j(la, lb, l, dtype=torch.float64).numpy() * np.sqrt(2 * l + 1)
                for m in range(2 * l + 1):
                    block = np.zeros((ni, nj))
                    block[oi:oi + shell_size(la), oj:oj + shell_size(lb)] = qa @ c[:, :, m] @ qb.T
                    rows.append(block.ravel())
            oj += shell_size(lb)
        oi += shell_size(la)
    return np.array(rows)


def block_map(shells_i: tuple[int, ...], shells_j: tuple[int, ...]) -> np.ndarray:
    """(dim of :func:`pair_irreps`, n_i·n_j) matrix: flattened OpenMX block = f @ map."""
    return _block_map_np(tuple(shells_i), tuple(shells_j)).copy()
