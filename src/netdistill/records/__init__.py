"""The usage record: the field registry (the seeds' key directory) and its Arrow schema."""

from netdistill.records.fields import FIELD_TYPES, STANDARD_FIELDS, Field, FieldRegistry
from netdistill.records.schema import conform, empty_batch, records_schema

__all__ = [
    "FIELD_TYPES",
    "STANDARD_FIELDS",
    "Field",
    "FieldRegistry",
    "conform",
    "empty_batch",
    "records_schema",
]
