"""Parameters of the reference tight-binding engine, with their sources.

Units: energies eV, lengths Å. Every field is documented with the reference it comes from.

Sources
-------
* [XWCH] C. H. Xu, C. Z. Wang, C. T. Chan and K. M. Ho, J. Phys.: Condens. Matter 4, 6047 (1992):
  orthogonal sp³ tight binding of carbon (on-site energies, hopping integrals, scaling function
  s(r), repulsive pair term φ(r) and embedding polynomial f(x)).
* [MK] P. Moon and M. Koshino, Phys. Rev. B 87, 205404 (2013), and G. Trambly de Laissardière,
  D. Mayou and L. Magaud, Nano Lett. 10, 804 (2010): exponential inter-layer p–p hopping
  V_ppπ(d) = V⁰_ppπ exp(−(d − a_cc)/δ), V_ppσ(d) = V⁰_ppσ exp(−(d − d_0)/δ), δ = 0.184·a.
* [GHL] L. A. Girifalco, M. Hodak and R. S. Lee, Phys. Rev. B 62, 13104 (2000): Lennard-Jones
  ε = 2.39 meV, σ = 3.41 Å for the graphitic C–C van der Waals interaction.

Adjustment (inter-layer repulsion)
----------------------------------
With an orthogonal basis the inter-layer hopping lowers the band energy by ∝ t² ∝ e^{−2d/δ}
(measured: decay constant 4.45 Å⁻¹ for AB bilayer graphene) with none of the Pauli/overlap
repulsion a non-orthogonal basis would give. With only the GHL Lennard-Jones the AB bilayer then
collapses (F decreases monotonically down to d < 3 Å). We therefore add a pair repulsion
A exp(−(d − 3.35 Å)/λ) between atoms of different layers, tapered like the hopping, with
λ = δ/3 (steeper than the attraction, so it wins at short range) and A fitted so that the AB
bilayer's equilibrium distance is 3.40 Å (the LJ minimum of GHL's continuum model, σ = 3.41 Å,
close to the experimental 3.35 Å): A = 0.01517 eV, fitted at a = 2.455 Å, 12×12 k mesh,
k_B T_el = 0.1 eV. Result: AB d = 3.40 Å, AA d ≈ 3.55 Å, AB favoured by ≈ 3 meV/atom.

The smooth tails (between ``*_tail_start`` and ``*_cutoff``) are this package's own choice: a
quintic polynomial matching value, slope and curvature of the XWCH form at the tail start and
reaching zero with zero slope and curvature at the cutoff (C² everywhere). XWCH used a cubic
(C¹) tail over the same intervals; C² keeps the force constants (phonons) continuous.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields


class EngineParameterError(ValueError):
    """Engine parameters that cannot describe a physical model."""


@dataclass(frozen=True)
class EngineParameters:
    """All parameters of :class:`~aiida_mlepi.core.engine.reference.ReferenceEngine` (eV, Å)."""

    # --- intra-layer sp³ tight binding [XWCH]
    e_s: float = -2.99  #: on-site energy of C 2s, eV [XWCH]
    e_p: float = 3.71  #: on-site energy of C 2p, eV [XWCH]
    v_ss_sigma: float = -5.0  #: eV at r0 [XWCH]
    v_sp_sigma: float = 4.7  #: eV at r0 [XWCH]
    v_pp_sigma: float = 5.5  #: eV at r0 [XWCH]
    v_pp_pi: float = -1.55  #: eV at r0 [XWCH]
    hop_r0: float = 1.536329  #: Å, reference distance of the hopping integrals [XWCH]
    hop_n: float = 2.0  #: exponent n of s(r) [XWCH]
    hop_nc: float = 6.5  #: exponent n_c of s(r) [XWCH]
    hop_rc: float = 2.18  #: Å, r_c of s(r) [XWCH]
    hop_tail_start: float = 2.45  #: Å, r_1: start of the polynomial tail of s(r) [XWCH]
    hop_cutoff: float = 2.6  #: Å, r_m: s(r) = 0 beyond [XWCH]
    # --- intra-layer repulsion E_rep = Σ_i f(Σ_j φ(r_ij)) [XWCH]
    rep_phi0: float = 8.18555  #: eV [XWCH]
    rep_m: float = 3.30304  #: [XWCH]
    rep_mc: float = 8.6655  #: [XWCH]
    rep_dc: float = 2.1052  #: Å [XWCH]
    rep_d0: float = 1.64  #: Å [XWCH]
    rep_tail_start: float = 2.57  #: Å, d_1 [XWCH]
    rep_cutoff: float = 2.6  #: Å, d_m [XWCH]
    rep_f: tuple[float, ...] = (
        -2.5909765118191,
        0.5721151498619,
        -1.7896349903996e-3,
        2.3539221516757e-5,
        -1.24251169551587e-7,
    )  #: coefficients c_0…c_4 of f(x) = Σ c_n xⁿ (eV) [XWCH]
    # --- inter-layer p–p hopping [MK]
    inter_v_pp_pi: float = -2.7  #: eV, V⁰_ppπ at d = inter_a_cc [MK]
    inter_v_pp_sigma: float = 0.48  #: eV, V⁰_ppσ at d = inter_d0 [MK]
    inter_a_cc: float = 1.42  #: Å [MK]
    inter_d0: float = 3.35  #: Å [MK]
    inter_decay: float = 0.184 * 2.46  #: Å, δ = 0.184 a [MK]
    inter_taper_start: float = 5.0  #: Å, hopping smoothly (C²) switched off from here …
    inter_cutoff: float = 6.0  #: Å, … to zero here (this package's choice)
    # --- inter-layer exponential (overlap) repulsion: this package's adjustment, see module docstring
    inter_rep_a: float = 0.01517  #: eV, A of A exp(−(d − inter_d0)/inter_rep_decay); fitted, see above
    inter_rep_decay: float = 0.184 * 2.46 / 3.0  #: Å, λ = δ/3 (steeper than the t² ∝ e^{−2d/δ} attraction)
    # --- inter-layer Lennard-Jones [GHL]
    lj_epsilon: float = 2.39e-3  #: eV [GHL]
    lj_sigma: float = 3.41  #: Å [GHL]
    lj_switch_start: float = 9.0  #: Å, C² switching of the LJ energy from here …
    lj_cutoff: float = 10.0  #: Å, … to zero here (this package's choice)
    # --- electrons
    electronic_temperature: float = 0.1  #: k_B T_el of the Fermi–Dirac smearing, eV
    valence_electrons: int = 4  #: per C atom (2s² 2p²), spin-degenerate bands

    def __post_init__(self) -> None:
        for name in ("hop_r0", "hop_rc", "rep_dc", "rep_d0", "inter_decay", "lj_sigma",
                     "electronic_temperature"):
            if getattr(self, name) <= 0:
                raise EngineParameterError(f"{name} must be positive, got {getattr(self, name)}")
        for start, stop in (("hop_tail_start", "hop_cutoff"), ("rep_tail_start", "rep_cutoff"),
                            ("inter_taper_start", "inter_cutoff"), ("lj_switch_start", "lj_cutoff")):
            if not 0 < getattr(self, start) < getattr(self, stop):
                raise EngineParameterError(
                    f"need 0 < {start} < {stop}, got {getattr(self, start)} and {getattr(self, stop)}"
                )
        object.__setattr__(self, "rep_f", tuple(float(c) for c in self.rep_f))

    @property
    def max_cutoff(self) -> float:
        """Largest interaction range (Å): the neighbour-list radius."""
        return max(self.hop_cutoff, self.rep_cutoff, self.inter_cutoff, self.lj_cutoff)

    def as_dict(self) -> dict:
        """Plain JSON-serialisable dict (tuples become lists)."""
        out = asdict(self)
        out["rep_f"] = list(self.rep_f)
        return out

    @classmethod
    def from_dict(cls, data: dict) -> "EngineParameters":
        """Inverse of :meth:`as_dict`; unknown keys raise :class:`EngineParameterError`."""
        known = {f.name for f in fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise EngineParameterError(f"unknown engine parameters: {sorted(unknown)}")
        data = dict(data)
        if "rep_f" in data:
            data["rep_f"] = tuple(data["rep_f"])
        return cls(**data)
