// Package id owns how runtime IDs are spelled: a full container or sandbox
// ID is 64 lowercase hex digits (containerd, CRI-O and cgroup paths all
// spell it so), and a prefix of at least ShortLen of them names one too, as
// crictl and docker print them. Every package that checks an ID asks here,
// so the API, the cache, the cgroup parser and enrichment agree.
package id

// Len is the length of a full ID; ShortLen the shortest prefix accepted.
const (
	Len      = 64
	ShortLen = 12
)

// IsFull reports whether s is a full ID: exactly Len lowercase hex digits.
// Upper case is refused rather than folded: runtimes never print it.
func IsFull(s string) bool { return len(s) == Len && isHex(s) }

// IsPrefix reports whether s can name an ID: ShortLen to Len lowercase hex
// digits.
func IsPrefix(s string) bool { return len(s) >= ShortLen && len(s) <= Len && isHex(s) }

// IsHexDigit reports whether c is a lowercase hex digit.
func IsHexDigit(c byte) bool { return ('0' <= c && c <= '9') || ('a' <= c && c <= 'f') }

func isHex(s string) bool {
	for i := 0; i < len(s); i++ {
		if !IsHexDigit(s[i]) {
			return false
		}
	}
	return true
}
