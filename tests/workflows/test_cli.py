"""The `aiida-mlepi` command as a new user runs it: a fresh AiiDA config folder, a profile created on the fly."""

from __future__ import annotations

import json
import os
import pty
import re
import subprocess
import sys
from pathlib import Path

import pytest

CLI = [sys.executable, "-m", "aiida_mlepi.cli"]


def _run(args, env, cwd):
    # stdin is not a terminal: nothing may wait for an answer
    return subprocess.run(CLI + args, env=env, cwd=cwd, capture_output=True, text=True, timeout=600,
                          stdin=subprocess.DEVNULL)


@pytest.fixture
def fresh_env(tmp_path):
    env = dict(os.environ)
    env["AIIDA_PATH"] = str(tmp_path / "aiida-config")
    env["PATH"] = os.path.dirname(sys.executable) + os.pathsep + env.get("PATH", "")
    return env


def test_demo_creates_profile_then_reuses_it(fresh_env, tmp_path):
    args = ["demo", "--supercell", "3", "--temperatures", "0,300", "--samples", "4", "--output-dir", "out"]
    first = _run(args, fresh_env, tmp_path)
    assert first.returncode == 0, first.stderr[-3000:] + first.stdout[-3000:]
    assert "Creating AiiDA profile 'mlepi'" in first.stdout
    assert "\r" not in first.stdout + first.stderr and "\x1b[" not in first.stdout + first.stderr
    assert "samples-300K: 4/4 (100 %) done" in first.stderr
    # the spectral estimator's table: v0 ± s.e. (10^6 m/s), signed change ± s.e., γ1, the folded-point gap
    rows = re.findall(r"^\s+(0\.0|300\.0)\s+4\s+([0-9.]+) ± ([0-9.]+)\s+([-+][0-9.]+) ± ([0-9.]+) %\s+([0-9.]+) ± ",
                      first.stdout, re.M)
    assert [r[0] for r in rows] == ["0.0", "300.0"]
    for _, v0, stderr, change, change_err, gamma1 in rows:
        assert 0.5 < float(v0) < 0.8  # 10^6 m/s: the engine's monolayer-like v0 (graphene's is ~0.8–1.0)
        assert 0 < float(stderr) < 0.05 and abs(float(change)) < 50
        assert 0.2 < float(gamma1) < 0.5  # eV
    assert "fit window q = 0.04-0.12 1/Angstrom from K" in first.stdout
    assert "errors: ±1 standard error over configurations" in first.stdout
    for label in ("renormalisation vs T", "spectral functions"):
        plot = Path(re.search(rf"^{label}: (.*)$", first.stdout, re.M).group(1))
        assert plot.read_bytes()[:4] == b"\x89PNG"

    second = _run(args, fresh_env, tmp_path)
    assert second.returncode == 0, second.stderr[-3000:]
    assert "Creating AiiDA profile" not in second.stdout
    assert "AiiDA profile: mlepi" in second.stdout

    results = _run(["results", "--last", "2"], fresh_env, tmp_path)
    assert results.returncode == 0, results.stderr[-2000:]
    assert results.stdout.count("--- summary node") == 2
    material = re.search(r"^material: (\S+)", results.stdout, re.M).group(1)
    other = _run(["results", "--material", "graphite"], fresh_env, tmp_path)
    assert other.returncode == 1 and "Traceback" not in other.stderr
    assert f"no results for material 'graphite'; stored materials: {material}" in other.stderr


def test_user_mistakes_give_one_clear_error(fresh_env, tmp_path):
    bad_t = _run(["demo", "--temperatures", "0,-10"], fresh_env, tmp_path)
    assert bad_t.returncode == 2 and "must be ≥ 0 K" in bad_t.stderr and "Traceback" not in bad_t.stderr
    odd = _run(["demo", "--samples", "3"], fresh_env, tmp_path)
    assert odd.returncode == 2 and "even number of samples" in odd.stderr and "Traceback" not in odd.stderr
    no_results = _run(["results"], fresh_env, tmp_path)
    assert no_results.returncode != 0 and "Traceback" not in no_results.stderr


def test_tables_show_existing_sample_counts_and_signed_changes():
    from aiida_mlepi.cli.tables import convergence_table, fermi_velocity_table, sample_checkpoints

    assert sample_checkpoints(range(2, 17, 2)) == [2, 4, 8, 16]  # 8 antithetic pairs
    assert sample_checkpoints(range(1, 21)) == [2, 4, 8, 16, 20]  # powers of 2 and the last n
    assert sample_checkpoints([1]) == [1]
    averages = [{"temperature_k": t, "running_n": list(range(1, n + 1)),
                 "running_mean_m_per_s": [0.8e6 + 1e3 * k for k in range(n)]} for t, n in ((300.0, 6), (0.0, 4))]
    header, row_0k, row_300k = convergence_table(averages).splitlines()
    assert header.split() == ["T", "(K)", "n=2", "n=4", "n=6"]  # no empty columns up to n=500
    assert row_0k.split() == ["0.0", "0.80100", "0.80300"]
    assert row_300k.split() == ["300.0", "0.80100", "0.80300", "0.80500"]
    summary = {"material": "AB-bilayer-graphene", "static_lattice_m_per_s": 0.8e6, "temperatures_k": [0.0, 300.0],
               "n_samples": [4, 4], "mean_m_per_s": [0.804e6, 0.7896e6], "stderr_m_per_s": [1e3, None],
               "relative_change": [0.005, -0.013]}
    lines = fermi_velocity_table(summary).splitlines()
    assert "0.80000 x 10^6 m/s" in lines[0]
    assert lines[2].split() == ["0.0", "4", "0.80400", "0.00100", "+0.50", "%"]
    assert lines[3].split() == ["300.0", "4", "0.78960", "n/a", "-1.30", "%"]


