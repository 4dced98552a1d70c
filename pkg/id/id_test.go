package id

import (
	"strings"
	"testing"
)

func TestIsFullAndIsPrefix_AcceptOnlyLowercaseHexOfTheRightLength(t *testing.T) {
	full := strings.Repeat("0123456789abcdef", 4)
	tests := []struct {
		s            string
		full, prefix bool
	}{
		{full, true, true},
		{full[:12], false, true},
		{full[:11], false, false},
		{full + "0", false, false},
		{strings.ToUpper(full), false, false},
		{full[:63] + "g", false, false},
		{"", false, false},
	}
	for _, tt := range tests {
		if got := IsFull(tt.s); got != tt.full {
			t.Errorf("IsFull(%q) = %v, want %v", tt.s, got, tt.full)
		}
		if got := IsPrefix(tt.s); got != tt.prefix {
			t.Errorf("IsPrefix(%q) = %v, want %v", tt.s, got, tt.prefix)
		}
	}
}
