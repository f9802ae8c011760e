SELECT order_id, customer, amount, placed_at FROM drops
