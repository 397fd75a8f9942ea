"""Bistritzer–MacDonald continuum model of twisted bilayer graphene: the expectation for flat bands.

R. Bistritzer and A. H. MacDonald, PNAS 108, 12233 (2011) [BM]. One valley (K), one spin: each layer
is a Dirac cone ħv_F (k·σ) (the ±θ/2 rotation of the Pauli matrices is dropped, an O(θ) correction),
layer 1's cone at k = 0 and layer 2's at q₁, coupled by the three hoppings

    T_j = w₀ σ₀ + w₁ (σ_x cos φ_j + σ_y sin φ_j),  φ_j = 2π (j − 1)/3,  layer-1 k → layer-2 k + q_j,

(kinetic momenta measured from each layer's Dirac point) with q₁ = k_θ (0, −1), q₂,₃ = k_θ (±√3/2, 1/2), k_θ = 2 |K| sin(θ/2), |K| = 4π/(3a). w₀ = w₁ is
the unrelaxed (rigid) bilayer; relaxation shrinks the AA regions, w₀/w₁ ≈ 0.8 (Nam & Koshino,
PRB 96, 075311 (2017)). The dimensionless coupling α = w₁/(ħ v_F k_θ) sets the physics; the first
magic angle (Dirac velocity zero) is at α ≈ 0.586 (BM: ħ v_F |K| = 9.905 eV, w = 110 meV, θ ≈ 1.05°).

Moiré high-symmetry points in this gauge: K_m = 0 and K'_m = q₁ (the two layers' Dirac points),
M_m = q₁/2, Γ_m = −q₁ (the third class of the triangular lattice 3q₁ = −b₁ − b₂ generates). Energies in eV relative to the Dirac energy; lengths Å, k Å⁻¹.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

#: BM's parameters: ħ v_F |K| = 9.905 eV with a = 2.46 Å, w₀ = w₁ = 110 meV [BM]
BM_HBAR_VF_K = 9.905
BM_W = 0.110
BM_LATTICE_CONSTANT = 2.46
#: α of the first magic angle [BM]
FIRST_MAGIC_ALPHA = 0.586


class ContinuumModelError(ValueError):
    """Parameters that do not define a continuum model."""


@dataclass(frozen=True)
class ContinuumModel:
    """One valley of twisted bilayer graphene (eV, Å)."""

    theta_deg: float
    hbar_vf: float = BM_HBAR_VF_K / (4 * np.pi / (3 * BM_LATTICE_CONSTANT))  #: ħ v_F, eV·Å
    w0: float = BM_W  #: AA-site interlayer coupling, eV
    w1: float = BM_W  #: AB-site interlayer coupling, eV
    lattice_constant: float = BM_LATTICE_CONSTANT  #: graphene a, Å
    shells: int = 5  #: plane waves |n₁|, |n₂| ≤ shells per layer

    def __post_init__(self) -> None:
        if not 0 < self.theta_deg < 30:
            raise ContinuumModelError(f"twist angle must be in (0°, 30°), got {self.theta_deg}")
        if self.hbar_vf <= 0 or self.lattice_constant <= 0 or self.shells < 1:
            raise ContinuumModelError("hbar_vf, lattice_constant and shells must be positive")

    @property
    def k_theta(self) -> float:
        """|K₁ − K₂| = 2 |K| sin(θ/2), Å⁻¹."""
        return 2 * 4 * np.pi / (3 * self.lattice_constant) * np.sin(np.radians(self.theta_deg) / 2)

    @property
    def alpha(self) -> float:
        """w₁/(ħ v_F k_θ): ≈ 0.586 at the first magic angle."""
        return self.w1 / (self.hbar_vf * self.k_theta)

    def q(self) -> np.ndarray:
        """q₁, q₂, q₃ (rows, Å⁻¹)."""
        return self.k_theta * np.array([[0.0, -1.0], [np.sqrt(3) / 2, 0.5], [-np.sqrt(3) / 2, 0.5]])

    def points(self) -> dict[str, np.ndarray]:
        """Moiré high-symmetry k (Å⁻¹) in this gauge."""
        q = self.q()
        return {"Γ_m": -q[0], "K_m": np.zeros(2), "M_m": 0.5 * q[0]}

    def hamiltonian(self, k: np.ndarray) -> np.ndarray:
        """The dense Bloch matrix (eV) at moiré k (Å⁻¹): [layer 1 | layer 2] × plane waves × (A, B)."""
        q = self.q()
        b1, b2 = q[1] - q[0], q[2] - q[0]
        n = np.arange(-self.shells, self.shells + 1)
        n1, n2 = [a.ravel() for a in np.meshgrid(n, n, indexing="ij")]
        g = n1[:, None] * b1 + n2[:, None] * b2
        ng = len(g)
        h = np.zeros((4 * ng, 4 * ng), dtype=complex)
        # kinetic momenta relative to each layer's own Dirac point: layer 1 k + G, layer 2 k − q₁ + G
        for layer, shift in ((0, np.zeros(2)), (1, -q[0])):
            p = np.asarray(k, dtype=float)[:2] + g + shift
            off = self.hbar_vf * (p[:, 0] - 1j * p[:, 1])
            rows = 2 * (layer * ng + np.arange(ng))
            h[rows, rows + 1] = off
            h[rows + 1, rows] = off.conj()
        index = {(a, b): i for i, (a, b) in enumerate(zip(n1, n2))}
        for j in range(3):
            phi = 2 * np.pi * j / 3
            t = np.array([[self.w0, self.w1 * np.exp(-1j * phi)], [self.w1 * np.exp(1j * phi), self.w0]])
            # absolute momentum is conserved: layer-1 k + G couples to layer-2 (relative) k + G − q_j
            # = k − q₁ + G' with G' = G − (q_j − q₁), q₂ − q₁ = b₁, q₃ − q₁ = b₂
            dn = {0: (0, 0), 1: (-1, 0), 2: (0, -1)}[j]
            for i, (a, b) in enumerate(zip(n1, n2)):
                i2 = index.get((a + dn[0], b + dn[1]))
                if i2 is not None:
                    r, c = 2 * i, 2 * (ng + i2)
                    h[r:r + 2, c:c + 2] = t
                    h[c:c + 2, r:r + 2] = t.conj().T
        return h

    def energies(self, k: np.ndarray) -> np.ndarray:
        """All eigenvalues (eV, ascending) at k."""
        return np.linalg.eigvalsh(self.hamiltonian(k))

    def flat_bands(self, k: np.ndarray) -> np.ndarray:
        """The two bands nearest the Dirac energy (the middle of the spectrum) at k, eV."""
        e = self.energies(k)
        mid = len(e) // 2
        return e[mid - 1:mid + 1]

    def flat_band_width(self, ks: dict[str, np.ndarray] | None = None) -> float:
        """max − min (eV) of the two flat bands over ``ks`` (default Γ_m, K_m, M_m)."""
        ks = self.points() if ks is None else ks
        e = np.concatenate([self.flat_bands(k) for k in ks.values()])
        return float(e.max() - e.min())


def magic_angle_deg(hbar_vf: float, w1: float, lattice_constant: float = BM_LATTICE_CONSTANT,
                    alpha: float = FIRST_MAGIC_ALPHA) -> float:
    """θ (degrees) at which w₁/(ħ v_F k_θ) = ``alpha`` (default: the first magic angle)."""
    k_theta = w1 / (alpha * hbar_vf)
    return float(np.degrees(2 * np.arcsin(k_theta * 3 * lattice_constant / (8 * np.pi))))
