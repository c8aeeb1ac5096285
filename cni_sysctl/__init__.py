"""cni-sysctl: a CNI meta plugin that sets network sysctls inside a container's netns.

This module deliberately imports nothing: every plugin start pays for what is imported here.
"""

__version__ = "0.1.0"
