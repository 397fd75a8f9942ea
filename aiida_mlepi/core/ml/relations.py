"""The edge relations of HedgeNet (paper Sec. II.2), shared by the phonon and the electron network."""

from __future__ import annotations


class EdgeRelations:
    """Mixin for model configs with ``heterogeneous``, ``r_max_intra`` and ``r_max_inter`` (Å).

    Heterogeneous: two relations, ``intra`` and ``inter``, each with its own cutoff. Homogeneous
    baseline: one relation, ``all``, with the longer of the two cutoffs.
    """

    heterogeneous: bool
    r_max_intra: float
    r_max_inter: float

    @property
    def relations(self) -> tuple[str, ...]:
        return ("intra", "inter") if self.heterogeneous else ("all",)

    @property
    def cutoffs(self) -> dict[str, float]:
        """Relation → cutoff (Å)."""
        if self.heterogeneous:
            return {"intra": self.r_max_intra, "inter": self.r_max_inter}
        return {"all": max(self.r_max_intra, self.r_max_inter)}
