"""End-to-end tests: cni-sysctl through the real libcni client and the Debian CNI plugins."""
