"""Metadata that renders inside the Dagster UI: small images inline, tables of captions."""

import base64
from pathlib import Path

import dagster as dg

MAX_INLINE_IMAGE_BYTES = 200_000
COLUMN_TYPES = {bool: "bool", int: "int", float: "float"}


def image_markdown(path: Path, alt: str) -> dg.MetadataValue:
    """A PNG embedded in markdown as a data URI, so the UI shows it with no file server."""
    data = path.read_bytes()
    if len(data) > MAX_INLINE_IMAGE_BYTES:
        return dg.MetadataValue.path(str(path))
    encoded = base64.b64encode(data).decode()
    return dg.MetadataValue.md(f"![{alt}](data:image/png;base64,{encoded})")


def caption_table(rows: list[dict]) -> dg.MetadataValue:
    """item (clip or still), auto/edited, version, text: what fed a checkpoint."""
    columns = ["item", "origin", "version", "text"]
    return dg.MetadataValue.table(
        records=[dg.TableRecord({column: row[column] for column in columns}) for row in rows],
        schema=dg.TableSchema(columns=[dg.TableColumn(column, "string") for column in columns]),
    )


def rows_table(rows: list[dict]) -> dg.MetadataValue:
    """A table of plain values, one row per item of a batch; columns from the first row."""
    types = {column: COLUMN_TYPES.get(type(value), "string") for column, value in rows[0].items()}

    def cell(column: str, value: object) -> object:
        return str(value) if types[column] == "string" else value

    return dg.MetadataValue.table(
        records=[dg.TableRecord({k: cell(k, row[k]) for k in types}) for row in rows],
        schema=dg.TableSchema(columns=[dg.TableColumn(k, kind) for k, kind in types.items()]),
    )
