# Frozen modules of the rbnode firmware image, on top of the port's default manifest.
# boot.py, main.py and config.json stay on the device's filesystem.
# (mqtt_as and per-board manifests come with the firmware-image issue.)
include("$(PORT_DIR)/boards/manifest.py")
package("rbnode", base_path="../lib")
