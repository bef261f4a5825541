"""The line items the demo model finds in invoice texts: a SKU and the quantity received.

A CSV with a SKU and a quantity column is read by its header; any other line naming a SKU
gives the number after a "qty"/"quantity"/"x" label, else its first whole number that is not
part of the SKU or a price.
"""

import csv
import io
import re
from typing import Any

_SKU = re.compile(r"\b(?=[A-Z0-9-]*\d)(?=[A-Z0-9-]*[A-Z])[A-Z0-9]+(?:-[A-Z0-9]+)+\b")
_LABELLED = re.compile(r"\b(?:qty|quantity|x)\s*[:=]?\s*(\d{1,7})\b", re.IGNORECASE)
_WHOLE = re.compile(r"(?<![\d.,])(\d{1,7})(?![\d.,]\d)")
QUANTITY_HEADERS = ("quantity", "qty", "amount", "count", "units")


def _from_csv(text: str) -> list[tuple[str, int]] | None:
    rows = list(csv.reader(io.StringIO(text)))
    if len(rows) < 2:
        return None
    header = [cell.strip().lower() for cell in rows[0]]
    sku_column = next((i for i, cell in enumerate(header) if "sku" in cell), None)
    quantity_column = next(
        (i for i, cell in enumerate(header) if cell.startswith(QUANTITY_HEADERS)), None
    )
    if sku_column is None or quantity_column is None:
        return None
    items = []
    for row in rows[1:]:
        if len(row) > max(sku_column, quantity_column):
            quantity = row[quantity_column].strip()
            if row[sku_column].strip() and quantity.isdigit():
                items.append((row[sku_column].strip(), int(quantity)))
    return items


def _from_line(line: str) -> tuple[str, int] | None:
    sku = _SKU.search(line)
    if sku is None:
        return None
    rest = line[: sku.start()] + " " + line[sku.end() :]
    labelled = _LABELLED.search(rest)
    if labelled:
        return sku.group(0), int(labelled.group(1))
    whole = _WHOLE.search(rest)
    return (sku.group(0), int(whole.group(1))) if whole else None


def line_items(texts: list[str]) -> list[dict[str, Any]]:
    """Every SKU's summed quantity over the texts, in the order first seen."""
    totals: dict[str, int] = {}
    for text in texts:
        found = _from_csv(text)
        if found is None:
            found = [item for line in text.splitlines() if (item := _from_line(line))]
        for sku, quantity in found:
            if quantity > 0:
                totals[sku] = totals.get(sku, 0) + quantity
    return [{"sku": sku, "quantity": quantity} for sku, quantity in totals.items()]
