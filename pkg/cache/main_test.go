package cache

import (
	"crypto/sha256"
	"encoding/hex"
	"strconv"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/cri-enricherd/cri-enricherd/pkg/enrich"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// fakeClock is a settable clock for grace period tests.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func newFakeClock() *fakeClock {
	return &fakeClock{now: time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)}
}

func (f *fakeClock) Now() time.Time {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.now
}

func (f *fakeClock) Set(t time.Time) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.now = t
}

// testID returns a well spread 64-hex ID, like the ones runtimes generate.
func testID(n int) string {
	sum := sha256.Sum256([]byte(strconv.Itoa(n)))
	return hex.EncodeToString(sum[:])
}

func sandboxRecord(id, namespace, pod string) enrich.Record {
	return enrich.Record{
		ID:           id,
		Name:         pod,
		State:        "ready",
		IsPodSandbox: true,
		Pod: &enrich.Pod{
			SandboxID: id,
			Name:      pod,
			Namespace: namespace,
			UID:       "uid-" + namespace + "-" + pod,
			Labels:    map[string]string{"app": pod},
		},
	}
}

func containerRecord(id string, sandbox enrich.Record, name string) enrich.Record {
	return enrich.Record{
		ID:     id,
		Name:   name,
		State:  "running",
		Labels: map[string]string{"io.kubernetes.container.name": name},
		Pod:    sandbox.Pod,
	}
}

func plainRecord(id string) enrich.Record {
	return enrich.Record{ID: id, Name: "c-" + id[:4], State: "running"}
}

func ids(recs []enrich.Record) []string {
	out := make([]string, len(recs))
	for i, r := range recs {
		out[i] = r.ID
	}
	return out
}
