package query

import "strconv"

// MaxPID is the kernel's largest possible PID (PID_MAX_LIMIT, 2^22).
const MaxPID = 1 << 22

// ParsePID reads a PID as the HTTP API takes it: a decimal number from 1
// to MaxPID.
func ParsePID(raw string) (int, error) {
	pid, err := strconv.Atoi(raw)
	if err != nil || pid <= 0 || pid > MaxPID {
		return 0, failf(CodeInvalid, "malformed pid %q: want an integer from 1 to %d", Truncate(raw), MaxPID)
	}
	return pid, nil
}

// ParseCgroupID reads a cgroup ID as the HTTP API and the CLI take it: a
// positive decimal number, as bpf_get_current_cgroup_id() gives it.
func ParseCgroupID(raw string) (uint64, error) {
	id, err := strconv.ParseUint(raw, 10, 64)
	if err != nil || id == 0 {
		return 0, failf(CodeInvalid, "malformed cgroup id %q: want a positive decimal number", Truncate(raw))
	}
	return id, nil
}

// Truncate bounds client input echoed in an error message.
func Truncate(s string) string {
	if len(s) > 80 {
		return s[:80] + "..."
	}
	return s
}
