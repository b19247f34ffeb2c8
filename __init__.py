"""CropMapper QGIS plugin entry point. Imports nothing heavy: torch is loaded only when work starts."""


def classFactory(iface):  # noqa: N802 (QGIS's name)
    """Called by QGIS (with ``iface=None`` under qgis_process) to create the plugin."""
    from .plugin import CropMapperPlugin

    return CropMapperPlugin(iface)
