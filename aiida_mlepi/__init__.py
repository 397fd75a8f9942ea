"""aiida-mlepi: electron-phonon interactions from finite differences, accelerated by HedgeNet.

The physics and ML core lives in :mod:`aiida_mlepi.core` and imports nothing from AiiDA, so it can
be used from a notebook or a plain script. The AiiDA layer (``data``, ``calculations``,
``workchains``, ``cli``) wraps it thinly.
"""

__version__ = "0.1.0"
