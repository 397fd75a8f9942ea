"""The reference engine: a tight-binding "DFT stand-in" for carbon multilayers.

Model (parameters and sources in :mod:`.parameters`):

* intra-layer: orthogonal sp³ Slater–Koster tight binding + repulsion Σ_i f(Σ_j φ(r_ij)) of
  Xu, Wang, Chan & Ho (1992), applied only to pairs in the same layer (``layer_ids``);
* inter-layer: p–p Slater–Koster hopping with exponential distance dependence (Moon & Koshino 2013),
  a Lennard-Jones pair potential (Girifalco, Hodak & Lee 2000) and an exponential overlap
  repulsion (this package's adjustment, see :mod:`.parameters`), between atoms of different
  layers (or of periodic images of a layer along a periodic z axis);
* electrons: basis C s, px, py, pz; 4 valence electrons per C, spin-degenerate bands; Fermi–Dirac
  occupations at k_B T_el with μ fixed by the electron count; Γ-centred k mesh.

The energy is the Mermin free energy F = Σ_k w_k Σ_n 2[f_nk ε_nk − k_B T_el s(f_nk)] + E_rep + E_LJ + E_x
(eV); forces = −∂F/∂x exactly: Hellmann–Feynman with the density matrix (valid because F is
stationary in the occupations at fixed electron number) plus analytic pair derivatives.
The basis is orthogonal: S(R) = δ_R0 δ_ij 1.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import scipy.linalg
from ase import Atoms
from ase.data import chemical_symbols
from ase.neighborlist import neighbor_list
from scipy.optimize import brentq
from scipy.special import expit

from ..hamiltonian import HamiltonianR
from ..layers import get_layer_ids
from ..units import EV_ANGSTROM_TO_M_PER_S
from .parameters import EngineParameters
from .slater_koster import smooth_switch, sp_blocks, xwch_radial

CARBON = 6
#: chemical symbols the engine has parameters for
SUPPORTED_ELEMENTS: tuple[str, ...] = ("C",)
NORB = 4  #: orbitals per C atom: s, px, py, pz


class UnsupportedElementError(ValueError):
    """The reference engine only describes carbon."""


class KPointError(ValueError):
    """A k-point mesh that does not fit the structure's periodicity."""


@dataclass
class EngineResult:
    """Output of :meth:`ReferenceEngine.compute` (eV, Å)."""

    energy: float  #: Mermin free energy F, eV
    forces: np.ndarray  #: (N, 3) −∂F/∂x, eV/Å
    hamiltonian: HamiltonianR | None = None  #: H(R) blocks when requested
    fermi_level: float = float("nan")  #: chemical potential μ, eV
    band_energy: float = 0.0  #: Σ 2 f ε, eV
    entropy_term: float = 0.0  #: −k_B T_el S, eV
    repulsive_energy: float = 0.0  #: XWCH intra-layer repulsion, eV
    lj_energy: float = 0.0  #: inter-layer Lennard-Jones, eV
    inter_repulsive_energy: float = 0.0  #: inter-layer exponential repulsion, eV
    eigenvalues: np.ndarray = field(default_factory=lambda: np.zeros((0, 0)))  #: (nk, 4N), eV


@dataclass(frozen=True)
class _Bonds:
    """Directed tight-binding bonds i → j + shift with their blocks and gradients."""

    i: np.ndarray
    j: np.ndarray
    shifts: np.ndarray  #: (E, 3) int, cell translation of j
    blocks: np.ndarray  #: (E, 4, 4) eV
    grads: np.ndarray  #: (E, 4, 4, 3) eV/Å, ∂block/∂(r_j + R − r_i)


def monkhorst_pack_gamma(kpts: tuple[int, int, int]) -> np.ndarray:
    """Γ-centred mesh: fractional k = (i1/n1, i2/n2, i3/n3), i_a = 0…n_a−1; shape (n1 n2 n3, 3)."""
    n = np.asarray(kpts, dtype=int)
    if n.shape != (3,) or (n < 1).any():
        raise KPointError(f"kpts must be three positive integers, got {kpts!r}")
    grids = np.meshgrid(*[np.arange(m) / m for m in n], indexing="ij")
    return np.column_stack([g.ravel() for g in grids])


def _fermi_entropy(x: np.ndarray) -> np.ndarray:
    """−[f ln f + (1−f) ln(1−f)] for f = 1/(1 + eˣ), computed stably."""
    return np.logaddexp(0.0, x) - expit(x) * x


