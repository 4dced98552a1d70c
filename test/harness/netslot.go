package harness

import (
	"errors"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// slotLockDir holds one lock file per network slot. The locks are flock(2)
// locks, so the kernel releases them when a test process dies and a crashed
// run never blocks a slot.
const slotLockDir = "/run/cri-enricherd-test"

const maxSlots = 254

// netSlot is the CNI network of one Runtime: its number picks the bridge
// name and the 10.223.<n>.0/24 subnet, so runtimes in one or several test
// processes never share a bridge or an address range.
type netSlot struct {
	n    int
	lock *os.File
}

// acquireNetSlot takes the lowest free slot.
func acquireNetSlot() (netSlot, error) {
	if err := os.MkdirAll(slotLockDir, 0o755); err != nil {
		return netSlot{}, fmt.Errorf("create slot lock dir: %w", err)
	}
	for n := 1; n <= maxSlots; n++ {
		f, err := os.OpenFile(slotLockPath(n), os.O_CREATE|os.O_RDWR, 0o644)
		if err != nil {
			return netSlot{}, fmt.Errorf("open slot lock: %w", err)
		}
		err = unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB)
		if err == nil {
			return netSlot{n: n, lock: f}, nil
		}
		_ = f.Close()
		if !errors.Is(err, unix.EWOULDBLOCK) {
			return netSlot{}, fmt.Errorf("lock slot %d: %w", n, err)
		}
	}
	return netSlot{}, fmt.Errorf("all %d network slots are in use", maxSlots)
}

func slotLockPath(n int) string { return filepath.Join(slotLockDir, fmt.Sprintf("net-%d.lock", n)) }

// slotHeld reports whether a live Runtime, in this process or another, holds
// slot n. It probes with a shared lock, so an acquirer racing the probe
// merely moves on to the next slot.
func slotHeld(n int) bool {
	f, err := os.Open(slotLockPath(n))
	if err != nil {
		return false
	}
	defer f.Close()
	return errors.Is(unix.Flock(int(f.Fd()), unix.LOCK_SH|unix.LOCK_NB), unix.EWOULDBLOCK)
}

func (s netSlot) bridgeName() string  { return fmt.Sprintf("crien%d", s.n) }
func (s netSlot) networkName() string { return networkNamePrefix + strconv.Itoa(s.n) }

const networkNamePrefix = "cri-enricherd-"

func (s netSlot) subnet() netip.Prefix {
	return netip.PrefixFrom(netip.AddrFrom4([4]byte{10, 223, byte(s.n), 0}), 24)
}

// gateway is the subnet's first address, which host-local never hands out.
func (s netSlot) gateway() netip.Addr { return s.subnet().Addr().Next() }

// createBridge makes the slot's bridge with the gateway address before the
// CNI plugin runs; the plugin then uses it as it is.
func (s netSlot) createBridge() error {
	name, addr := s.bridgeName(), netip.PrefixFrom(s.gateway(), s.subnet().Bits()).String()
	for _, args := range [][]string{
		{"link", "add", name, "type", "bridge"},
		{"addr", "add", addr, "dev", name},
		{"link", "set", name, "up"},
	} {
		if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
			return fmt.Errorf("ip %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(string(out)))
		}
	}
	return nil
}

// release deletes the bridge the CNI plugin made and drops the lock.
func (s *netSlot) release() error {
	if s.lock == nil {
		return nil
	}
	err := deleteLink(s.bridgeName())
	_ = s.lock.Close()
	s.lock = nil
	return err
}

// deleteLink removes a host network interface if it exists.
func deleteLink(name string) error {
	if _, err := os.Stat(filepath.Join("/sys/class/net", name)); errors.Is(err, os.ErrNotExist) {
		return nil
	}
	out, err := exec.Command("ip", "link", "delete", name).CombinedOutput()
	if err != nil {
		return fmt.Errorf("ip link delete %s: %w: %s", name, err, strings.TrimSpace(string(out)))
	}
	return nil
}
