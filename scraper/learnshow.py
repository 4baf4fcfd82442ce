"""What ``scraper learn`` prints: the proposal as text, as a spider block, or as JSON."""

from __future__ import annotations

import json
from typing import Any

from scraper.learn import Proposal
from scraper.trial import format_table

_YAML_WORDS = {"true", "false", "null", "yes", "no", "on", "off", "y", "n"}
SHOWN_ROWS = 3
"""Rows shown from each end of the first page's records."""


def proposal_json(proposal: Proposal, name: str, url: str) -> str:
    """The proposal as one JSON object, as ``scraper learn --json`` prints it."""
    proposed = proposal.pattern is not None or proposal.json_page is not None
    return json.dumps(
        {
            "pattern": proposal.pattern,
            "flags": list(proposal.flags),
            "fields": list(proposal.fields),
            "clean": proposal.clean,
            "format": proposal.format,
            "counts": proposal.counts,
            "rows": proposal.rows,
            "warnings": proposal.warnings,
            "json_page": proposal.json_page,
            "spider": proposal.spider(name, url) if proposed else None,
            "pattern_spider": proposal.pattern_spider(url) if proposal.from_json else None,
        },
        ensure_ascii=False,
        indent=2,
    )


def report(proposal: Proposal, urls: list[str], name: str | None, url: str) -> str:
    """The proposal as text: pattern, flags, format, clean, counts, rows, warnings,
    and with ``name`` the spider block to paste."""
    lines: list[str] = []
    if proposal.from_json and proposal.json_page is not None:
        lines += [
            "the values are in JSON on the page: a JSON page kind reads them",
            *_kind_lines(proposal.json_page),
            "",
            "and this pattern reads the same records from the JSON text:",
            "",
        ]
    if proposal.pattern is not None:
        lines.append(f"pattern: {_scalar(proposal.pattern)}")
        lines.append(f"flags: {_flow(list(proposal.flags))}")
        lines += _mapping("format", proposal.format)
        lines += _mapping("clean", proposal.clean)
        counts = ", ".join(
            f"{count} on {page}" for count, page in zip(proposal.counts, urls, strict=False)
        )
        lines += ["", f"records: {counts}"]
        rows = proposal.rows
        if rows:
            shown = rows if len(rows) <= 2 * SHOWN_ROWS else rows[:SHOWN_ROWS] + rows[-SHOWN_ROWS:]
            table = format_table(shown).split("\n")
            if len(rows) > 2 * SHOWN_ROWS:
                table.insert(2 + SHOWN_ROWS, f"... {len(rows) - 2 * SHOWN_ROWS} more")
            lines += ["", *table]
    elif proposal.json_page is not None:
        lines.append("the values are in JSON on the page: a JSON page kind is proposed")
        lines += _kind_lines(proposal.json_page)
    if proposal.warnings:
        lines += ["", "warnings:", *(f"  - {warning}" for warning in proposal.warnings)]
    if name is not None and (proposal.pattern is not None or proposal.json_page is not None):
        lines += ["", "spider block for spiders.yaml (under spiders:):", ""]
        lines.append(spider_yaml(name, proposal.spider(name, url)))
        if proposal.from_json:
            lines += ["", "or, with the pattern:", ""]
            lines.append(spider_yaml(name, proposal.pattern_spider(url)))
    return "\n".join(lines)


def _kind_lines(kind: dict[str, Any]) -> list[str]:
    """A JSON page kind's keys (from, items, fields), as in ``spiders.yaml``."""
    lines: list[str] = []
    for key, value in kind.items():
        if isinstance(value, dict):
            lines += _mapping(key, value)
        else:
            lines.append(f"{key}: {_scalar(value)}")
    return lines


def spider_yaml(name: str, block: dict[str, Any]) -> str:
    """``block`` as YAML to paste under ``spiders:``, patterns in single quotes."""
    lines = [f"  {name}:"]
    for key, value in block.items():
        if isinstance(value, dict):
            lines += ["    " + line for line in _mapping(key, value)]
        else:
            shown = _flow(value) if isinstance(value, list) else _scalar(value)
            lines.append(f"    {key}: {shown}")
    return "\n".join(lines)


def _mapping(key: str, mapping: dict[str, Any]) -> list[str]:
    if not mapping:
        return []
    lines = [f"{key}:"]
    for name, value in mapping.items():
        shown = _flow(value) if isinstance(value, (list, dict)) else _scalar(value)
        lines.append(f"  {name}: {shown}")
    return lines


def _flow(value: Any) -> str:
    if isinstance(value, list):
        return "[" + ", ".join(_flow(item) for item in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}: {_flow(v)}" for k, v in value.items()) + "}"
    return _scalar(value)


def _scalar(value: Any) -> str:
    """A YAML scalar: names bare, other text single-quoted (backslashes kept as written)."""
    if isinstance(value, str):
        if value.isidentifier() and value.lower() not in _YAML_WORDS:
            return value
        return "'" + value.replace("'", "''") + "'"
    return json.dumps(value)
