package httpapi

import (
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"go.uber.org/zap"

	"github.com/cri-enricherd/cri-enricherd/internal/querytest"
	"github.com/cri-enricherd/cri-enricherd/pkg/cache"
	"github.com/cri-enricherd/cri-enricherd/pkg/enrich"
	"github.com/cri-enricherd/cri-enricherd/pkg/query"
)

func TestHandler_CgroupsAnswers400For_MalformedPaths404ForNoContainer200ForAContainer(t *testing.T) {
	h, _ := newTestHandler(t)
	systemd := "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod0d3c0a3e_6d4e_4f3b_9a1a_0a1b2c3d4e5f.slice/cri-containerd-"
	tests := []struct {
		name, path string
		want       int
		body       string
	}{
		{"systemd scope", systemd + idA + ".scope", 200, `"name":"app"`},
		{"below the container", systemd + idA + ".scope/init.scope", 200, `"name":"app"`},
		{"under the mount point", "/sys/fs/cgroup/kubepods/burstable/pod1/" + idB, 200, `"name":"side"`},
		{"unknown container found on demand", "/kubepods/pod1/" + idN, 200, `"name":"new"`},
		{"container the runtime lacks", "/kubepods/pod1/" + strings.Repeat("e", 64), 404, "no container"},
		{"host cgroup", "/system.slice/sshd.service", 404, "names no container"},
		{"relative", "kubepods/pod1/" + idA, 400, "absolute"},
		{"empty", "", 400, "absolute"},
		{"dot dot", "/kubepods/../" + idA, 400, ".."},
		{"NUL", "/kubepods/\x00/" + idA, 400, "NUL"},
		{"too long", "/" + strings.Repeat("x", 4096) + "/" + idA, 400, "at most 4096"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			u := "/v1/cgroups?path=" + url.QueryEscape(tt.path)
			code, body := get(t, h, u)
			if code != tt.want || !strings.Contains(body, tt.body) {
				t.Errorf("GET %s = %d %q, want %d containing %q", u, code, body, tt.want, tt.body)
			}
		})
	}
	for _, u := range []string{"/v1/cgroups", "/v1/cgroups?path=/a&path=/b", "/v1/cgroups?file=/a"} {
		if code, _ := get(t, h, u); code != http.StatusBadRequest {
			t.Errorf("GET %s = %d, want 400", u, code)
		}
	}
}

func TestHandler_ListSelectsByEqualityLabelSelectorOnly(t *testing.T) {
	h, _ := newTestHandler(t)
	tests := []struct {
		selector string
		want     int // records, -1 for a 400
	}{
		{"", 3},
		{"io.kubernetes.container.name=app", 1},
		{"io.kubernetes.container.name==app", 1},
		{" io.kubernetes.container.name = app ", 1},
		{"app.kubernetes.io/name=web", 3},
		{"app.kubernetes.io/name=web,io.kubernetes.container.name=side", 1},
		{"app.kubernetes.io/name=db", 0},
		{"app.kubernetes.io/name!=web", -1},
		{"app.kubernetes.io/name in (web)", -1},
		{"app.kubernetes.io/name", -1},
		{"!app.kubernetes.io/name", -1},
		{"a=b,a=c", -1},
		{"a=b=c", -1},
		{"Bad_Prefix/a=b", -1},
	}
	for _, tt := range tests {
		t.Run(tt.selector, func(t *testing.T) {
			code, body := get(t, h, "/v1/containers?selector="+url.QueryEscape(tt.selector))
			if tt.want < 0 {
				if code != http.StatusBadRequest || !strings.Contains(body, "selector") {
					t.Errorf("selector %q = %d %q, want 400 naming the selector", tt.selector, code, body)
				}
				return
			}
			var out struct {
				Items []json.RawMessage `json:"items"`
			}
			if err := json.Unmarshal([]byte(body), &out); err != nil || code != 200 || len(out.Items) != tt.want {
				t.Errorf("selector %q = %d with %d items (%v), want %d", tt.selector, code, len(out.Items), err, tt.want)
			}
		})
	}
}

