"""Catalogue of layered materials: YAML entries → validated :class:`MaterialEntry` → :class:`ase.Atoms`.

The shipped catalogue is ``aiida_mlepi/catalogue/materials.yaml`` (its header documents the
fields). :func:`load_catalogue` reads it and, optionally, a user YAML of the same layout whose
entries are added, or replace the shipped entry of the same name (whole entries, no merge).
Every problem with an entry raises :class:`CatalogueError` naming the file, the entry and the field.

Lengths are in Å. Cited lengths (``a``, ``interlayer_distance``, ``thickness``) are written
``{value: ..., source: ...}`` so that every lattice constant and distance carries its source.
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from functools import cached_property
from pathlib import Path
from typing import Any, Callable, Mapping

import numpy as np
import yaml
from ase import Atoms
from ase.io import read

from .layers import get_layer_ids, set_layer_ids
from .spectral_estimators import MODELS
from .stacking import commensurate_twist, stack_layers, twisted_bilayer_graphene
from .structures import graphene_bilayer, graphene_monolayer, hbn_monolayer, tmd_monolayer

__all__ = ["CatalogueError", "CitedLength", "LayerSpec", "ObservableSpec", "MaterialEntry",
           "load_catalogue", "parse_entries", "read_catalogue_data", "SHIPPED_CATALOGUE", "HEXAGONAL_KPOINTS", "ENGINES", "OBSERVABLES"]

SHIPPED_CATALOGUE = Path(__file__).resolve().parent.parent / "catalogue" / "materials.yaml"

#: observable → spectral models of :mod:`aiida_mlepi.core.spectral_estimators` that fit it
OBSERVABLES = {"fermi_velocity": ("monolayer", "ab-bilayer"), "band_edges": ("band-edges",)}
#: dataset engines that can label an entry; 'reference' is the carbon-only tight-binding engine
ENGINES = ("reference", "gpaw", "vasp")
#: special points of the 120° hexagonal cell (fractional coordinates of the reciprocal vectors)
HEXAGONAL_KPOINTS = {"G": (0.0, 0.0), "K": (1.0 / 3.0, 1.0 / 3.0), "M": (0.5, 0.0)}
#: twisted entries: the nominal angle in the YAML must lie this close (°) to the commensurate one
TWIST_ANGLE_TOLERANCE_DEG = 0.01

_ENTRY_FIELDS = {"description", "builder", "parameters", "layers", "observable", "supercells",
                 "engine"}
_REQUIRED_ENTRY_FIELDS = _ENTRY_FIELDS - {"description"}


class CatalogueError(ValueError):
    """A catalogue file or entry is invalid (the message names the entry and the field)."""


@dataclass(frozen=True)
class CitedLength:
    """A length (Å) with the source it was taken from."""

    value_angstrom: float
    source: str


@dataclass(frozen=True)
class LayerSpec:
    """The layer with one layer id: a label and the chemical elements it contains."""

    label: str
    elements: tuple[str, ...]


@dataclass(frozen=True)
class ObservableSpec:
    """The observable to fit and the spectral model for it; band-edge k-points by name."""

    name: str
    spectral_model: str
    kpoints: tuple[str, ...] = ()

    @property
    def kpoints_frac(self) -> dict[str, tuple[float, float]]:
        """Band-edge k-points in fractional coordinates of the primitive reciprocal vectors."""
        return {k: HEXAGONAL_KPOINTS[k] for k in self.kpoints}


# --------------------------------------------------------------------------------- validation


class _Where:
    """Context of a value being checked: file, entry and dotted field, for error messages."""

    def __init__(self, origin: str, entry: str, field: str = ""):
        self.origin, self.entry, self.field = origin, entry, field

    def sub(self, name: str | int) -> "_Where":
        field = f"{self.field}[{name}]" if isinstance(name, int) else (
            f"{self.field}.{name}" if self.field else name)
        return _Where(self.origin, self.entry, field)

    def error(self, message: str) -> CatalogueError:
        where = f" field {self.field!r}" if self.field else ""
        return CatalogueError(f"{self.origin}: entry {self.entry!r}{where}: {message}")


def _mapping(value: Any, where: _Where) -> Mapping:
    if not isinstance(value, Mapping):
        raise where.error(f"expected a mapping, got {type(value).__name__} {value!r}")
    return value


def _str(value: Any, where: _Where) -> str:
    if not isinstance(value, str) or not value:
        raise where.error(f"expected a non-empty string, got {value!r}")
    return value


def _int(value: Any, where: _Where) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise where.error(f"expected an integer, got {value!r}")
    return value


def _float(value: Any, where: _Where) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not np.isfinite(value):
        raise where.error(f"expected a number, got {value!r}")
    return float(value)


def _fraction(value: Any, where: _Where) -> float:
    """A number or a fraction written 'p/q'."""
    if isinstance(value, str):
        try:
            return float(Fraction(value))
        except (ValueError, ZeroDivisionError):
            raise where.error(f"expected a number or a fraction 'p/q', got {value!r}") from None
    return _float(value, where)


def _pair(value: Any, where: _Where) -> tuple[float, float]:
    if not isinstance(value, (list, tuple)) or len(value) != 2:
        raise where.error(f"expected two numbers [x, y], got {value!r}")
    return _fraction(value[0], where.sub(0)), _fraction(value[1], where.sub(1))


def _cited(value: Any, where: _Where) -> CitedLength:
    if not isinstance(value, Mapping) or set(value) != {"value", "source"}:
        raise where.error(f"a length must be written {{value: <Å>, source: <citation>}}, got {value!r}")
    length = _float(value["value"], where.sub("value"))
    if length <= 0:
        raise where.error(f"the length must be positive (Å), got {length}")
    return CitedLength(length, _str(value["source"], where.sub("source")))


def _str_list(value: Any, where: _Where) -> tuple[str, ...]:
    if not isinstance(value, list) or not value:
        raise where.error(f"expected a non-empty list of names, got {value!r}")
    return tuple(_str(v, where.sub(i)) for i, v in enumerate(value))


_Checker = Callable[[Any, _Where], Any]
#: monolayer name → (builder, {parameter: (checker, required)})
_MONOLAYERS: dict[str, tuple[Callable[..., Atoms], dict[str, tuple[_Checker, bool]]]] = {
    "graphene": (graphene_monolayer, {"a": (_cited, True)}),
    "hbn": (hbn_monolayer, {"a": (_cited, True)}),
    "tmd": (tmd_monolayer, {"metal": (_str, True), "chalcogen": (_str, True), "a": (_cited, True),
                            "thickness": (_cited, True)}),
}


def _check_fields(raw: Mapping, schema: Mapping[str, tuple[_Checker, bool]], where: _Where) -> dict:
    unknown = sorted(set(raw) - set(schema))
    if unknown:
        raise where.sub(unknown[0]).error(f"unknown field; expected one of {sorted(schema)}")
    out = {}
    for name, (check, required) in schema.items():
        if name in raw:
            out[name] = check(raw[name], where.sub(name))
        elif required:
            raise where.sub(name).error("missing required field")
    return out


def _monolayer(value: Any, where: _Where) -> dict:
    raw = dict(_mapping(value, where))
    kind = raw.pop("monolayer", None)
    if kind not in _MONOLAYERS:
        raise where.sub("monolayer").error(f"unknown monolayer {kind!r}; expected one of {sorted(_MONOLAYERS)}")
    return {"monolayer": kind, **_check_fields(raw, _MONOLAYERS[kind][1], where)}


_BUILDERS: dict[str, dict[str, tuple[_Checker, bool]]] = {
    "graphene_bilayer": {"stacking": (_str, True), "a": (_cited, True),
                         "interlayer_distance": (_cited, True)},
    "twisted_bilayer_graphene": {"m": (_int, True), "r": (_int, False),
                                 "twist_angle_deg": (_float, True), "a": (_cited, True),
                                 "interlayer_distance": (_cited, True)},
    "stack_layers": {"bottom": (_monolayer, True), "top": (_monolayer, True),
                     "interlayer_distance": (_cited, True), "max_strain": (_float, False),
                     "max_atoms": (_int, False), "twist_deg": (_float, False),
                     "top_shift": (_pair, False)},
    "file": {"path": (_str, True), "interlayer_distance": (_cited, False)},
}


def _plain(params: Mapping) -> dict:
    """Builder keyword arguments: cited lengths replaced by their values."""
    return {k: (v.value_angstrom if isinstance(v, CitedLength) else v) for k, v in params.items()}


def _build_monolayer(spec: Mapping) -> Atoms:
    kwargs = _plain({k: v for k, v in spec.items() if k != "monolayer"})
    return _MONOLAYERS[spec["monolayer"]][0](**kwargs)


# --------------------------------------------------------------------------------- the entry


@dataclass(frozen=True)
class MaterialEntry:
    """One validated catalogue entry. :meth:`build` gives the structure with ``layer_ids``."""

    name: str
    description: str
    builder: str
    parameters: Mapping[str, Any]  #: validated builder arguments (lengths as CitedLength)
    layers: tuple[LayerSpec, ...]  #: index = layer id, bottom (0) up
    observable: ObservableSpec
    supercells: tuple[tuple[int, int], ...]  #: suggested in-plane supercells of the built cell
    engine: str
    origin: str  #: the YAML file the entry came from

    @property
    def interlayer_distance(self) -> float | None:
        """Catalogued interlayer gap (Å; highest atom of one layer to lowest of the next)."""
        cited = self.parameters.get("interlayer_distance")
        return None if cited is None else cited.value_angstrom

    @property
    def elements(self) -> tuple[str, ...]:
        return tuple(sorted({e for layer in self.layers for e in layer.elements}))

    def _error(self, field: str, message: str) -> CatalogueError:
        return _Where(self.origin, self.name, field).error(message)

    def _construct(self) -> Atoms:
        p = self.parameters
        if self.builder == "graphene_bilayer":
            return graphene_bilayer(**_plain(p))
        if self.builder == "twisted_bilayer_graphene":
            kwargs = _plain({k: v for k, v in p.items() if k != "twist_angle_deg"})
            return twisted_bilayer_graphene(**kwargs)
        if self.builder == "stack_layers":
            kwargs = _plain({k: v for k, v in p.items() if k not in ("bottom", "top")})
            return stack_layers(_build_monolayer(p["bottom"]), _build_monolayer(p["top"]), **kwargs)
        path = Path(p["path"])
        if not path.is_absolute():
            path = Path(self.origin).parent / path
        if not path.is_file():
            raise self._error("parameters.path", f"structure file {str(path)!r} does not exist")
        try:
            atoms = read(path)
        except Exception as exc:  # ASE raises many types for unreadable files
            raise self._error("parameters.path", f"cannot read {str(path)!r}: {exc}") from None
        if "layer_ids" not in atoms.arrays:
            set_layer_ids(atoms)
        return atoms

    def build(self) -> Atoms:
        """The structure (:class:`ase.Atoms`, ``layer_ids`` set, layers checked against ``layers``).

        ``atoms.info`` gets ``catalogue_entry`` and ``layer_strain_percent`` (see :attr:`strain`).
        """
        try:
            atoms = self._construct()
        except CatalogueError:
            raise
        except ValueError as exc:  # StackingError, LayerAssignmentError, builder checks
            raise self._error("parameters", f"the builder {self.builder!r} failed: {exc}") from None
        ids = get_layer_ids(atoms)
        n_layers = len(np.unique(ids))
        if n_layers != len(self.layers):
            raise self._error("layers", f"lists {len(self.layers)} layers but the structure has {n_layers}")
        symbols = np.array(atoms.get_chemical_symbols())
        for layer_id, layer in enumerate(self.layers):
            found = tuple(sorted({str(s) for s in symbols[ids == layer_id]}))
            if found != tuple(sorted(layer.elements)):
                raise self._error(f"layers[{layer_id}]", f"expects elements {sorted(layer.elements)} "
                                  f"but layer {layer_id} of the structure holds {list(found)}")
        atoms.info["catalogue_entry"] = self.name
        atoms.info["layer_strain_percent"] = list(self._strain_from(atoms))
        return atoms

    def _strain_from(self, atoms: Atoms) -> tuple[float, ...]:
        strain = [0.0] * len(self.layers)
        if "stacking_top_strain" in atoms.info:  # stack_layers: only the top layer is strained
            principal = np.linalg.eigvalsh(np.asarray(atoms.info["stacking_top_strain"]))
            strain[-1] = 100.0 * float(principal[np.argmax(np.abs(principal))])
        return tuple(strain)

    @cached_property
    def strain(self) -> tuple[float, ...]:
        """Strain applied to each layer (index = layer id), % : the principal (Biot) strain of
        largest magnitude, signed (negative = compressed) relative to the catalogued lattice
        constant; zero for layers built at their own lattice constant."""
        return tuple(self.build().info["layer_strain_percent"])


def _entry(name: Any, raw: Any, origin: str) -> MaterialEntry:
    if not isinstance(name, str) or not name:
        raise CatalogueError(f"{origin}: entry names must be non-empty strings, got {name!r}")
    where = _Where(origin, name)
    raw = _mapping(raw, where)
    unknown = sorted(set(raw) - _ENTRY_FIELDS)
    if unknown:
        raise where.sub(unknown[0]).error(f"unknown field; expected one of {sorted(_ENTRY_FIELDS)}")
    for field in sorted(_REQUIRED_ENTRY_FIELDS):
        if field not in raw:
            raise where.sub(field).error("missing required field")
    builder = raw["builder"]
    if builder not in _BUILDERS:
        raise where.sub("builder").error(f"unknown builder {builder!r}; expected one of {sorted(_BUILDERS)}")
    w_params = where.sub("parameters")
    params = _check_fields(_mapping(raw["parameters"], w_params), _BUILDERS[builder], w_params)
    if builder == "twisted_bilayer_graphene":
        try:
            exact = commensurate_twist(params["m"], params.get("r", 1)).theta_deg
        except ValueError as exc:
            raise w_params.sub("m").error(str(exc)) from None
        if abs(exact - params["twist_angle_deg"]) > TWIST_ANGLE_TOLERANCE_DEG:
            raise w_params.sub("twist_angle_deg").error(
                f"{params['twist_angle_deg']}° is not the angle of (m, r) = "
                f"({params['m']}, {params.get('r', 1)}): {exact:.4f}°")

    w_layers = where.sub("layers")
    if not isinstance(raw["layers"], list) or not raw["layers"]:
        raise w_layers.error("expected a non-empty list of {label, elements}, one per layer id")
    layers = []
    for i, item in enumerate(raw["layers"]):
        w = w_layers.sub(i)
        item = _check_fields(_mapping(item, w), {"label": (_str, True), "elements": (_str_list, True)}, w)
        layers.append(LayerSpec(item["label"], item["elements"]))

    w_obs = where.sub("observable")
    obs = _check_fields(_mapping(raw["observable"], w_obs), {
        "name": (_str, True), "spectral_model": (_str, True), "kpoints": (_str_list, False)}, w_obs)
    if obs["name"] not in OBSERVABLES:
        raise w_obs.sub("name").error(f"unknown observable {obs['name']!r}; expected one of {sorted(OBSERVABLES)}")
    if obs["spectral_model"] not in OBSERVABLES[obs["name"]] or obs["spectral_model"] not in MODELS:
        raise w_obs.sub("spectral_model").error(
            f"{obs['spectral_model']!r} does not fit {obs['name']!r}; use one of {list(OBSERVABLES[obs['name']])}")
    kpoints = tuple(obs.get("kpoints", ()))
    if obs["name"] == "band_edges" and not kpoints:
        raise w_obs.sub("kpoints").error("band_edges needs the band-edge k-points, e.g. [K]")
    bad = [k for k in kpoints if k not in HEXAGONAL_KPOINTS]
    if bad:
        raise w_obs.sub("kpoints").error(f"unknown k-point {bad[0]!r}; expected names of {sorted(HEXAGONAL_KPOINTS)}")

    w_sc = where.sub("supercells")
    cells = raw["supercells"]
    if not isinstance(cells, list) or not cells:
        raise w_sc.error("expected a non-empty list of [n1, n2]")
    supercells = []
    for i, cell in enumerate(cells):
        if (not isinstance(cell, list) or len(cell) != 2
                or any(isinstance(n, bool) or not isinstance(n, int) or n < 1 for n in cell)):
            raise w_sc.sub(i).error(f"expected two positive integers [n1, n2], got {cell!r}")
        supercells.append((cell[0], cell[1]))

    engine = raw["engine"]
    if engine not in ENGINES:
        raise where.sub("engine").error(f"unknown engine {engine!r}; expected one of {list(ENGINES)}")
    elements = {e for layer in layers for e in layer.elements}
    if engine == "reference" and elements != {"C"}:
        raise where.sub("engine").error(f"the reference engine labels pure carbon only, this entry "
                                        f"holds {sorted(elements)}; use 'gpaw'")
    description = _str(raw["description"], where.sub("description")) if "description" in raw else ""
    return MaterialEntry(name=name, description=description,
                         builder=builder, parameters=params, layers=tuple(layers),
                         observable=ObservableSpec(obs["name"], obs["spectral_model"], kpoints),
                         supercells=tuple(supercells), engine=engine, origin=origin)


def read_catalogue_data(path: Path) -> Mapping:
    """The ``materials`` mapping of the catalogue file ``path`` (raw YAML, not yet checked)."""
    origin = str(path)
    if not path.is_file():
        raise CatalogueError(f"catalogue file {origin!r} does not exist")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise CatalogueError(f"{origin}: not valid YAML: {exc}") from None
    if not isinstance(data, Mapping) or not isinstance(data.get("materials"), Mapping):
        raise CatalogueError(f"{origin}: expected a top-level mapping 'materials: {{name: entry, ...}}'")
    return data["materials"]


def parse_entries(materials: Mapping, origin: str) -> tuple[dict[str, MaterialEntry], dict[str, CatalogueError]]:
    """Every entry of ``materials`` checked: (valid entries, {name: the error of each invalid entry})."""
    entries, errors = {}, {}
    for name, raw in materials.items():
        try:
            entries[name] = _entry(name, raw, origin)
        except CatalogueError as exc:
            errors[str(name)] = exc
    return entries, errors


def _read_entries(path: Path) -> dict[str, MaterialEntry]:
    entries, errors = parse_entries(read_catalogue_data(path), str(path))
    if errors:
        raise next(iter(errors.values()))
    return entries


def load_catalogue(user_file: str | Path | None = None) -> dict[str, MaterialEntry]:
    """The shipped catalogue, plus the entries of ``user_file`` (same layout) if given.

    A user entry with the name of a shipped one replaces it whole. Raises
    :class:`CatalogueError` (naming the file, entry and field) for any invalid entry.
    """
    entries = _read_entries(SHIPPED_CATALOGUE)
    if user_file is not None:
        entries.update(_read_entries(Path(user_file)))
    return entries
