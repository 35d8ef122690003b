"""The auditor's pages (server-rendered HTML, SVG charts drawn here)."""

from __future__ import annotations

from typing import Any

from ledger.web.server import escape

HANDLERS: list[Any] = []


def error_page(status: int, body: dict[str, Any]) -> str:
    return (
        f"<!doctype html><html lang=en><title>{status}</title>"
        f"<h1>{status} {escape(body.get('error'))}</h1><p>{escape(body.get('message'))}</p>"
    )
