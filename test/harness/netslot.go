package harness

import (
	"errors"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
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
		f, err := os.OpenFile(filepath.Join(slotLockDir, fmt.Sprintf("net-%d.lock", n)), os.O_CREATE|os.O_RDWR, 0o644)
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

func (s netSlot) bridgeName() string  { return fmt.Sprintf("crien%d", s.n) }
func (s netSlot) networkName() string { return fmt.Sprintf("cri-enricherd-%d", s.n) }

func (s netSlot) subnet() netip.Prefix {
	return netip.PrefixFrom(netip.AddrFrom4([4]byte{10, 223, byte(s.n), 0}), 24)
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
