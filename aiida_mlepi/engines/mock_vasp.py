"""A mock VASP executable that replays real, recorded VASP outputs.

VASP needs a licence and cannot run in CI, so tests and demos point an AiiDA ``Code`` at this
program instead (console script ``mlepi-mock-vasp``, or ``python -m aiida_mlepi.engines.mock_vasp``).
It is run by aiida-vasp's ``VaspCalculation`` in the calculation's working directory, exactly as
VASP would be, and

1. checks that the input files aiida-vasp wrote are there (``INCAR``, ``POSCAR``, ``KPOINTS``,
   ``POTCAR``) and consistent (the POTCAR holds one potential per POSCAR species, in order);
2. picks the recorded run to replay, by (first match wins)

   * a tag in the INCAR ``SYSTEM`` line: ``SYSTEM = mlepi-mock:<name>`` → ``$MLEPI_MOCK_VASP_ROOT/<name>``
     (``<name>`` may be an absolute path or contain ``/``, e.g. ``exit_codes/converged``);
   * the environment variable ``MLEPI_MOCK_VASP_MAP``: ``"<text>=<name>;<text>=<name>;…"`` — the first
     ``<text>`` found in the ``SYSTEM`` line (as whole words) selects ``$MLEPI_MOCK_VASP_ROOT/<name>``
     (e.g. ``"sample 0=exit_codes/converged;sample 1=exit_codes/elec-unconverged"`` for the dataset
     engine, which writes ``SYSTEM = <material> sample <i>``);
   * the environment variable ``MLEPI_MOCK_VASP_FIXTURE`` (a folder);

3. compares the inputs with the recorded ones (``MLEPI_MOCK_VASP_CHECK``):

   * ``strict`` (default) — same species and counts, same cell and fractional positions
     (1e-5 Å / 1e-6), the same INCAR tags with the same values (``SYSTEM`` aside), the same k-point
     mesh (a Monkhorst–Pack mesh equals the Γ-centred one shifted by ½ step along even divisions);
   * ``species`` — same species and counts only (replaying a recording for a structure that
     only has the same composition, e.g. in a workflow smoke test);
   * ``none`` — no comparison;

4. copies the recorded output files (``OUTCAR``, ``vasprun.xml``, ``CONTCAR``, ``OSZICAR``, …)
   into the working directory and prints the recorded standard output (``vasp_output``), which
   aiida-vasp captures as VASP's stdout.

On any problem it prints ``MLEPI MOCK VASP ERROR: ...`` and exits with status 2 without writing
outputs, so the calculation fails like a VASP run that did not start.
"""

from __future__ import annotations

import os
import re
import shutil
import sys
from pathlib import Path

import numpy as np

INPUT_FILES = ("INCAR", "POSCAR", "KPOINTS", "POTCAR")
#: files of a recording that are never replayed (inputs, and the stdout which is printed instead)
NOT_REPLAYED = set(INPUT_FILES) | {"vasp_output", "SOURCE.md", "README.md"}
TAG_PREFIX = "mlepi-mock:"
CHECK_LEVELS = ("strict", "species", "none")


class MockVaspError(RuntimeError):
    """The inputs are missing, inconsistent, or do not match the recording."""


# ----------------------------------------------------------------------------------------------
# minimal readers for the input files (the mock must not depend on AiiDA or aiida-vasp)


def read_incar(path: Path) -> dict[str, str]:
    """INCAR as ``{TAG: raw value}`` (upper-case tags; comments after ``!``/``#`` removed; ``;`` splits)."""
    tags: dict[str, str] = {}
    for line in Path(path).read_text().splitlines():
        line = re.split(r"[!#]", line, maxsplit=1)[0]
        for statement in line.split(";"):
            if "=" not in statement:
                continue
            key, value = statement.split("=", 1)
            if key.strip():
                tags[key.strip().upper()] = value.strip()
    return tags


def _normalise_incar_value(value: str):
    """Comparable form of an INCAR value: floats for numbers, bool for logicals, lower-case text."""
    text = value.strip().strip("'\"")
    low = text.lower()
    if re.fullmatch(r"\.?(true|t)\.?", low):
        return True
    if re.fullmatch(r"\.?(false|f)\.?", low):
        return False
    parts = low.split()
    try:
        numbers = tuple(float(p.replace("d", "e")) for p in parts)
    except ValueError:
        return low
    return numbers[0] if len(numbers) == 1 else numbers


