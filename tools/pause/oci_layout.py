"""Pack one static executable as a single-layer OCI image layout tar (for `ctr images import`).

    python3 tools/pause/oci_layout.py BINARY NAME OUT.tar

The image runs BINARY as /pause. NAME is the full reference containerd records
(`localhost/cni-sysctl/pause:1`): the index carries it as `io.containerd.image.name` and its
tag as `org.opencontainers.image.ref.name`. The output is reproducible: fixed owners and
times, uncompressed layer (its digest is then also its diff_id).
"""

from __future__ import annotations

import hashlib
import io
import json
import platform
import sys
import tarfile
from pathlib import Path

# Go's GOARCH names, which OCI platforms use, for the machines Debian runs the tests on.
ARCH = {"x86_64": "amd64", "aarch64": "arm64", "armv7l": "arm", "ppc64le": "ppc64le", "s390x": "s390x"}

MEDIA_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
MEDIA_CONFIG = "application/vnd.oci.image.config.v1+json"
MEDIA_LAYER = "application/vnd.oci.image.layer.v1.tar"


def tar_bytes(members: list[tuple[str, bytes, int]]) -> bytes:
    """A tar of (name, content, mode) regular files, owned by root, dated 0."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        for name, data, mode in members:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.mode = mode
            info.uid = info.gid = 0
            info.uname = info.gname = "root"
            info.mtime = 0
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def descriptor(media_type: str, blob: bytes) -> dict[str, object]:
    return {"mediaType": media_type, "digest": "sha256:" + hashlib.sha256(blob).hexdigest(), "size": len(blob)}


def canonical(obj: object) -> bytes:
    return json.dumps(obj, sort_keys=True, separators=(",", ":")).encode()


def image_layout(binary: bytes, name: str) -> bytes:
    layer = tar_bytes([("pause", binary, 0o755)])
    layer_desc = descriptor(MEDIA_LAYER, layer)
    config = canonical(
        {
            "architecture": ARCH.get(platform.machine(), platform.machine()),
            "os": "linux",
            "config": {"Entrypoint": ["/pause"]},
            "rootfs": {"type": "layers", "diff_ids": [layer_desc["digest"]]},
        }
    )
    manifest = canonical(
        {
            "schemaVersion": 2,
            "mediaType": MEDIA_MANIFEST,
            "config": descriptor(MEDIA_CONFIG, config),
            "layers": [layer_desc],
        }
    )
    tag = name.rsplit(":", 1)[1] if ":" in name.rsplit("/", 1)[-1] else "latest"
    index = canonical(
        {
            "schemaVersion": 2,
            "manifests": [
                {
                    **descriptor(MEDIA_MANIFEST, manifest),
                    "annotations": {"io.containerd.image.name": name, "org.opencontainers.image.ref.name": tag},
                }
            ],
        }
    )
    files = [("oci-layout", canonical({"imageLayoutVersion": "1.0.0"}), 0o644), ("index.json", index, 0o644)]
    for blob in (layer, config, manifest):
        files.append((f"blobs/sha256/{hashlib.sha256(blob).hexdigest()}", blob, 0o644))
    return tar_bytes(files)


def main(argv: list[str]) -> int:
    if len(argv) != 3:
        sys.stderr.write("usage: oci_layout.py BINARY NAME OUT.tar\n")
        return 2
    binary, name, out = argv
    target = Path(out)
    tmp = target.with_name(target.name + ".tmp")
    tmp.write_bytes(image_layout(Path(binary).read_bytes(), name))
    tmp.replace(target)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
