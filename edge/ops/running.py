"""Which of the pipeline's long-running services (bridge, parser, sink) run here,
told by their own metrics endpoints (``edge status``'s probe), and the consumer
group each reads according to the same settings.

Evidence for ``edge topics --delete`` where the broker cannot tell whether a
group is in use (tansu lists no members): a parser or sink that answers on its
metrics port and whose settings name the group is using it.
"""

from __future__ import annotations

from dataclasses import dataclass

from edge.config.sections import MetricsSettings
from edge.config.services import with_units
from edge.config.settings import SERVICE_SETTINGS, SettingsError
from edge.ops.status import answers


@dataclass(frozen=True)
class Running:
    service: str
    port: int
    group: str | None  # its consumer group per the settings; None: none (bridge) or not readable

    def text(self) -> str:
        group = f", consumer group {self.group}" if self.group else ""
        return f"the {self.service} answers on metrics port {self.port} here{group}"


def _group(service, config: str | None) -> str | None:
    try:
        settings = SERVICE_SETTINGS[service.name].load(config)
    except SettingsError:
        return None  # its own settings are broken: the port still tells that it runs
    return getattr(getattr(settings, service.name, None), "group_id", None)


def running_here(config: str | None, metrics: MetricsSettings) -> list[Running]:
    """The long-running services whose metrics answer on this host, per ``[metrics]``."""
    if not metrics.enabled:
        return []
    found = []
    for service in with_units():
        port = metrics.ports.get(service.name)
        if service.long_running and port and answers(service.name, metrics.host, port):
            found.append(Running(service.name, port, _group(service, config)))
    return found
