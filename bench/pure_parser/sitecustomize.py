"""On PYTHONPATH of every benchmark process except ``minibull_hiredis``'s (``bench/run.py``):
hides the hiredis package, so redis-py uses its pure-Python reply parser, as a plain
``pip install`` of any of the libraries has. The bench venv has hiredis installed for
``minibull_hiredis`` (``pip install minibull[fast]``), measured beside them."""

import sys

sys.modules["hiredis"] = None  # type: ignore[assignment]  # import hiredis -> ImportError
