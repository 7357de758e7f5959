"""``edge bridge``: RabbitMQ queue -> Kafka raw topic."""

from edge.bridge.stage import add_arguments, run

__all__ = ["add_arguments", "run"]
