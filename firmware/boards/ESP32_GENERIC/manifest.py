# The port's default frozen modules (asyncio, networking bundle, ...), then the application.
include("$(PORT_DIR)/boards/manifest.py")
include("../../manifest.py")
