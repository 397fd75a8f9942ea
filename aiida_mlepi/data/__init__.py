"""AiiDA data types of aiida-mlepi (entry points ``mlepi.*`` in the ``aiida.data`` group)."""
