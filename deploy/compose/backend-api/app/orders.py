"""Orders of the example backend."""


class Order:
    def __init__(self, item: str, quantity: int) -> None:
        self.item = item
        self.quantity = quantity


def total_quantity(orders: list[Order]) -> int:
    return sum(order.quantity for order in orders)