class ReferenceEngine:
    """Tight-binding energy, forces and H(R) of carbon (multi)layers; see the module docstring."""

    def __init__(self, parameters: EngineParameters | None = None) -> None:
        self.parameters = EngineParameters() if parameters is None else parameters

    # ------------------------------------------------------------------ public API
    def compute(self, atoms: Atoms, kpts: tuple[int, int, int] = (1, 1, 1),
                hamiltonian: bool = False) -> EngineResult:
        """Free energy (eV), forces (eV/Å) and optionally H(R) of ``atoms`` on a Γ-centred k mesh."""
        p = self.parameters
        self._check_atoms(atoms)
        kfrac = self._kpoints(atoms, kpts)
        nat = len(atoms)
        i, j, shifts, vec, dist, inter = self._pairs(atoms)
        grad_edge = np.zeros_like(vec)  # ∂F/∂d_e for every directed pair

        # XWCH repulsion Σ_i f(x_i), x_i = Σ_j φ(r_ij), same-layer pairs only
        sel = ~inter & (dist < p.rep_cutoff)
        phi, dphi = xwch_radial(dist[sel], p.rep_m, p.rep_mc, p.rep_dc, p.rep_d0,
                                p.rep_tail_start, p.rep_cutoff)
        phi, dphi = p.rep_phi0 * phi, p.rep_phi0 * dphi
        x = np.bincount(i[sel], weights=phi, minlength=nat)
        c = np.asarray(p.rep_f)
        e_rep = float(np.polynomial.polynomial.polyval(x, c).sum())
        fprime = np.polynomial.polynomial.polyval(x, c[1:] * np.arange(1, len(c)))
        grad_edge[sel] += (fprime[i[sel]] * dphi / dist[sel])[:, None] * vec[sel]

        # Lennard-Jones between layers; each pair appears twice among the directed pairs
        sel = inter & (dist < p.lj_cutoff)
        r = dist[sel]
        sr6 = (p.lj_sigma / r) ** 6
        v = 4.0 * p.lj_epsilon * (sr6 * sr6 - sr6)
        dv = 4.0 * p.lj_epsilon * (-12.0 * sr6 * sr6 + 6.0 * sr6) / r
        sw, dsw = smooth_switch(r, p.lj_switch_start, p.lj_cutoff)
        e_lj = float(0.5 * np.sum(v * sw))
        grad_edge[sel] += (0.5 * (dv * sw + v * dsw) / r)[:, None] * vec[sel]

        # inter-layer exponential (overlap) repulsion, tapered like the hopping (see parameters)
        sel = inter & (dist < p.inter_cutoff)
        e_x = 0.0
        if p.inter_rep_a != 0.0 and sel.any():
            r = dist[sel]
            sw, dsw = smooth_switch(r, p.inter_taper_start, p.inter_cutoff)
            ex = p.inter_rep_a * np.exp(-(r - p.inter_d0) / p.inter_rep_decay)
            e_x = float(0.5 * np.sum(ex * sw))
            grad_edge[sel] += (0.5 * ex * (dsw - sw / p.inter_rep_decay) / r)[:, None] * vec[sel]

        # electrons
        bonds, bond_index = self._bonds(i, j, shifts, vec, dist, inter)
        el = self._electrons(atoms, bonds, kfrac)
        grad_edge[bond_index] += np.einsum("eab,eabg->eg", el["density"], bonds.grads)

        forces = np.zeros((nat, 3))
        for a in range(3):
            forces[:, a] = (np.bincount(i, weights=grad_edge[:, a], minlength=nat)
                            - np.bincount(j, weights=grad_edge[:, a], minlength=nat))
        energy = el["band"] + el["entropy"] + e_rep + e_lj + e_x
        ham = self._to_hamiltonian(atoms, bonds) if hamiltonian else None
        return EngineResult(energy=float(energy), forces=forces, hamiltonian=ham,
                            fermi_level=el["mu"], band_energy=el["band"],
                            entropy_term=el["entropy"], repulsive_energy=e_rep, lj_energy=e_lj,
                            inter_repulsive_energy=e_x,
                            eigenvalues=el["eigenvalues"])

    def energy(self, atoms: Atoms, kpts: tuple[int, int, int] = (1, 1, 1)) -> float:
        """Mermin free energy F (eV)."""
        return self.compute(atoms, kpts).energy

    def forces(self, atoms: Atoms, kpts: tuple[int, int, int] = (1, 1, 1)) -> np.ndarray:
        """Forces −∂F/∂x, (N, 3) eV/Å."""
        return self.compute(atoms, kpts).forces

    def hamiltonian(self, atoms: Atoms) -> HamiltonianR:
        """H(R) blocks (eV) of ``atoms`` without diagonalisation; orthogonal basis (S = 1)."""
        self._check_atoms(atoms)
        i, j, shifts, vec, dist, inter = self._pairs(atoms, cutoff=max(self.parameters.hop_cutoff,
                                                                        self.parameters.inter_cutoff))
        bonds, _ = self._bonds(i, j, shifts, vec, dist, inter)
        return self._to_hamiltonian(atoms, bonds)

    # ------------------------------------------------------------------ pieces
    @staticmethod
    def _check_atoms(atoms: Atoms) -> None:
        bad = sorted({int(z) for z in atoms.numbers if z != CARBON})
        if bad:
            names = ", ".join(chemical_symbols[z] for z in bad)
            raise UnsupportedElementError(
                f"the reference engine only supports carbon (C); the structure contains {names}"
            )
        if len(atoms) == 0:
            raise ValueError("empty structure")

    @staticmethod
    def _kpoints(atoms: Atoms, kpts: tuple[int, int, int]) -> np.ndarray:
        kfrac = monkhorst_pack_gamma(tuple(kpts))
        for a in range(3):
            if not atoms.pbc[a] and int(kpts[a]) != 1:
                raise KPointError(f"kpts[{a}] = {kpts[a]} but the structure is not periodic along "
                                  f"cell vector {a}; use 1")
        return kfrac

    def _pairs(self, atoms: Atoms, cutoff: float | None = None):
        """Directed pairs within the largest cutoff; ``inter`` marks pairs in different layers."""
        cutoff = self.parameters.max_cutoff if cutoff is None else cutoff
        i, j, shifts, vec, dist = neighbor_list("ijSDd", atoms, cutoff, self_interaction=False)
        layers = get_layer_ids(atoms)
        inter = (layers[i] != layers[j]) | (shifts[:, 2] != 0)
        return i, j, shifts, vec, dist, inter

    def _bonds(self, i, j, shifts, vec, dist, inter) -> tuple[_Bonds, np.ndarray]:
        """Tight-binding blocks of intra-layer (XWCH) and inter-layer (Moon–Koshino) bonds."""
        p = self.parameters
        intra = np.flatnonzero(~inter & (dist < p.hop_cutoff))
        cross = np.flatnonzero(inter & (dist < p.inter_cutoff))
        s, ds = xwch_radial(dist[intra], p.hop_n, p.hop_nc, p.hop_rc, p.hop_r0,
                            p.hop_tail_start, p.hop_cutoff)
        b1, g1 = sp_blocks(vec[intra], p.v_ss_sigma * s, p.v_sp_sigma * s, p.v_pp_sigma * s,
                           p.v_pp_pi * s, p.v_ss_sigma * ds, p.v_sp_sigma * ds,
                           p.v_pp_sigma * ds, p.v_pp_pi * ds)
        r = dist[cross]
        sw, dsw = smooth_switch(r, p.inter_taper_start, p.inter_cutoff)
        e_pi = p.inter_v_pp_pi * np.exp(-(r - p.inter_a_cc) / p.inter_decay)
        e_sg = p.inter_v_pp_sigma * np.exp(-(r - p.inter_d0) / p.inter_decay)
        zero = np.zeros_like(r)
        b2, g2 = sp_blocks(vec[cross], zero, zero, e_sg * sw, e_pi * sw, zero, zero,
                           e_sg * (dsw - sw / p.inter_decay), e_pi * (dsw - sw / p.inter_decay))
        idx = np.concatenate([intra, cross])
        bonds = _Bonds(i=i[idx], j=j[idx], shifts=shifts[idx],
                       blocks=np.concatenate([b1, b2]), grads=np.concatenate([g1, g2]))
        return bonds, idx

    def _onsite(self) -> np.ndarray:
        p = self.parameters
        return np.array([p.e_s, p.e_p, p.e_p, p.e_p])

    def _electrons(self, atoms: Atoms, bonds: _Bonds, kfrac: np.ndarray) -> dict:
        """Diagonalise H(k) on the mesh, fix μ by the electron count, return F pieces and ∂F/∂B_e."""
        p = self.parameters
        nat = len(atoms)
        n = NORB * nat
        kt = p.electronic_temperature
        lattice = bonds.shifts @ np.asarray(atoms.cell)  # (E, 3) Å
        kcart = kfrac @ (2.0 * np.pi * np.linalg.inv(np.asarray(atoms.cell)).T)
        rows = NORB * bonds.i[:, None, None] + np.arange(NORB)[None, :, None]
        cols = NORB * bonds.j[:, None, None] + np.arange(NORB)[None, None, :]
        rows, cols = np.broadcast_arrays(rows, cols)
        flat = (rows * n + cols).ravel()
        onsite = np.tile(self._onsite(), nat)
        real_only = not np.any(kfrac)
        weight = 1.0 / len(kfrac)
        eigs, vecs = [], []
        for k in kcart:
            phase = np.exp(1j * (lattice @ k))
            vals = (bonds.blocks * phase[:, None, None]).ravel()
            h = np.bincount(flat, weights=vals.real, minlength=n * n).reshape(n, n)
            if not real_only:
                h = h + 1j * np.bincount(flat, weights=vals.imag, minlength=n * n).reshape(n, n)
            h[np.diag_indices(n)] += onsite
            w, c = scipy.linalg.eigh(h, overwrite_a=True, check_finite=False)
            eigs.append(w)
            vecs.append(c)
        eigs = np.array(eigs)
        n_el = p.valence_electrons * nat

        def excess(mu: float) -> float:
            return 2.0 * weight * float(expit(-(eigs - mu) / kt).sum()) - n_el

        lo, hi = eigs.min() - 40.0 * kt, eigs.max() + 40.0 * kt
        mu = brentq(excess, lo, hi, xtol=1e-14, rtol=4 * np.finfo(float).eps, maxiter=500)
        xs = (eigs - mu) / kt
        occ = expit(-xs)
        band = 2.0 * weight * float(np.sum(occ * eigs))
        entropy = -kt * 2.0 * weight * float(np.sum(_fermi_entropy(xs)))
        # ∂F/∂B_e[a, b] = 2 Σ_k w Re(D_k[jb, ia] e^{ik·R_e}), D_k = Σ_n f_n |n><n|
        density = np.zeros(bonds.blocks.shape)
        for k, c, f in zip(kcart, vecs, occ):
            dk = (c * f) @ c.conj().T
            g = dk[cols, rows]
            if real_only:
                density += 2.0 * weight * g.real
            else:
                phase = np.exp(1j * (lattice @ k))
                density += 2.0 * weight * (g * phase[:, None, None]).real
        return {"band": band, "entropy": entropy, "mu": float(mu), "density": density,
                "eigenvalues": eigs}

    def _to_hamiltonian(self, atoms: Atoms, bonds: _Bonds) -> HamiltonianR:
        """HamiltonianR with on-site blocks first, then all directed bonds (both directions)."""
        nat = len(atoms)
        onsite_edges = np.column_stack([np.zeros((nat, 3), dtype=np.int64), np.arange(nat),
                                        np.arange(nat)])
        bond_edges = np.column_stack([bonds.shifts, bonds.i, bonds.j]).astype(np.int64)
        onsite_blocks = np.broadcast_to(np.diag(self._onsite()), (nat, NORB, NORB))
        values = np.concatenate([onsite_blocks.ravel(), bonds.blocks.ravel()])
        meta = {"engine": "aiida_mlepi.core.engine.ReferenceEngine",
                "parameters": self.parameters.as_dict(),
                "overlap": "orthogonal basis: S(R) = identity (s_values=None)",
                "energy_unit": "eV", "length_unit": "Angstrom"}
        return HamiltonianR(cell=np.asarray(atoms.cell), positions=atoms.positions.copy(),
                            numbers=atoms.numbers.copy(), basis={CARBON: (0, 1)},
                            edges=np.vstack([onsite_edges, bond_edges]), h_values=values,
                            s_values=None, pbc=tuple(bool(b) for b in atoms.pbc), metadata=meta)


def analytic_fermi_velocity(engine: ReferenceEngine, a: float) -> float:
    """Fermi velocity (m/s) of flat monolayer graphene with lattice constant ``a`` (Å).

    The π band decouples from σ for a flat layer; nearest-neighbour hopping t = V_ppπ s(a_cc),
    a_cc = a/√3, gives v_F = 3|t| a_cc/(2ħ). Second neighbours (|d| = a, inside the XWCH range)
    add t'(|f(k)|² − 3), whose gradient vanishes at K because f(K) = 0: v_F is unchanged.
    """
    p = engine.parameters
    a_cc = a / np.sqrt(3.0)
    s, _ = xwch_radial(np.array([a_cc]), p.hop_n, p.hop_nc, p.hop_rc, p.hop_r0,
                       p.hop_tail_start, p.hop_cutoff)
    t = p.v_pp_pi * float(s[0])
    return 1.5 * abs(t) * a_cc * EV_ANGSTROM_TO_M_PER_S