func TestHandler_PodsListsEachPodWithItsSandboxAndContainers(t *testing.T) {
	h, _ := newTestHandler(t)
	tests := []struct {
		url  string
		want int // pods, -1 for a 400
	}{
		{"/v1/pods", 1},
		{"/v1/pods?namespace=shop&pod=web-0", 1},
		{"/v1/pods?selector=app.kubernetes.io/name%3Dweb", 1},
		{"/v1/pods?selector=io.kubernetes.container.name%3Dapp", 0}, // container labels do not select pods
		{"/v1/pods?namespace=other", 0},
		{"/v1/pods?sandboxes=false", -1},
		{"/v1/pods?selector=a!%3Db", -1},
	}
	for _, tt := range tests {
		code, body := get(t, h, tt.url)
		if tt.want < 0 {
			if code != http.StatusBadRequest {
				t.Errorf("GET %s = %d, want 400", tt.url, code)
			}
			continue
		}
		var out struct {
			Items []query.PodRecords `json:"items"`
		}
		if err := json.Unmarshal([]byte(body), &out); err != nil || code != 200 || len(out.Items) != tt.want {
			t.Fatalf("GET %s = %d %s, want %d pods", tt.url, code, body, tt.want)
		}
		if tt.want == 0 {
			continue
		}
		p := out.Items[0]
		if p.Pod.Name != "web-0" || p.Sandbox == nil || p.Sandbox.ID != idC || len(p.Containers) != 2 {
			t.Errorf("GET %s: pod %+v, want web-0 with sandbox %s and 2 containers", tt.url, p, idC[:12])
		}
	}
}

func TestHandler_IPsAnswerTheLivePodHoldingAnAddressNow(t *testing.T) {
	c := cache.New()
	live := &enrich.Pod{SandboxID: idC, Name: "web-0", Namespace: "shop", State: "ready", IP: "10.0.0.7",
		AdditionalIPs: []string{"fd00::7"}}
	c.Put(enrich.Record{ID: idC, ShortID: idC[:12], Name: "web-0", State: "ready", IsPodSandbox: true, Pod: live})
	c.Put(enrich.Record{ID: idA, ShortID: idA[:12], Name: "app", State: "running", Pod: live})
	// A stopped pod whose record still carries its old address must never
	// answer: the address may already be another pod's.
	stopped := &enrich.Pod{SandboxID: idB, Name: "old-0", Namespace: "shop", State: "notready", IP: "10.0.0.8"}
	c.Put(enrich.Record{ID: idB, ShortID: idB[:12], Name: "old-0", State: "notready", IsPodSandbox: true, Pod: stopped})
	h := NewHandler(query.New(c, nil, querytest.PIDs{}, zap.NewNop(), 0), zap.NewNop(), Options{})
	tests := []getCase{
		{"live pod", "/v1/ips/10.0.0.7", 200, `"containers":[{"id":"` + idA},
		{"live pod by its IPv6 address", "/v1/ips/fd00::7", 200, `"sandbox_id":"` + idC},
		{"IPv4-mapped IPv6 form", "/v1/ips/::ffff:10.0.0.7", 200, `"sandbox_id":"` + idC},
		{"stopped pod", "/v1/ips/10.0.0.8", 404, "no live pod"},
		{"unknown address", "/v1/ips/10.9.9.9", 404, "no live pod"},
		{"not an address", "/v1/ips/web-0", 400, "malformed ip"},
		{"zoned address", "/v1/ips/fe80::1%25eth0", 400, "malformed ip"},
	}
	checkGets(t, h, tests)
}

func TestHandler_CgroupIDsAnswer400ForANonNumber404ForAnUnknownOrRemovedCgroup(t *testing.T) {
	c := cache.New()
	c.Put(enrich.Record{ID: idA, ShortID: idA[:12], Name: "app", State: "running"})
	c.CgroupSeen(idA, 4242)
	c.Put(enrich.Record{ID: idB, ShortID: idB[:12], Name: "gone", State: "exited"})
	c.CgroupSeen(idB, 77)
	c.CgroupGone(idB)
	h := NewHandler(query.New(c, nil, querytest.PIDs{}, zap.NewNop(), 0), zap.NewNop(), Options{})
	tests := []getCase{
		{"live cgroup", "/v1/cgroup-ids/4242", 200, `"cgroup_id":4242`},
		{"removed cgroup", "/v1/cgroup-ids/77", 404, "no live container"},
		{"unknown cgroup", "/v1/cgroup-ids/9", 404, "no live container"},
		{"zero", "/v1/cgroup-ids/0", 400, "malformed cgroup id"},
		{"negative", "/v1/cgroup-ids/-3", 400, "malformed cgroup id"},
		{"hex", "/v1/cgroup-ids/0x10", 400, "malformed cgroup id"},
		{"too large", "/v1/cgroup-ids/18446744073709551616", 400, "malformed cgroup id"},
	}
	checkGets(t, h, tests)
}