def read_poscar(path: Path) -> dict:
    """POSCAR/CONTCAR (VASP 5 format with a species line) as cell (Å), species, counts, fractional positions."""
    lines = [line.rstrip() for line in Path(path).read_text().splitlines()]
    if len(lines) < 8:
        raise MockVaspError(f"{path.name} is too short to be a POSCAR")
    scale = float(lines[1].split()[0])
    cell = np.array([[float(x) for x in lines[i].split()[:3]] for i in (2, 3, 4)])
    if scale < 0:  # a negative scale is the cell volume
        cell *= (-scale / abs(np.linalg.det(cell))) ** (1.0 / 3.0)
    else:
        cell *= scale
    species = lines[5].split()
    if not species or species[0][0].isdigit():
        raise MockVaspError(f"{path.name} has no species line (VASP 4 format is not supported)")
    counts = [int(x) for x in lines[6].split()]
    index = 7
    if lines[index].strip()[:1].lower() == "s":  # selective dynamics
        index += 1
    cartesian = lines[index].strip()[:1].lower() in ("c", "k")
    natoms = sum(counts)
    positions = np.array([[float(x) for x in lines[index + 1 + i].split()[:3]] for i in range(natoms)])
    if cartesian:
        positions = np.linalg.solve(cell.T, (positions * (scale if scale > 0 else 1.0)).T).T
    return {"cell": cell, "species": species, "counts": counts, "frac": positions}


def read_kpoints_mesh(path: Path) -> tuple[tuple[int, ...], tuple[float, ...]] | None:
    """``(divisions, shifts)`` of an automatic-mesh KPOINTS file, in the Γ-centred convention.

    Shifts are in units of the mesh step; a Monkhorst–Pack mesh is a Γ-centred one shifted by ½ step
    along each even division, so ``Monkhorst 4 4 4`` and ``Gamma 4 4 4`` + ``0.5 0.5 0.5`` compare equal.
    ``None`` for other kinds of KPOINTS files.
    """
    lines = Path(path).read_text().splitlines()
    if len(lines) < 4 or lines[1].strip() != "0":
        return None
    scheme = lines[2].strip()[:1].lower()
    if scheme not in ("m", "g"):
        return None
    divisions = tuple(int(float(x)) for x in lines[3].split()[:3])
    shifts = [0.0, 0.0, 0.0]
    if len(lines) > 4 and lines[4].split():
        shifts = [float(x) for x in lines[4].split()[:3]]
    if scheme == "m":
        shifts = [s + (0.5 if n % 2 == 0 else 0.0) for s, n in zip(shifts, divisions)]
    return divisions, tuple(round(s % 1.0, 8) for s in shifts)


def potcar_symbols(path: Path) -> list[str]:
    """Potential symbols in a (concatenated) POTCAR, from its ``TITEL`` lines, in order."""
    symbols = []
    for match in re.finditer(r"TITEL\s*=\s*(\S+)\s+(\S+)", Path(path).read_text()):
        symbols.append(match.group(2))
    return symbols


# ----------------------------------------------------------------------------------------------


def select_recording(workdir: Path, environ=os.environ) -> Path:
    """The folder of the recorded run to replay for the inputs in ``workdir`` (see module docstring)."""
    incar = read_incar(workdir / "INCAR")
    system = incar.get("SYSTEM", "").strip().strip("'\"")

    def under_root(name: str) -> Path:
        candidate = Path(name)
        if candidate.is_absolute():
            return candidate
        root = environ.get("MLEPI_MOCK_VASP_ROOT")
        if not root:
            raise MockVaspError(f"recording {name!r} is relative but MLEPI_MOCK_VASP_ROOT is not set")
        return Path(root) / name

    candidate = None
    if system.lower().startswith(TAG_PREFIX):
        candidate = under_root(system[len(TAG_PREFIX):].strip())
    if candidate is None and environ.get("MLEPI_MOCK_VASP_MAP"):
        for entry in environ["MLEPI_MOCK_VASP_MAP"].split(";"):
            if "=" not in entry:
                continue
            text, name = (part.strip() for part in entry.split("=", 1))
            if text and re.search(rf"(?<!\S){re.escape(text)}(?!\S)", system):
                candidate = under_root(name)
                break
    if candidate is None and environ.get("MLEPI_MOCK_VASP_FIXTURE"):
        candidate = Path(environ["MLEPI_MOCK_VASP_FIXTURE"])
    if candidate is None:
        raise MockVaspError(
            f"no recording selected for SYSTEM={system!r}: set 'SYSTEM = {TAG_PREFIX}<name>' (with "
            "MLEPI_MOCK_VASP_ROOT), MLEPI_MOCK_VASP_MAP or MLEPI_MOCK_VASP_FIXTURE"
        )
    if not candidate.is_dir():
        raise MockVaspError(f"recording folder {candidate} does not exist")
    if not (candidate / "OUTCAR").exists() and not (candidate / "vasprun.xml").exists():
        raise MockVaspError(f"{candidate} holds no recorded OUTCAR or vasprun.xml")
    return candidate


