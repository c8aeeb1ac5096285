"""cni-sysctl: a CNI meta plugin that sets network sysctls inside a container's netns.

This module deliberately imports nothing: every plugin start pays for what is imported here.
"""

__version__ = "0.1.0"
# CNI specification versions this plugin speaks (VERSION needs nothing else).
SUPPORTED_VERSIONS = ("0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0")
# Bytes of network configuration read from stdin (the daemon's wire has the same limit).
MAX_STDIN = 4 << 20
