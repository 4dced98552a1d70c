package cache

import (
	"slices"
	"strings"
	"testing"

	"github.com/cri-enricherd/cri-enricherd/pkg/enrich"
)

// listFixture fills a cache with two pods in two namespaces, a deleted
// container and a container without pod data. IDs are named for readability.
func listFixture(t *testing.T) (*Cache, map[string]string) {
	t.Helper()
	id := map[string]string{}
	for i, name := range []string{"sbA", "nginx", "old", "sbB", "server", "sidecar", "orphan"} {
		id[name] = testID(i)
	}
	clock := newFakeClock()
	c := New(WithClock(clock.Now))
	sbA := sandboxRecord(id["sbA"], "a", "web")
	sbB := sandboxRecord(id["sbB"], "b", "api")
	orphan := plainRecord(id["orphan"])
	orphan.Name = "orphan"
	for _, r := range []enrich.Record{
		sbB, containerRecord(id["sidecar"], sbB, "sidecar"), containerRecord(id["server"], sbB, "server"),
		orphan, containerRecord(id["old"], sbA, "old"), containerRecord(id["nginx"], sbA, "nginx"), sbA,
	} {
		c.Put(r)
	}
	c.MarkDeleted(id["old"], clock.Now())
	return c, id
}

func TestCache_ListFiltersAndSortsByNamespacePodNameID(t *testing.T) {
	c, id := listFixture(t)
	tests := []struct {
		name   string
		filter Filter
		want   []string
	}{
		{name: "everything live", want: []string{"orphan", "nginx", "sbA", "sbB", "server", "sidecar"}},
		{name: "namespace", filter: Filter{Namespace: "a"}, want: []string{"nginx", "sbA"}},
		{name: "namespace with deleted", filter: Filter{Namespace: "a", IncludeDeleted: true}, want: []string{"nginx", "old", "sbA"}},
		{name: "containers only", filter: Filter{ExcludeSandboxes: true}, want: []string{"orphan", "nginx", "server", "sidecar"}},
		{name: "pod name", filter: Filter{PodName: "api"}, want: []string{"sbB", "server", "sidecar"}},
		{name: "pod uid", filter: Filter{PodUID: "uid-a-web"}, want: []string{"nginx", "sbA"}},
		{name: "sandbox id includes the sandbox", filter: Filter{SandboxID: id["sbB"]}, want: []string{"sbB", "server", "sidecar"}},
		{name: "pod label", filter: Filter{Labels: map[string]string{"app": "web"}}, want: []string{"nginx", "sbA"}},
		{name: "container label", filter: Filter{Labels: map[string]string{"io.kubernetes.container.name": "server"}}, want: []string{"server"}},
		{name: "pod and container label together", filter: Filter{Labels: map[string]string{"app": "api", "io.kubernetes.container.name": "sidecar"}}, want: []string{"sidecar"}},
		{name: "label value must be equal", filter: Filter{Labels: map[string]string{"app": "we"}}},
		{name: "match predicate", filter: Filter{Match: func(r enrich.Record) bool { return strings.HasPrefix(r.Name, "s") }}, want: []string{"server", "sidecar"}},
		{name: "unknown namespace", filter: Filter{Namespace: "nope"}},
		{name: "all fields together", filter: Filter{Namespace: "b", PodName: "api", ExcludeSandboxes: true, Labels: map[string]string{"app": "api"}}, want: []string{"server", "sidecar"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var want []string
			for _, name := range tt.want {
				want = append(want, id[name])
			}
			if got := ids(c.List(tt.filter)); !slices.Equal(got, want) {
				t.Errorf("List = %v, want %v", names(got, id), tt.want)
			}
		})
	}
}

func TestCache_BySandboxReturnsLiveContainersWithoutTheSandbox(t *testing.T) {
	c, id := listFixture(t)
	tests := []struct {
		name    string
		sandbox string
		want    []string
	}{
		{name: "deleted container left out", sandbox: id["sbA"], want: []string{"nginx"}},
		{name: "sorted by name", sandbox: id["sbB"], want: []string{"server", "sidecar"}},
		{name: "unknown sandbox", sandbox: testID(99)},
		{name: "container id is not a sandbox", sandbox: id["nginx"]},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var want []string
			for _, name := range tt.want {
				want = append(want, id[name])
			}
			if got := ids(c.BySandbox(tt.sandbox)); !slices.Equal(got, want) {
				t.Errorf("BySandbox = %v, want %v", names(got, id), tt.want)
			}
		})
	}
}

func TestCache_BySandboxFollowsMovesAndRemovals(t *testing.T) {
	c, id := listFixture(t)
	sbA, _ := c.GetSandbox(id["sbA"])
	c.Put(containerRecord(id["server"], sbA, "server"))
	c.Delete(id["sidecar"])
	if got := names(ids(c.BySandbox(id["sbA"])), id); !slices.Equal(got, []string{"nginx", "server"}) {
		t.Errorf("BySandbox(sbA) = %v, want [nginx server]", got)
	}
	if got := c.BySandbox(id["sbB"]); len(got) != 0 {
		t.Errorf("BySandbox(sbB) = %v, want none", names(ids(got), id))
	}
	if len(c.bySandbox) != 1 {
		t.Errorf("sandbox index holds %d sandboxes, want 1 (empty sets dropped)", len(c.bySandbox))
	}
}

// names maps fixture IDs back to their readable names for failure messages.
func names(got []string, id map[string]string) []string {
	out := make([]string, len(got))
	for i, g := range got {
		out[i] = g[:MinPrefixLen]
		for name, v := range id {
			if v == g {
				out[i] = name
			}
		}
	}
	return out
}
