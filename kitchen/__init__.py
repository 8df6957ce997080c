"""Kitchen: restaurant orders in, ingredient stock and low-stock alerts out, over Kafka."""
