# Host build of the unix port (the standard variant's frozen modules), with the application
# frozen: the same image contents as on the chips, for tests and benchmarks.
include("$(PORT_DIR)/variants/standard/manifest.py")
include("../../manifest.py")
