package harness

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"text/template"
)

// configParams fills the containerd config templates. Every path lives in the
// runtime's temp dir so two runtimes never share state.
type configParams struct {
	Root, State, Socket, Opt, RuncRoot string
	CNIBinDir, CNIConfDir              string
	PauseImage                         string
}

// containerd 1.6 speaks config version 2: the whole CRI config sits under
// the single "io.containerd.grpc.v1.cri" plugin.
const configV2 = `version = 2
root = {{q .Root}}
state = {{q .State}}
disabled_plugins = ["io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.aufs", "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.devmapper"]

[grpc]
  address = {{q .Socket}}

[plugins."io.containerd.internal.v1.opt"]
  path = {{q .Opt}}

[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = {{q .PauseImage}}
  restrict_oom_score_adj = true
  disable_tcp_service = true
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        Root = {{q .RuncRoot}}
        SystemdCgroup = false
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = {{q .CNIBinDir}}
    conf_dir = {{q .CNIConfDir}}
`

// containerd 2.x speaks config version 3: images and runtime are separate
// CRI plugins. NRI is disabled because its socket path is host-global.
const configV3 = `version = 3
root = {{q .Root}}
state = {{q .State}}
disabled_plugins = ["io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.devmapper", "io.containerd.nri.v1.nri"]

[grpc]
  address = {{q .Socket}}

[plugins."io.containerd.internal.v1.opt"]
  path = {{q .Opt}}

[plugins."io.containerd.nri.v1.nri"]
  disable = true

[plugins."io.containerd.grpc.v1.cri"]
  disable_tcp_service = true
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"

[plugins."io.containerd.cri.v1.images"]
  snapshotter = "overlayfs"
  [plugins."io.containerd.cri.v1.images".pinned_images]
    sandbox = {{q .PauseImage}}

[plugins."io.containerd.cri.v1.runtime"]
  restrict_oom_score_adj = true
  netns_mounts_under_state_dir = true
  [plugins."io.containerd.cri.v1.runtime".containerd]
    default_runtime_name = "runc"
    [plugins."io.containerd.cri.v1.runtime".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.cri.v1.runtime".containerd.runtimes.runc.options]
        Root = {{q .RuncRoot}}
        SystemdCgroup = false
  [plugins."io.containerd.cri.v1.runtime".cni]
    bin_dirs = [{{q .CNIBinDir}}]
    conf_dir = {{q .CNIConfDir}}
`

// renderConfig returns the containerd config for a config schema version.
func renderConfig(version int, p configParams) (string, error) {
	var src string
	switch version {
	case 2:
		src = configV2
	case 3:
		src = configV3
	default:
		return "", fmt.Errorf("unsupported containerd config version %d", version)
	}
	// TOML basic strings share JSON's escaping for the paths used here.
	quote := func(s string) (string, error) {
		b, err := json.Marshal(s)
		return string(b), err
	}
	tmpl, err := template.New("config").Funcs(template.FuncMap{"q": quote}).Parse(src)
	if err != nil {
		return "", fmt.Errorf("parse config template: %w", err)
	}
	var b strings.Builder
	if err := tmpl.Execute(&b, p); err != nil {
		return "", fmt.Errorf("render config: %w", err)
	}
	return b.String(), nil
}

// cniConflist is a bridge network with host-local addresses. isGateway
// stays false (it would switch on the host's ip_forward) and nothing is
// masqueraded: pods only need an address. Options.HostReachable gives the
// bridge its address beforehand instead. containerd adds the loopback
// network itself.
func cniConflist(slot netSlot, ipamDir string) ([]byte, error) {
	conf := map[string]any{
		"cniVersion": "1.0.0",
		"name":       slot.networkName(),
		"plugins": []any{map[string]any{
			"type":        "bridge",
			"bridge":      slot.bridgeName(),
			"isGateway":   false,
			"ipMasq":      false,
			"hairpinMode": false,
			"ipam": map[string]any{
				"type":    "host-local",
				"ranges":  [][]map[string]string{{{"subnet": slot.subnet().String()}}},
				"dataDir": ipamDir,
			},
		}},
	}
	b, err := json.MarshalIndent(conf, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("marshal cni conflist: %w", err)
	}
	return b, nil
}

// writeFiles writes the containerd config and the CNI conflist.
func writeFiles(l layout, v Variant, slot netSlot, cniBin string) error {
	cfg, err := renderConfig(v.ConfigVersion, configParams{
		Root: l.root, State: l.state, Socket: l.socket, Opt: l.opt, RuncRoot: l.runcRoot,
		CNIBinDir: cniBin, CNIConfDir: l.cniConf, PauseImage: PauseImage,
	})
	if err != nil {
		return err
	}
	if err := os.WriteFile(l.config, []byte(cfg), 0o644); err != nil {
		return fmt.Errorf("write containerd config: %w", err)
	}
	conflist, err := cniConflist(slot, l.cniIPAM)
	if err != nil {
		return err
	}
	path := filepath.Join(l.cniConf, "10-cri-enricherd.conflist")
	if err := os.WriteFile(path, conflist, 0o644); err != nil {
		return fmt.Errorf("write cni conflist: %w", err)
	}
	return nil
}
