"""cni-sysctl under a real container runtime: podman (CNI backend, runc) running a container."""
