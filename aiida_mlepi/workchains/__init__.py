"""AiiDA WorkChains of the EPI loop (entry points ``mlepi.*`` in ``aiida.workflows``)."""
