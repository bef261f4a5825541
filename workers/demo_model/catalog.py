"""What the demo model writes for a catalog product: the catalog's own fields, completed from
the lines of the attached files that name the product's SKU."""

import re
from typing import Any

# "colour: blue", "Weight = 280 g", "material - merino"
_PROPERTY = re.compile(r"^\s*([A-Za-z][\w ]{0,40}?)\s*[:=]\s*(.+?)\s*$")


def requested_skus(prompt: str) -> list[str]:
    """The SKUs the task lists, one a line as ``- SKU``."""
    marker = "Enrich these products (SKUs):\n"
    if marker not in prompt:
        return []
    listing = prompt.split(marker, 1)[1].split("\n\n", 1)[0]
    return [line[2:].strip() for line in listing.splitlines() if line.startswith("- ")]


def _products_read(results: list[Any]) -> dict[str, dict[str, Any]]:
    found: dict[str, dict[str, Any]] = {}
    for result in results:
        if isinstance(result, dict):
            for product in result.get("products", []):
                if isinstance(product, dict) and isinstance(product.get("sku"), str):
                    found[product["sku"]] = product
    return found


def _mentions(sku: str, texts: list[str]) -> list[str]:
    """The lines of the files about ``sku``: those naming it, and the ones right after it up
    to the next blank line (a product's block in a spec sheet)."""
    lines: list[str] = []
    for text in texts:
        inside = False
        for line in text.splitlines():
            if sku.lower() in line.lower():
                inside = True
            elif not line.strip():
                inside = False
            if inside and line.strip():
                lines.append(line.strip())
    return lines


def _key(label: str) -> str:
    return re.sub(r"\W+", "_", label.strip().lower()).strip("_")


def _value(text: str) -> Any:
    number = re.fullmatch(r"-?\d+(?:\.\d+)?", text)
    if number:
        return float(text) if "." in text else int(text)
    return text


_UNIT = re.compile(r"^(.+)_(g|kg|mm|cm|m|ml|l|percent)$")


def _property_phrase(key: str, value: Any) -> str:
    """``weight_g: 280`` -> ``weight 280 g``."""
    unit = _UNIT.match(key)
    if unit is None:
        return f"{key.replace('_', ' ')} {value}"
    suffix = "%" if unit.group(2) == "percent" else f" {unit.group(2)}"
    return f"{unit.group(1).replace('_', ' ')} {value}{suffix}"


def _described(name: str, properties: dict[str, Any]) -> str:
    shown = [_property_phrase(key, value) for key, value in list(properties.items())[:6]]
    return f"{name}: " + ", ".join(shown) + "." if shown else f"{name}."


def product_update(
    sku: str, product: dict[str, Any] | None, mentions: list[str], note: str
) -> dict[str, Any]:
    """The update_product arguments for one SKU."""
    existing = dict(product or {})
    properties: dict[str, Any] = dict(existing.get("properties") or {})
    learned: dict[str, Any] = {}
    sentences: list[str] = []
    for line in mentions:
        match = _PROPERTY.match(line)
        if match and sku.lower() not in match.group(1).lower():
            learned[_key(match.group(1))] = _value(match.group(2))
        elif sku.lower() not in line.lower() or len(line) > len(sku) + 3:
            sentences.append(line.rstrip(".") + ".")
    name = existing.get("name") or learned.pop("name", None) or f"Product {sku}"
    learned.pop("sku", None)
    description = existing.get("description") or " ".join(
        [_described(str(name), {**properties, **learned}), *sentences[:2]]
    )
    update: dict[str, Any] = {
        "sku": sku,
        "name": str(name),
        "description": f"{description} ({note})",
    }
    new_properties = {k: v for k, v in learned.items() if properties.get(k) != v}
    if new_properties:
        update["properties"] = new_properties
    return update


def product_updates(
    skus: list[str], read_results: list[Any], texts: list[str], note: str
) -> tuple[list[dict[str, Any]], list[str]]:
    """The update_product arguments of each SKU, and the SKUs no source has anything about."""
    products = _products_read(read_results)
    updates: list[dict[str, Any]] = []
    missing: list[str] = []
    for sku in skus:
        mentions = _mentions(sku, texts)
        if sku not in products and not mentions:
            missing.append(sku)
            continue
        updates.append(product_update(sku, products.get(sku), mentions, note))
    return updates, missing
