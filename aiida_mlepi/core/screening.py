"""Screening files: which catalogue materials to run, with which engine, workflow and protocol.

A screening file (YAML) lists runs; :func:`load_screening` checks *every* run before anything is
submitted and raises one :class:`ScreeningError` whose ``problems`` hold one line per bad run (or per
bad catalogue entry of the file). Layout::

    defaults:                 # optional, applied to every run (a run's own keys win)
      workflow: loop          # loop: the engine-only EPI loop | pipeline: the MLEPI pipeline (datasets, HedgeNet)
      protocol: fast          # a protocol of aiida_mlepi/protocols/pipeline.yaml
      overrides: {...}        # merged into the protocol (keys of pipeline.yaml, plus `observable_settings`, `loop`);
                              # a run's own `overrides` replace these whole
    materials:                # optional: catalogue entries (layout of aiida_mlepi/catalogue/materials.yaml)
      my-material: {...}      # added to the shipped catalogue (a shipped name is replaced)
    screen:                   # the runs: a catalogue name, or a mapping
      - ab-bilayer-graphene
      - {material: ab-bilayer-graphene, name: ab-bilayer-graphene-gpaw, engine: gpaw, workflow: pipeline,
         protocol: fast, overrides: {n_check: 0}}

``engine`` defaults to the catalogue entry's engine. Each run has a unique ``name`` (default: the material)
and a :attr:`ScreeningRun.key`: name, engine, workflow, protocol and a hash of everything that defines the
computation (the catalogue entry with its cited lengths, the overrides). The submission controller stores the
key on the process it submits, so that a rerun recognises what is done, and a changed setting is a new run.

This module imports no AiiDA: protocol names are passed in by the caller.
"""

from __future__ import annotations

import dataclasses
import difflib
import hashlib
import json
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from .catalogue import ENGINES, SHIPPED_CATALOGUE, CatalogueError, MaterialEntry, parse_entries, read_catalogue_data

__all__ = ["WORKFLOWS", "LOOP_ENGINES", "ScreeningError", "ScreeningRun", "ScreeningPlan", "load_screening",
           "engine_elements"]

#: ``workflow`` of a run: the engine-only EPI loop (EpiLoopWorkChain) or the whole MLEPI pipeline (MlepiWorkChain)
WORKFLOWS = ("loop", "pipeline")
#: engines the engine-only loop can use (they give forces and H(R): the reference engine in process, GPAW as CalcJobs)
LOOP_ENGINES = ("reference", "gpaw")
_RUN_FIELDS = {"material", "name", "engine", "workflow", "protocol", "overrides"}
_DEFAULT_FIELDS = {"workflow", "protocol", "overrides", "engine"}
_TOP_FIELDS = {"defaults", "materials", "screen"}


class ScreeningError(ValueError):
    """A screening file is unusable: ``problems`` has one line per bad run or entry."""

    def __init__(self, origin: str, problems: list[str]):
        self.origin, self.problems = origin, list(problems)
        lines = "\n".join(f"  - {p}" for p in self.problems)
        super().__init__(f"{origin}: {len(self.problems)} problem(s), nothing was submitted:\n{lines}")


@dataclass(frozen=True)
class ScreeningRun:
    """One run of a screening: a catalogue material through one workflow, engine and protocol."""

    name: str  #: unique within the screening; the ``material`` label of the structure node
    entry: MaterialEntry
    engine: str
    workflow: str
    protocol: str
    overrides: Mapping[str, Any] = field(default_factory=dict)

    @property
    def settings_hash(self) -> str:
        """SHA-256 (first 12 hex digits) of everything that defines the computation."""
        payload = {"entry": _entry_payload(self.entry), "engine": self.engine, "workflow": self.workflow,
                   "protocol": self.protocol, "overrides": self.overrides}
        text = json.dumps(payload, sort_keys=True, default=str, separators=(",", ":"))
        return hashlib.sha256(text.encode()).hexdigest()[:12]

    @property
    def key(self) -> str:
        """The unique key of the run (stored as an extra on its process)."""
        return f"{self.name}|{self.engine}|{self.workflow}|{self.protocol}|{self.settings_hash}"

    def as_dict(self) -> dict[str, Any]:
        """JSON-serialisable description (stored as an extra on the structure node of the run)."""
        return {"name": self.name, "material": self.entry.name, "engine": self.engine, "workflow": self.workflow,
                "protocol": self.protocol, "overrides": dict(self.overrides), "key": self.key,
                "observable": dataclasses.asdict(self.entry.observable), "origin": self.entry.origin}


