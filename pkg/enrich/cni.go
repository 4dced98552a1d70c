package enrich

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/netip"
	"sort"
	"strings"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// podNetwork is what a sandbox answer says about the pod's addresses.
type podNetwork struct {
	ip            string
	additionalIPs []string
	cniResult     string
}

// sandboxNetwork takes the IPs from the status. Only when the status has no
// primary IP are the IPs derived from the CNI result (first IPv4, else first
// IPv6, the rest as additional), because some runtimes and versions leave
// the status empty while the CNI result has the addresses.
func sandboxNetwork(ns *runtimeapi.PodSandboxNetworkStatus, info *sandboxInfo, ready bool) (podNetwork, error) {
	cni, cniAddrs, err := cniResult(info)
	n := podNetwork{ip: ns.GetIp(), additionalIPs: []string{}, cniResult: cni}
	for _, a := range ns.GetAdditionalIps() {
		if ip := a.GetIp(); ip != "" && ip != n.ip {
			n.additionalIPs = append(n.additionalIPs, ip)
		}
	}
	// A stopped sandbox's status says it holds no address any more; the
	// CNI result it keeps is history, and its addresses may be another
	// pod's by now.
	if n.ip == "" && ready {
		n.ip, n.additionalIPs = primaryIP(append(n.additionalIPs, cniAddrs...))
	}
	return n, err
}

// primaryIP picks the first IPv4 address (else the first one) as the
// primary, as the kubelet does for a dual-stack pod, and returns the rest,
// without duplicates, in their order.
func primaryIP(ips []string) (string, []string) {
	rest := make([]string, 0, len(ips))
	seen := make(map[string]bool, len(ips))
	for _, ip := range ips {
		if !seen[ip] {
			seen[ip] = true
			rest = append(rest, ip)
		}
	}
	if len(rest) == 0 {
		return "", rest
	}
	primary := 0
	for i, ip := range rest {
		if a, err := netip.ParseAddr(ip); err == nil && a.Unmap().Is4() {
			primary = i
			break
		}
	}
	ip := rest[primary]
	return ip, append(rest[:primary], rest[primary+1:]...)
}

// cniResult returns a sandbox's CNI result as compact JSON and the pod
// addresses in it. containerd keeps it in info.cniResult (null for a
// host-network pod), CRI-O in the spec annotation io.kubernetes.cri-o.CNIResult.
func cniResult(info *sandboxInfo) (string, []string, error) {
	if raw := info.CNIResult; len(raw) > 0 && string(raw) != "null" {
		return containerdCNIResult(raw)
	}
	if s := info.RuntimeSpec.annotations().CRIOCNIResult; s != "" && s != "null" {
		return crioCNIResult(s)
	}
	return "", nil, nil
}

// containerdInterface is one entry of containerd's cniResult.Interfaces.
type containerdInterface struct {
	IPConfigs []struct {
		IP string `json:"IP"`
	} `json:"IPConfigs"`
	Sandbox string `json:"Sandbox"`
}

// containerdCNIResult drops the loopback and the host-side veth interfaces
// (noise that repeats for every pod) and keeps everything else as it is.
func containerdCNIResult(raw json.RawMessage) (string, []string, error) {
	var top map[string]json.RawMessage
	if err := json.Unmarshal(raw, &top); err != nil {
		return "", nil, fmt.Errorf("containerd cni result: %w", err)
	}
	if r, ok := top["Interfaces"]; ok && string(r) != "null" {
		ifaces, addrs, err := podInterfaces(r)
		if err != nil {
			return "", nil, err
		}
		out, err := marshalCompact(ifaces)
		if err != nil {
			return "", nil, err
		}
		top["Interfaces"] = out
		result, err := marshalCompact(top)
		return string(result), addrs, err
	}
	result, err := marshalCompact(top)
	return string(result), nil, err
}

// podInterfaces decodes containerd's Interfaces map without lo and veth*.
// Addresses come from the interfaces inside the pod, or from all remaining
// interfaces when the plugin did not say which side they are on.
func podInterfaces(raw json.RawMessage) (map[string]json.RawMessage, []string, error) {
	var ifaces map[string]json.RawMessage
	if err := json.Unmarshal(raw, &ifaces); err != nil {
		return nil, nil, fmt.Errorf("containerd cni result interfaces: %w", err)
	}
	var podAddrs, otherAddrs []string
	for _, name := range sortedKeys(ifaces) {
		if name == "lo" || strings.HasPrefix(name, "veth") {
			delete(ifaces, name)
			continue
		}
		var iface containerdInterface
		if err := json.Unmarshal(ifaces[name], &iface); err != nil {
			return nil, nil, fmt.Errorf("containerd cni result interface %q: %w", name, err)
		}
		for _, c := range iface.IPConfigs {
			if iface.Sandbox != "" {
				podAddrs = appendPodAddr(podAddrs, c.IP)
			} else {
				otherAddrs = appendPodAddr(otherAddrs, c.IP)
			}
		}
	}
	if len(podAddrs) == 0 {
		podAddrs = otherAddrs
	}
	return ifaces, podAddrs, nil
}

// crioCNIResult compacts CRI-O's standard CNI result. Its interfaces stay:
// the ips entries point at them by index.
func crioCNIResult(s string) (string, []string, error) {
	var buf bytes.Buffer
	if err := json.Compact(&buf, []byte(s)); err != nil {
		return "", nil, fmt.Errorf("cri-o cni result: %w", err)
	}
	var r struct {
		IPs []struct {
			Address string `json:"address"`
		} `json:"ips"`
	}
	if err := json.Unmarshal(buf.Bytes(), &r); err != nil {
		return "", nil, fmt.Errorf("cri-o cni result: %w", err)
	}
	var addrs []string
	for _, ip := range r.IPs {
		addrs = appendPodAddr(addrs, ip.Address)
	}
	return buf.String(), addrs, nil
}

// appendPodAddr appends s (an address or CIDR) as a bare address, skipping
// what cannot be a pod's address: unparsable, loopback, unspecified.
func appendPodAddr(addrs []string, s string) []string {
	a, err := netip.ParseAddr(s)
	if err != nil {
		p, perr := netip.ParsePrefix(s)
		if perr != nil {
			return addrs
		}
		a = p.Addr()
	}
	if a.IsLoopback() || a.IsUnspecified() {
		return addrs
	}
	return append(addrs, a.String())
}

// marshalCompact encodes v as compact JSON (maps in sorted key order)
// without the HTML escaping json.Marshal adds, so values keep their bytes.
func marshalCompact(v any) (json.RawMessage, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, fmt.Errorf("encode cni result: %w", err)
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n")), nil
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