def test_progress_without_terminal_is_plain_lines():
    import io
    import logging

    from aiida_mlepi.cli.progress import ProgressBars

    logger = logging.getLogger("mlepi-test-progress")
    logger.setLevel(logging.INFO)
    stream = io.StringIO()  # not a terminal
    with ProgressBars(logger_name=logger.name, stream=stream):
        for done in range(1, 21):
            logger.info("[progress] samples-300K %d/20", done)
        for done in range(1, 4):
            logger.info("[progress] phonon-forces %d/3", done)
        logger.info("not a progress line")
    text = stream.getvalue()
    assert "\r" not in text and "\x1b[" not in text
    lines = text.splitlines()
    # every 10 % of 20 steps (2, 4, …, 20), then each of 3 steps (33 %, 66 %, done)
    assert [line.split()[1] for line in lines] == [f"{d}/20" for d in range(2, 21, 2)] + ["1/3", "2/3", "3/3"]
    assert lines[9].endswith("(100 %) done") and lines[-1].endswith("(100 %) done")
    bars = io.StringIO()
    with ProgressBars(logger_name=logger.name, stream=bars, bars=True):
        logger.info("[progress] samples-0K 1/2")
    assert "\r" in bars.getvalue()  # the terminal mode does draw a bar


ENSURE_PROFILE = "from aiida_mlepi.cli.profile import ensure_profile; print('loaded', ensure_profile(%r).name)"


def _profile_names(env) -> list[str]:
    config = Path(env["AIIDA_PATH"]) / ".aiida" / "config.json"
    return sorted(json.loads(config.read_text())["profiles"]) if config.exists() else []


def test_only_the_default_profile_is_created_without_asking(fresh_env, tmp_path):
    typo = _run(["-p", "TYPO", "demo"], fresh_env, tmp_path)
    assert typo.returncode == 1 and "Traceback" not in typo.stderr
    assert "AiiDA profile 'TYPO' does not exist and there is no profile yet" in typo.stderr
    assert _profile_names(fresh_env) == []
    default = subprocess.run([sys.executable, "-c", ENSURE_PROFILE % None], env=fresh_env, cwd=tmp_path,
                             capture_output=True, text=True, timeout=300, stdin=subprocess.DEVNULL)
    assert default.returncode == 0, default.stderr[-2000:]
    assert "Creating AiiDA profile 'mlepi'" in default.stdout and "loaded mlepi" in default.stdout

    for args in (["-p", "TYPO", "demo"], ["-p", "TYPO", "results"]):
        typo = _run(args, fresh_env, tmp_path)
        assert typo.returncode == 1 and "Traceback" not in typo.stderr
        assert "AiiDA profile 'TYPO' does not exist; existing profiles: mlepi" in typo.stderr
    assert _profile_names(fresh_env) == ["mlepi"]
    for args in (["results"], ["results", "--material", "graphite"]):  # an empty database
        empty = _run(args, fresh_env, tmp_path)
        assert empty.returncode == 1 and "no results stored yet" in empty.stderr

    # at a terminal the user is asked; "n" keeps the error, "y" creates the profile
    for answer, created in ((b"n\n", False), (b"y\n", True)):
        leader, follower = pty.openpty()
        proc = subprocess.Popen([sys.executable, "-c", ENSURE_PROFILE % "other"], env=fresh_env, cwd=tmp_path,
                                stdin=follower, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        os.close(follower)
        os.write(leader, answer)
        out, err = proc.communicate(timeout=300)
        os.close(leader)
        assert "Create a new profile 'other'?" in out
        assert (proc.returncode == 0) is created and ("loaded other" in out) is created, err[-2000:]
    assert _profile_names(fresh_env) == ["mlepi", "other"]


def test_run_user_mistakes_give_one_clear_error(fresh_env, tmp_path):
    bad_t = _run(["run", "--temperatures", "0,-10"], fresh_env, tmp_path)
    assert bad_t.returncode == 2 and "must be ≥ 0 K" in bad_t.stderr and "Traceback" not in bad_t.stderr
    bad_protocol = _run(["run", "--protocol", "quick"], fresh_env, tmp_path)
    assert bad_protocol.returncode == 2 and "'quick' is not one of 'fast', 'balanced', 'stringent'" in bad_protocol.stderr


@pytest.mark.slow
def test_run_fast_protocol_prints_ml_and_ground_truth(fresh_env, tmp_path):
    result = _run(["run", "--protocol", "fast", "--output-dir", "out"], fresh_env, tmp_path)
    assert result.returncode == 0, result.stderr[-3000:] + result.stdout[-3000:]
    assert "training code: python-mlepi@localhost" in result.stdout
    rows = re.findall(r"^\s+(0\.0|300\.0)\s+2\s+([0-9.]+) ± \S+\s+([0-9.]+) ± ", result.stdout, re.M)
    assert [r[0] for r in rows] == ["0.0", "300.0"]  # the ground-truth lines: 2 checked samples per T
    for _, v_ml, v_engine in rows:
        assert 0.3 < float(v_ml) < 1.2 and 0.3 < float(v_engine) < 1.2  # 10^6 m/s
    assert re.search(r"\|dw\| mean [0-9.]+ cm\^-1, max [0-9.]+ cm\^-1; imaginary modes ML \d+, engine \d+",
                     result.stdout)
    plot = Path(re.search(r"^renormalisation vs T: (.*)$", result.stdout, re.M).group(1))
    assert plot.read_bytes()[:4] == b"\x89PNG"