@dataclass(frozen=True)
class ScreeningPlan:
    """The checked runs of a screening file, in file order."""

    origin: str
    runs: tuple[ScreeningRun, ...]


def _entry_payload(entry: MaterialEntry) -> dict:
    return {"builder": entry.builder, "parameters": {k: (dataclasses.asdict(v) if dataclasses.is_dataclass(v) else v)
                                                     for k, v in entry.parameters.items()},
            "layers": [dataclasses.asdict(layer) for layer in entry.layers],
            "observable": dataclasses.asdict(entry.observable)}


def engine_elements(engine: str) -> frozenset[str] | None:
    """Chemical elements ``engine`` can compute; None where that cannot be known here (VASP: the POTCARs of
    the cluster). GPAW: the elements with a PBE PAW setup and a dzp basis in GPAW's setup paths."""
    if engine == "reference":
        from .engine import SUPPORTED_ELEMENTS

        return frozenset(SUPPORTED_ELEMENTS)
    if engine == "gpaw":
        try:
            from .engine.gpaw_lcao import configure_setup_path

            configure_setup_path()
            from gpaw import setup_paths
        except Exception:  # noqa: BLE001 - GPAW absent or broken: it computes nothing here
            return frozenset()
        found: set[str] = set()
        for directory in map(Path, setup_paths):
            if not directory.is_dir():
                continue
            names = {p.name for p in directory.iterdir()}
            for name in names:
                symbol, _, rest = name.partition(".")
                if rest in ("PBE", "PBE.gz") and ({f"{symbol}.dzp.basis", f"{symbol}.dzp.basis.gz"} & names):
                    found.add(symbol)
        return frozenset(found)
    return None


def _closest(name: str, known: Collection[str]) -> str:
    match = difflib.get_close_matches(name, list(known), n=1)
    return f" (did you mean {match[0]!r}?)" if match else ""


def _run_problem(run: ScreeningRun, protocols: Collection[str]) -> str | None:
    """Why ``run`` cannot be computed, or None (checked before anything is submitted)."""
    entry = run.entry
    if run.workflow not in WORKFLOWS:
        return f"unknown workflow {run.workflow!r}; expected one of {list(WORKFLOWS)}"
    if run.engine not in ENGINES:
        return f"unknown engine {run.engine!r}; expected one of {list(ENGINES)}"
    if protocols and run.protocol not in protocols:
        return f"unknown protocol {run.protocol!r}; expected one of {sorted(protocols)}"
    if not isinstance(run.overrides, Mapping):
        return f"overrides must be a mapping, got {run.overrides!r}"
    if len(entry.layers) < 2:
        return (f"material {entry.name!r} has {len(entry.layers)} layer; the EPI loop of a van der Waals stack "
                "needs ≥ 2 layers")
    if run.workflow == "loop" and run.engine not in LOOP_ENGINES:
        return (f"the engine-only loop (workflow 'loop') needs an engine that gives both forces and H(R) "
                f"({', '.join(LOOP_ENGINES)}), not {run.engine!r}; use workflow 'pipeline' for {run.engine!r}")
    supported = engine_elements(run.engine)
    if supported is not None:
        missing = sorted(set(entry.elements) - supported)
        if missing:
            hint = " (is GPAW installed, with gpaw-data?)" if run.engine == "gpaw" and not supported else ""
            return (f"engine {run.engine!r} has no parameters for element(s) {', '.join(missing)} of material "
                    f"{entry.name!r}{hint}")
    try:
        entry.build()
    except CatalogueError as exc:
        return f"material {entry.name!r} cannot be built: {exc}"
    return None


