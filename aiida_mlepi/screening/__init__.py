"""Screening of catalogue materials: one EPI run per material, submitted to the daemon by a submission
controller (:mod:`.controller`), its inputs from the stored run description (:mod:`.inputs`), its results as
a table, a CSV and a plot (:mod:`.results`). The screening file format is :mod:`aiida_mlepi.core.screening`."""
