// Command cnitool runs a CNI network configuration list against a network
// namespace, the way a container runtime would. It exists so that the tests
// and the demo of cni-sysctl drive the plugin through the real libcni.
//
//	cnitool add|check|del NETNAME NETNSPATH
//	cnitool version NETNAME
//
// Environment:
//
//	NETCONFPATH      directory holding NETNAME's conflist (default /etc/cni/net.d)
//	CNI_PATH         plugin directories, colon-separated
//	CNI_IFNAME       container interface name (default eth0)
//	CNI_ARGS         "K=V;K2=V2", passed to every plugin as CNI_ARGS
//	CAP_ARGS         JSON object of capability arguments (runtimeConfig)
//	CNI_CONTAINERID  container id (default: derived from NETNSPATH)
//	CNI_CACHE_DIR    libcni's result cache (default /var/lib/cni)
package main

import (
	"context"
	"crypto/sha512"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/containernetworking/cni/libcni"
	"github.com/containernetworking/cni/pkg/types"
)

const usage = `usage: cnitool add|check|del NETNAME NETNSPATH
       cnitool version NETNAME
environment: NETCONFPATH CNI_PATH CNI_IFNAME CNI_ARGS CAP_ARGS CNI_CONTAINERID CNI_CACHE_DIR`

func main() {
	if err := run(os.Args[1:]); err != nil {
		var cniErr *types.Error
		if errors.As(err, &cniErr) {
			// Keep libcni's context ("plugin type=... failed (add)") on its
			// own line, then the plugin's error object as it reported it.
			if msg := err.Error(); msg != cniErr.Error() {
				fmt.Fprintln(os.Stderr, msg)
			}
			out, _ := json.Marshal(cniErr)
			fmt.Fprintln(os.Stderr, string(out))
		} else {
			fmt.Fprintln(os.Stderr, "cnitool:", err)
		}
		os.Exit(1)
	}
}

func run(args []string) error {
	if len(args) < 2 {
		return errors.New(usage)
	}
	command, netName := args[0], args[1]

	confDir := getenv("NETCONFPATH", "/etc/cni/net.d")
	list, err := libcni.LoadConfList(confDir, netName)
	if err != nil {
		return fmt.Errorf("loading network %q from %s: %w", netName, confDir, err)
	}
	cni := libcni.NewCNIConfigWithCacheDir(
		filepath.SplitList(os.Getenv("CNI_PATH")), os.Getenv("CNI_CACHE_DIR"), nil)
	ctx := context.Background()

	if command == "version" {
		return printVersions(ctx, cni, list)
	}
	if len(args) != 3 {
		return errors.New(usage)
	}
	rt, err := runtimeConf(args[2])
	if err != nil {
		return err
	}

	switch command {
	case "add":
		result, err := cni.AddNetworkList(ctx, list, rt)
		if err != nil {
			return err
		}
		if err := result.PrintTo(os.Stdout); err != nil {
			return err
		}
		fmt.Println()
		return nil
	case "check":
		return cni.CheckNetworkList(ctx, list, rt)
	case "del":
		return cni.DelNetworkList(ctx, list, rt)
	}
	return fmt.Errorf("unknown command %q\n%s", command, usage)
}

// runtimeConf builds the per-attachment arguments from NETNSPATH and the
// environment.
func runtimeConf(netnsPath string) (*libcni.RuntimeConf, error) {
	netns, err := filepath.Abs(netnsPath)
	if err != nil {
		return nil, err
	}
	rt := &libcni.RuntimeConf{
		ContainerID: os.Getenv("CNI_CONTAINERID"),
		NetNS:       netns,
		IfName:      getenv("CNI_IFNAME", "eth0"),
	}
	if rt.ContainerID == "" {
		// Stable per netns, so add, check and del of one netns agree.
		sum := sha512.Sum512([]byte(netns))
		rt.ContainerID = fmt.Sprintf("cnitool-%x", sum[:10])
	}
	if s := os.Getenv("CNI_ARGS"); s != "" {
		for _, pair := range strings.Split(s, ";") {
			kv := strings.SplitN(pair, "=", 2)
			if len(kv) != 2 || kv[0] == "" {
				return nil, fmt.Errorf("CNI_ARGS: %q is not KEY=VALUE", pair)
			}
			rt.Args = append(rt.Args, [2]string{kv[0], kv[1]})
		}
	}
	if s := os.Getenv("CAP_ARGS"); s != "" {
		if err := json.Unmarshal([]byte(s), &rt.CapabilityArgs); err != nil {
			return nil, fmt.Errorf("CAP_ARGS: not a JSON object: %w", err)
		}
	}
	return rt, nil
}

// printVersions prints, for each plugin type of the list, the version
// information it reports, as one JSON object keyed by type.
func printVersions(ctx context.Context, cni *libcni.CNIConfig, list *libcni.NetworkConfigList) error {
	infos := map[string]interface{}{}
	for _, plugin := range list.Plugins {
		info, err := cni.GetVersionInfo(ctx, plugin.Network.Type)
		if err != nil {
			return fmt.Errorf("plugin %s: %w", plugin.Network.Type, err)
		}
		infos[plugin.Network.Type] = info
	}
	out, err := json.MarshalIndent(infos, "", "    ")
	if err != nil {
		return err
	}
	fmt.Println(string(out))
	return nil
}

func getenv(name, fallback string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return fallback
}
