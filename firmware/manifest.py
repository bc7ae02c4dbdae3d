# The rbnode application frozen into a MicroPython image, on top of the board's own manifest
# (firmware/boards/<BOARD>/manifest.py includes both). boot.py, main.py and config.json stay
# on the device's filesystem, so users edit them with mpremote.
#
# mqtt_as is a pinned dependency (tools/deps.env), never part of this tree: `make firmware`
# (tools/firmware.py) puts the pinned commit's copy in build/deps/ and passes that directory
# as RBNODE_DEPS. The version module is generated there too (rbnode_build.py).
import os

_deps = os.environ.get("RBNODE_DEPS") or "../build/deps"

metadata(description="rbnode: MicroPython firmware for rbAmp energy-monitoring nodes",
         version="0.1.0")

include("../lib/rbamp/manifest.py")      # the driver, as it ships (no smbus.py)
package("rbnode", base_path="../lib")
module("rbboot.py", base_path="../lib")    # chooses the app at boot: never in an update
package("mqtt_as", base_path=_deps)
module("rbnode_build.py", base_path=_deps)

# micropython-lib: mqtt_as and mqtt.tls need ssl (the board manifests of ESP32_GENERIC,
# ESP32_GENERIC_S3 and RPI_PICO_W already have it through bundle-networking; require() of a
# package already required is a no-op).
require("ssl")
