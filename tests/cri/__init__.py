"""cni-sysctl under Kubernetes' runtime path: containerd's CRI plugin running pod sandboxes."""
