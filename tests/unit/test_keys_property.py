"""Property: whatever string is offered as a key, an accepted one can only ever name a file
below /proc/sys/net, with the interface name inserted as exactly one path component."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from cni_sysctl.errors import KeyRejectedError
from cni_sysctl.keys import parse_key
from cni_sysctl.procsys import path_of
from cni_sysctl.request import check_ifname

ALPHABET = st.sampled_from(list("net.ipv46conf/neighIFNAME*?[ ]\x00\n-_aklm.."))
COMPONENT = st.sampled_from(
    ["net", "ipv4", "ipv6", "conf", "neigh", "IFNAME", "all", "lo", "..", ".", "", "eth0", "rp_filter", "a b", "*"]
)


GOOD = st.sampled_from(["ipv4", "ipv6", "conf", "neigh", "IFNAME", "all", "default", "lo", "rp_filter", "core", "eth0"])


def keys() -> st.SearchStrategy[str]:
    def join(head: str, parts: list[str], sep: str) -> str:
        return sep.join([head, *parts])

    # mostly well-formed shapes with an occasional tricky component, plus arbitrary text
    shaped = st.builds(
        join,
        st.sampled_from(["net", "ipv4", "ipv6", "kernel", "", "/proc"]),
        st.lists(st.one_of(GOOD, GOOD, GOOD, COMPONENT), min_size=1, max_size=5),
        st.sampled_from([".", "/"]),
    )
    return st.one_of(shaped, shaped, shaped, st.text(ALPHABET, max_size=40), st.text(max_size=30))


IFNAMES = st.text(st.sampled_from(list("eth0.1-_:/ ")), min_size=1, max_size=16).filter(
    lambda n: check_ifname(n) is None
)


@settings(max_examples=1500, deadline=None)
@given(keys(), IFNAMES)
def test_accepted_keys_stay_below_proc_sys_net(text: str, ifname: str) -> None:
    try:
        key = parse_key(text)
    except KeyRejectedError:
        return
    parts = key.expand(ifname)
    path = path_of(parts)
    assert path.startswith("/proc/sys/net/")
    assert path.count("/") == len(parts) + 2  # /proc/sys + one separator per component
    assert ".." not in parts
    assert all(p and "/" not in p and "\x00" not in p and not any(c.isspace() for c in p) for p in parts)
    if key.per_interface:
        assert parts[key.ifname_index or 0] == ifname
    else:
        assert parts == key.parts
