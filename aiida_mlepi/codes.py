"""The Python code the training and inference CalcJobs run (``python -m aiida_mlepi.core.ml.run_training …``,
``… run_inference …``) on localhost.

:func:`ensure_local_python_code` finds or creates the computer ``localhost`` (``core.local`` transport,
``core.direct`` scheduler) and the code ``python-mlepi@localhost`` = this interpreter (``sys.executable``),
which has aiida-mlepi installed. Used by ``aiida-mlepi run`` and by the tests of the pipeline.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

from aiida import orm
from aiida.common.exceptions import NotExistent

LOCALHOST_LABEL = "localhost"
CODE_LABEL = "python-mlepi"


def ensure_localhost(label: str = LOCALHOST_LABEL, workdir: str | Path | None = None) -> orm.Computer:
    """The computer ``label`` (created and configured as this machine if missing)."""
    try:
        computer = orm.load_computer(label)
    except NotExistent:
        workdir = Path(workdir) if workdir is not None else Path(tempfile.gettempdir()) / "aiida-mlepi-work"
        computer = orm.Computer(label=label, hostname="localhost", description="this machine (aiida-mlepi)",
                                transport_type="core.local", scheduler_type="core.direct",
                                workdir=str(workdir)).store()
        computer.set_minimum_job_poll_interval(0.0)
        computer.set_default_mpiprocs_per_machine(1)
    user = orm.User.collection.get_default()
    if not computer.is_user_configured(user):
        computer.configure(user, safe_interval=0.0)
    return computer


def ensure_local_python_code(label: str = CODE_LABEL, executable: str | None = None,
                             workdir: str | Path | None = None) -> orm.InstalledCode:
    """The code ``label@localhost`` running ``executable`` (default: this interpreter), created if missing.

    An existing code with that label but another executable is not changed: a new one is made with the
    executable's path in its label suffix, so that stored provenance stays true.
    """
    executable = executable or sys.executable
    computer = ensure_localhost(workdir=workdir)
    codes = orm.QueryBuilder().append(orm.Computer, filters={"id": computer.pk}, tag="c").append(
        orm.InstalledCode, with_computer="c", filters={"label": {"like": f"{label}%"}}).all(flat=True)
    for code in codes:
        if str(code.filepath_executable) == executable:
            return code
    suffix = "" if not codes else f"-{len(codes)}"
    return orm.InstalledCode(label=f"{label}{suffix}", computer=computer, filepath_executable=executable,
                             default_calc_job_plugin="mlepi.train_phonon",
                             description="Python with aiida-mlepi[ml] (training and inference CalcJobs)").store()
