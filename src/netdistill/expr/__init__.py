"""The boolean expression language shared by filters, the Categorizer and alerts.

``parse`` (``expr/parse.py``) builds a syntax tree without ``eval``; ``check``
(``expr/types.py``) types it against the field registry; ``to_polars``
(``expr/compile.py``) turns it into one polars expression evaluated over a whole batch.
``compile_predicate`` does all three. The language is described in docs/expressions.md.
"""

from netdistill.errors import ExprError
from netdistill.expr.compile import compile_predicate, to_polars
from netdistill.expr.parse import parse
from netdistill.expr.types import check

__all__ = ["ExprError", "check", "compile_predicate", "parse", "to_polars"]
