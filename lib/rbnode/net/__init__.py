"""The network side: WiFi and MQTT (link, mqtt_client), what is published (publisher,
discovery, outbox) and the commands received (commands). It reads from the hub and acts
through the node's and meters' own methods."""
