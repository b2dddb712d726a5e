"""The Models API: the configured models first, then the public names they answer to."""

from __future__ import annotations

from pixelsmith.api.protocol import ModelCard, ModelList
from pixelsmith.engine.registry import ModelRegistry
from pixelsmith.errors import ModelNotFoundError
from pixelsmith.service.names import snapshot_base


class ModelCatalog:
    def __init__(self, registry: ModelRegistry, *, created: int) -> None:
        own_ids = {spec.id for spec in registry.specs}

        def owner(name: str) -> str:
            # Hub-style ids name their owner ("stabilityai/sd-turbo"); everything else is ours.
            return name.split("/", 1)[0] if name in own_ids and "/" in name else "pixelsmith"

        self._cards = [
            ModelCard(id=name, created=created, owned_by=owner(name)) for name in registry.names()
        ]

    def list(self) -> ModelList:
        return ModelList(data=list(self._cards))

    def retrieve(self, model_id: str) -> ModelCard:
        by_id = {card.id: card for card in self._cards}
        if model_id in by_id:
            return by_id[model_id]
        base = snapshot_base(model_id)
        if base in by_id:  # a dated snapshot is served like its base name
            return by_id[base].model_copy(update={"id": model_id})
        raise ModelNotFoundError(model_id, [card.id for card in self._cards])
