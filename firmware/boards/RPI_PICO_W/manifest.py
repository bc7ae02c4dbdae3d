# The Pico W board manifest (port defaults, networking bundle, ...), then the application.
include("$(BOARD_DIR)/manifest.py")
include("../../manifest.py")
