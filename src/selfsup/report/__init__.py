"""Run reports: one HTML page per run, and a table comparing runs."""

from .compare import compare_rows, markdown_table
from .page import write_report

__all__ = ["compare_rows", "markdown_table", "write_report"]
