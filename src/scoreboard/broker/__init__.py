"""The Broker port (cross-instance fan-out of board changes) and its adapters: memory, Redis, RabbitMQ."""
