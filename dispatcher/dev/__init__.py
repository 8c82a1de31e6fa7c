"""Dev tooling, apart from the product: local Redis and SQS servers (`stack`), the demo and its
live view. Nothing in the running worker or API imports this package."""