def check_inputs(workdir: Path, recording: Path, level: str = "strict") -> list[str]:
    """Raise :class:`MockVaspError` if the inputs in ``workdir`` do not fit ``recording``; return notes."""
    if level not in CHECK_LEVELS:
        raise MockVaspError(f"MLEPI_MOCK_VASP_CHECK={level!r}; expected one of {CHECK_LEVELS}")
    notes = []
    missing = [name for name in INPUT_FILES if not (workdir / name).is_file()]
    if missing:
        raise MockVaspError(f"input files missing: {', '.join(missing)}")
    poscar = read_poscar(workdir / "POSCAR")
    symbols = potcar_symbols(workdir / "POTCAR")
    elements = [s.split("_")[0] for s in symbols]
    if elements != poscar["species"]:
        raise MockVaspError(f"POTCAR potentials {symbols} do not match the POSCAR species {poscar['species']}")
    notes.append(f"inputs present; POTCAR {symbols} matches POSCAR species")
    if level == "none":
        return notes

    recorded = read_poscar(recording / "POSCAR")
    if (poscar["species"], poscar["counts"]) != (recorded["species"], recorded["counts"]):
        raise MockVaspError(
            f"composition {list(zip(poscar['species'], poscar['counts']))} differs from the recording "
            f"{list(zip(recorded['species'], recorded['counts']))}"
        )
    notes.append("composition matches the recording")
    if level == "species":
        return notes

    if not np.allclose(poscar["cell"], recorded["cell"], atol=1e-5):
        raise MockVaspError("cell differs from the recording")
    dfrac = poscar["frac"] - recorded["frac"]
    dfrac -= np.round(dfrac)
    if np.abs(dfrac).max() > 1e-6:
        raise MockVaspError(f"positions differ from the recording (max |Δfrac| = {np.abs(dfrac).max():.2e})")
    written = {k: _normalise_incar_value(v) for k, v in read_incar(workdir / "INCAR").items() if k != "SYSTEM"}
    wanted = {k: _normalise_incar_value(v) for k, v in read_incar(recording / "INCAR").items() if k != "SYSTEM"}
    diff = sorted(k for k in set(written) | set(wanted) if written.get(k) != wanted.get(k))
    if diff:
        details = ", ".join(f"{k}: {written.get(k)!r} vs recorded {wanted.get(k)!r}" for k in diff)
        raise MockVaspError(f"INCAR differs from the recording: {details}")
    if (recording / "KPOINTS").exists():
        mesh, recorded_mesh = read_kpoints_mesh(workdir / "KPOINTS"), read_kpoints_mesh(recording / "KPOINTS")
        if recorded_mesh is not None and mesh != recorded_mesh:
            raise MockVaspError(f"k-point mesh {mesh} differs from the recording {recorded_mesh}")
    notes.append("structure, INCAR and k mesh match the recording")
    return notes


def replay(workdir: Path, recording: Path) -> list[str]:
    """Copy the recorded output files into ``workdir``; return their names."""
    copied = []
    for path in sorted(recording.iterdir()):
        if path.is_file() and path.name not in NOT_REPLAYED:
            shutil.copyfile(path, workdir / path.name)
            copied.append(path.name)
    return copied


def main(argv: list[str] | None = None, workdir: Path | None = None) -> int:
    """Entry point of ``mlepi-mock-vasp``; returns the exit status."""
    workdir = Path.cwd() if workdir is None else Path(workdir)
    out = sys.stdout
    try:
        if not (workdir / "INCAR").is_file():
            raise MockVaspError("INCAR not found")
        recording = select_recording(workdir)
        notes = check_inputs(workdir, recording, os.environ.get("MLEPI_MOCK_VASP_CHECK", "strict").lower())
        copied = replay(workdir, recording)
    except (MockVaspError, OSError, ValueError, IndexError) as error:
        print(f"MLEPI MOCK VASP ERROR: {error}", file=out)
        out.flush()
        return 2
    print(f" MLEPI MOCK VASP: replaying {recording}", file=out)
    for note in notes:
        print(f" MLEPI MOCK VASP: {note}", file=out)
    print(f" MLEPI MOCK VASP: wrote {', '.join(copied)}", file=out)
    stdout = recording / "vasp_output"
    if stdout.exists():
        out.write(stdout.read_text())
    out.flush()
    return 0


if __name__ == "__main__":  # pragma: no cover - exercised through the console script
    sys.exit(main())
