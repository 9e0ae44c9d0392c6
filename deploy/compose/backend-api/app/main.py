from app.orders import Order, total_quantity

print(total_quantity([Order("tea", 2), Order("cake", 1)]))