def load_screening(path: str | Path, protocols: Collection[str] = (), engine: str | None = None,
                   protocol: str | None = None) -> ScreeningPlan:
    """The runs of the screening file ``path``, every one checked.

    ``protocols``: the protocol names a run may use (empty: not checked). ``engine`` / ``protocol`` (the
    command line's ``--engine`` / ``--protocol``) replace those of every run. Raises :class:`ScreeningError`
    with one line per problem (malformed YAML, unknown material, an element the engine lacks, a single-layer
    entry, …) — all of them, not just the first.
    """
    origin = str(path)
    path = Path(path)
    if not path.is_file():
        raise ScreeningError(origin, [f"screening file {origin!r} does not exist"])
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise ScreeningError(origin, [f"not valid YAML: {' '.join(str(exc).split())}"]) from None
    if not isinstance(data, Mapping) or "screen" not in data:
        raise ScreeningError(origin, ["expected a top-level mapping with 'screen: [material, ...]' (and optional "
                                      "'defaults', 'materials')"])
    problems = [f"unknown top-level key {key!r}; expected one of {sorted(_TOP_FIELDS)}"
                for key in sorted(set(data) - _TOP_FIELDS, key=str)]

    catalogue, _ = parse_entries(read_catalogue_data(SHIPPED_CATALOGUE), str(SHIPPED_CATALOGUE))
    bad_entries: dict[str, str] = {}
    if data.get("materials") is not None:
        if not isinstance(data["materials"], Mapping):
            problems.append("'materials' must be a mapping {name: catalogue entry}")
        else:
            own, errors = parse_entries(data["materials"], origin)
            catalogue.update(own)
            for name, error in errors.items():
                bad_entries[name] = str(error)
                catalogue.pop(name, None)

    defaults = data.get("defaults") or {}
    if not isinstance(defaults, Mapping):
        problems.append(f"'defaults' must be a mapping, got {defaults!r}")
        defaults = {}
    problems += [f"defaults: unknown key {key!r}; expected one of {sorted(_DEFAULT_FIELDS)}"
                 for key in sorted(set(defaults) - _DEFAULT_FIELDS, key=str)]

    items = data["screen"]
    if not isinstance(items, list) or not items:
        raise ScreeningError(origin, problems + ["'screen' must be a non-empty list of material names or mappings"])
    runs: list[ScreeningRun] = []
    names: set[str] = set()
    reported_entries: set[str] = set()
    for index, item in enumerate(items):
        where = f"screen[{index}]"
        if isinstance(item, str):
            item = {"material": item}
        if not isinstance(item, Mapping) or not isinstance(item.get("material"), str):
            problems.append(f"{where}: expected a material name or a mapping with 'material', got {item!r}")
            continue
        unknown = sorted(set(item) - _RUN_FIELDS, key=str)
        if unknown:
            problems.append(f"{where} ({item['material']}): unknown key {unknown[0]!r}; expected one of "
                            f"{sorted(_RUN_FIELDS)}")
            continue
        material = item["material"]
        where = f"{where} ({material})"
        if material in bad_entries:
            if material not in reported_entries:
                problems.append(f"{where}: {bad_entries[material]}")
                reported_entries.add(material)
            continue
        if material not in catalogue:
            problems.append(f"{where}: unknown material {material!r}{_closest(material, catalogue)}; "
                            "define it under 'materials:' or see aiida_mlepi/catalogue/materials.yaml")
            continue
        entry = catalogue[material]
        overrides = item.get("overrides", defaults.get("overrides", {})) or {}
        run = ScreeningRun(
            name=str(item.get("name", material)), entry=entry,
            engine=engine or item.get("engine") or defaults.get("engine") or entry.engine,
            workflow=item.get("workflow", defaults.get("workflow", "pipeline")),
            protocol=protocol or item.get("protocol") or defaults.get("protocol") or "fast",
            overrides=overrides)
        problem = _run_problem(run, protocols)
        if problem is None and run.name in names:
            problem = f"run name {run.name!r} is used twice; give the second one its own 'name'"
        if problem:
            problems.append(f"{where}: {problem}")
            continue
        names.add(run.name)
        runs.append(run)
    for name, message in bad_entries.items():  # bad entries of the file that no run uses are still errors
        if name not in reported_entries:
            problems.append(f"materials.{name}: {message}")
    if problems:
        raise ScreeningError(origin, problems)
    return ScreeningPlan(origin=origin, runs=tuple(runs))
