"""From HTTP to the service's inputs and back: bodies, image URLs, JSON and event streams."""
