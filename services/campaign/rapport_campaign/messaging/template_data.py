"""What message templates see: records read by attribute (`cart.items`, `item.name`,
`order.total`), never Python dicts.

A dict would answer `cart.items` with its own method and `{{ cart }}` with its repr; a
`Record` has only its fields, prints as a short label, and refuses a misspelt field, so the
strict check at save time catches `{{ cart.itemz }}`. The sandbox keeps templates off names
starting with `_`, which is where a record keeps its own state.
"""

from collections.abc import Iterable, Mapping
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Any


class Record:
    """A read-only record of named fields, as templates see it."""

    __slots__ = ("_fields", "_label")

    def __init__(self, fields: Mapping[str, Any], label: str) -> None:
        object.__setattr__(self, "_fields", dict(fields))
        object.__setattr__(self, "_label", label)

    def __getattr__(self, name: str) -> Any:
        try:
            return self._fields[name]
        except KeyError:
            raise AttributeError(name) from None

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError("a template record cannot be changed")

    def __str__(self) -> str:
        return self._label

    def __repr__(self) -> str:
        return f"<{self._label}>"


def record(fields: Mapping[str, Any] | None, label: str = "") -> Record | None:
    """A record of these fields (None stays None)."""
    return None if fields is None else Record(fields, label)


def customer(member: Any) -> Record:
    """The recipient (an audience member): `id`, `first_name`, `last_name`, `email`,
    `city`, `country`, `tier`, `orders`, `lifetime_value`, `loyalty_points`."""
    fields = {
        "id": member.customer_id,
        "first_name": member.first_name,
        "last_name": member.last_name,
        "email": member.email,
        "city": member.city,
        "country": member.country,
        "tier": member.tier,
        "orders": member.orders,
        "lifetime_value": str(member.lifetime_value),
        "loyalty_points": member.loyalty_points,
    }
    return Record(fields, f"{member.first_name} {member.last_name}")


def _money(value: Any) -> Decimal | None:
    if value is None:
        return None
    try:
        return Decimal(str(value)).quantize(Decimal("0.01"))
    except (InvalidOperation, ValueError):
        return None


def item(line: Mapping[str, Any]) -> Record:
    """One product line of a cart or an order: `name`, `product_id`, `sku`, `price`,
    `quantity`, `category`, `product_model`; prints as its name (and quantity)."""
    quantity = int(line.get("quantity") or 1)
    name = line.get("name") or line.get("product_id") or "item"
    fields = {
        "product_id": line.get("product_id"),
        "sku": line.get("sku"),
        "name": line.get("name"),
        "category": line.get("category"),
        "product_model": line.get("product_model"),
        "price": _money(line.get("price")),
        "quantity": quantity,
    }
    return Record(fields, f"{name} × {quantity}" if quantity > 1 else str(name))


def _items(lines: Iterable[Mapping[str, Any]] | None) -> tuple[Record, ...]:
    return tuple(item(line) for line in lines or ())


def _count(items: tuple[Record, ...]) -> str:
    return "1 item" if len(items) == 1 else f"{len(items)} items"


def cart(stored: Mapping[str, Any] | None) -> Record | None:
    """An abandoned cart: `cart_id`, `items`, `total` (also `value`), `currency`."""
    if stored is None:
        return None
    items = _items(stored.get("items"))
    total = _money(stored.get("value"))
    currency = stored.get("currency")
    fields = {
        "cart_id": stored.get("cart_id"),
        "items": items,
        "total": total,
        "value": total,
        "currency": currency,
    }
    return Record(fields, f"{_count(items)}, {total} {currency}")


def order(
    order_id: str,
    total: Any,
    currency: str | None,
    at: datetime,
    lines: Iterable[Mapping[str, Any]],
) -> Record:
    """An order: `order_id`, `items`, `total`, `currency`, `date` (when it was placed)."""
    items = _items(lines)
    amount = _money(total)
    fields = {
        "order_id": order_id,
        "items": items,
        "total": amount,
        "currency": currency,
        "date": at.date(),
    }
    return Record(fields, f"order {order_id}: {_count(items)}, {amount} {currency}")
