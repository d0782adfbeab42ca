"""The Kafka event bus: clients, the topic catalog, the embedded broker, the runner that feeds stages."""
