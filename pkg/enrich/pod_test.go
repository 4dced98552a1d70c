package enrich

import (
	"testing"
	"time"
)

func TestPodKey_IsThePodsUIDAcrossItsSandboxes(t *testing.T) {
	tests := []struct {
		pod  Pod
		want string
	}{
		{Pod{SandboxID: "s1", UID: "u1", Namespace: "shop", Name: "web-0"}, "u1"},
		{Pod{SandboxID: "s2", UID: "u1", Namespace: "shop", Name: "web-0"}, "u1"},
		{Pod{SandboxID: "s3", Namespace: "shop", Name: "web-0"}, "shop/web-0"},
		{Pod{SandboxID: "s4"}, "s4"},
	}
	for _, tt := range tests {
		if got := PodKey(&tt.pod); got != tt.want {
			t.Errorf("PodKey(%+v) = %q, want %q", tt.pod, got, tt.want)
		}
	}
}

func TestMoreCurrent_PrefersReadyThenLaterAttemptThenLaterCreation(t *testing.T) {
	early, late := time.Unix(1, 0), time.Unix(2, 0)
	tests := []struct {
		name string
		a, b Pod
		want bool
	}{
		{"ready beats stopped", Pod{State: "ready"}, Pod{State: "notready", Attempt: 3}, true},
		{"later attempt", Pod{State: "notready", Attempt: 1}, Pod{State: "notready"}, true},
		{"later creation", Pod{State: "ready", CreatedAt: &late}, Pod{State: "ready", CreatedAt: &early}, true},
		{"earlier creation", Pod{State: "ready", CreatedAt: &early}, Pod{State: "ready", CreatedAt: &late}, false},
	}
	for _, tt := range tests {
		if got := MoreCurrent(&tt.a, &tt.b); got != tt.want {
			t.Errorf("%s: MoreCurrent = %v, want %v", tt.name, got, tt.want)
		}
	}
}
