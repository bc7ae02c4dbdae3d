# The chips' memory model on the host (tools/boards.py, "unix32"): the unix port built 32-bit
# with float32, with the standard variant's frozen modules and the application frozen.
include("$(PORT_DIR)/variants/standard/manifest.py")
include("../../manifest.py")
