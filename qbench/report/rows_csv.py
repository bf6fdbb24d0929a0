"""Rows to a table: the CSV column order and the JSON-only fields come from the row schema."""
from __future__ import annotations

import json
from typing import Any

import pandas as pd

from qbench.report.row import JSON_COLUMNS, JSON_ONLY, LEAD_COLUMNS


def rows_to_frame(rows: list[dict[str, Any]]) -> pd.DataFrame:
    flat = [{k: v for k, v in r.items() if k not in JSON_ONLY} for r in rows]
    df = pd.DataFrame(flat)
    for col in JSON_COLUMNS:  # dict fields become one JSON cell each
        if not df.empty and col in df:
            df[col] = df[col].map(lambda e: json.dumps(e, sort_keys=True) if isinstance(e, dict) else e)
    return df


def rows_to_csv(rows: list[dict[str, Any]]) -> str:
    df = rows_to_frame(rows)
    if df.empty:
        return ""
    lead = [c for c in LEAD_COLUMNS if c in df]
    df = df[lead + sorted(c for c in df.columns if c not in lead)]
    df = df.sort_values([c for c in ("dataset", "model", "method", "bits", "seed") if c in df], kind="stable")
    return df.to_csv(index=False)
