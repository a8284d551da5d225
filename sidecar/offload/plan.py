"""What one ``/create`` will write remotely: the result of translation, before any call."""

from __future__ import annotations

from dataclasses import dataclass, field

from sidecar.core.pods import PodRef
from sidecar.core.shape import JsonObject


@dataclass(slots=True)
class OffloadPlan:
    """Remote objects for one local pod, in creation order (data first, then the pod)."""

    ref: PodRef
    namespace: str
    pod: JsonObject
    config_maps: list[JsonObject] = field(default_factory=list)
    secrets: list[JsonObject] = field(default_factory=list)
    pvcs: list[JsonObject] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    """Things dropped on purpose (unsupported volumes, ...), each naming pod and field."""

    def data(self) -> list[JsonObject]:
        """The objects the pod mounts: independent of each other, written before it."""
        return [*self.config_maps, *self.secrets, *self.pvcs]

    def objects(self) -> list[JsonObject]:
        """Every object, in the order they are created."""
        return [*self.data(), self.pod]
