package fakecri_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"regexp"
	"testing"
	"time"

	"go.uber.org/goleak"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/cri-enricherd/cri-enricherd/pkg/criclient"
	"github.com/cri-enricherd/cri-enricherd/pkg/enrich"
	"github.com/cri-enricherd/cri-enricherd/test/fakecri"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

var fullID = regexp.MustCompile(`^[0-9a-f]{64}$`)

func dial(t *testing.T, endpoint string, timeout time.Duration) *criclient.Client {
	t.Helper()
	c, err := criclient.Dial(endpoint, criclient.Options{Timeout: timeout})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

func TestRuntime_AnswersVerboseStatusInContainerdsLayout(t *testing.T) {
	rt := fakecri.New()
	sb, ids := rt.AddPod(fakecri.PodSpec{Name: "web-0", Namespace: "shop", Containers: []fakecri.ContainerSpec{{Name: "app"}, {Name: "side"}}})
	c := dial(t, rt.Start(t), time.Second)
	ctx := context.Background()

	cs, err := c.ContainerStatus(ctx, ids[0])
	if err != nil {
		t.Fatal(err)
	}
	var info struct {
		SandboxID   string `json:"sandboxID"`
		PID         int    `json:"pid"`
		RuntimeSpec struct {
			Annotations map[string]string `json:"annotations"`
			Linux       struct {
				CgroupsPath string `json:"cgroupsPath"`
			} `json:"linux"`
		} `json:"runtimeSpec"`
	}
	if err := json.Unmarshal([]byte(cs.GetInfo()["info"]), &info); err != nil {
		t.Fatalf("info is not JSON: %v", err)
	}
	if info.SandboxID != sb || info.PID == 0 || info.RuntimeSpec.Annotations["io.kubernetes.cri.sandbox-id"] != sb ||
		info.RuntimeSpec.Linux.CgroupsPath == "" {
		t.Errorf("container info = %+v, want sandboxID, pid, sandbox-id annotation and cgroupsPath", info)
	}
	if got := len(cs.GetStatus().GetLabels()); got != 4 {
		t.Errorf("container has %d labels, want the kubelet's 4", got)
	}

	res, err := enrich.Container(cs, "containerd", enrich.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if res.SandboxID != sb || res.Record.Name != "app" || res.Record.State != "running" || res.LabelPod.Name != "web-0" {
		t.Errorf("enriched container = %+v", res)
	}
	ss, err := c.PodSandboxStatus(ctx, sb)
	if err != nil {
		t.Fatal(err)
	}
	rec, err := enrich.Sandbox(ss, "containerd", enrich.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if rec.Pod.IP == "" || rec.Pod.IP != ss.GetStatus().GetNetwork().GetIp() || rec.Pod.Namespace != "shop" || rec.CgroupPath == "" {
		t.Errorf("enriched sandbox pod = %+v", rec.Pod)
	}
	var cni struct{ Interfaces map[string]json.RawMessage }
	if err := json.Unmarshal([]byte(rec.Pod.CNIResult), &cni); err != nil || len(cni.Interfaces) == 0 {
		t.Errorf("cni result %q: %v", rec.Pod.CNIResult, err)
	}
	if _, ok := cni.Interfaces["eth0"]; !ok {
		t.Errorf("cni result %q lacks eth0", rec.Pod.CNIResult)
	}
}

func TestRuntime_HostNetworkPodHasNoCNIResult(t *testing.T) {
	rt := fakecri.New()
	sb, _ := rt.AddPod(fakecri.PodSpec{HostNetwork: true})
	c := dial(t, rt.Start(t), time.Second)
	ss, err := c.PodSandboxStatus(context.Background(), sb)
	if err != nil {
		t.Fatal(err)
	}
	rec, err := enrich.Sandbox(ss, "containerd", enrich.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if !rec.Pod.HostNetwork || rec.Pod.IP != "" || rec.Pod.CNIResult != "" {
		t.Errorf("host-network pod = %+v", rec.Pod)
	}
}

func TestRuntime_IDsAreDeterministicFullIDs(t *testing.T) {
	a, b := fakecri.New(), fakecri.New()
	sa, ca := a.AddPod(fakecri.PodSpec{Containers: make([]fakecri.ContainerSpec, 3)})
	sb, cb := b.AddPod(fakecri.PodSpec{Containers: make([]fakecri.ContainerSpec, 3)})
	if sa != sb || len(ca) != 3 || ca[2] != cb[2] {
		t.Errorf("two fresh runtimes gave different IDs: %s %v / %s %v", sa, ca, sb, cb)
	}
	for _, id := range append(ca, sa, fakecri.ID("x")) {
		if !fullID.MatchString(id) {
			t.Errorf("id %q is not 64 lowercase hex", id)
		}
	}
}

func TestRuntime_AddPodTakesTheSandboxIDItIsGiven(t *testing.T) {
	rt := fakecri.New()
	want := fakecri.ID("chosen")
	got, _ := rt.AddPod(fakecri.PodSpec{ID: want})
	if got != want {
		t.Errorf("AddPod = %s, want the given %s", got, want)
	}
	c := dial(t, rt.Start(t), time.Second)
	if _, err := c.PodSandboxStatus(context.Background(), want); err != nil {
		t.Errorf("PodSandboxStatus of the given ID: %v", err)
	}
}

func TestRuntime_ListsAndStatusFollowTheLifecycle(t *testing.T) {
	rt := fakecri.New()
	sb, ids := rt.AddPod(fakecri.PodSpec{Containers: make([]fakecri.ContainerSpec, 2)})
	c := dial(t, rt.Start(t), time.Second)
	ctx := context.Background()
	if _, err := c.ContainerStatus(ctx, sb); criclient.Code(err) != codes.NotFound {
		t.Errorf("ContainerStatus(sandbox) = %v, want NotFound like containerd", err)
	}
	if cs, err := c.ContainerStatus(ctx, ids[1][:12]); err != nil || cs.GetStatus().GetId() != ids[1] {
		t.Errorf("ContainerStatus(12-char prefix) = %v, %v", cs.GetStatus().GetId(), err)
	}
	created := rt.CreateContainer(sb, fakecri.ContainerSpec{Name: "late"})
	if cs, _ := c.ContainerStatus(ctx, created); cs.GetStatus().GetState() != runtimeapi.ContainerState_CONTAINER_CREATED {
		t.Errorf("created container state = %v", cs.GetStatus().GetState())
	}
	rt.RemoveContainer(ids[0])
	list, err := c.ListContainers(ctx, nil)
	if err != nil || len(list) != 2 {
		t.Errorf("ListContainers = %d containers (%v), want 2", len(list), err)
	}
	rt.RemovePod(sb)
	sbs, _ := c.ListPodSandbox(ctx, nil)
	list, _ = c.ListContainers(ctx, nil)
	if len(sbs) != 0 || len(list) != 0 {
		t.Errorf("after RemovePod: %d sandboxes, %d containers", len(sbs), len(list))
	}
	if got := rt.Calls(fakecri.RPCContainerStatus); got != 3 {
		t.Errorf("Calls(ContainerStatus) = %d, want 3", got)
	}
	if got := rt.CallsFor(fakecri.RPCContainerStatus, sb); got != 1 {
		t.Errorf("CallsFor(ContainerStatus, sandbox) = %d, want 1", got)
	}
}

func TestRuntime_CountsListsUnderTheirIDFilter(t *testing.T) {
	rt := fakecri.New()
	sb, ids := rt.AddPod(fakecri.PodSpec{Containers: make([]fakecri.ContainerSpec, 1)})
	c := dial(t, rt.Start(t), time.Second)
	ctx := context.Background()
	for range 2 {
		if _, err := c.ListContainers(ctx, &runtimeapi.ContainerFilter{Id: ids[0]}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := c.ListPodSandbox(ctx, &runtimeapi.PodSandboxFilter{Id: sb}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.ListPodSandbox(ctx, nil); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		rpc, id string
		want    int
	}{
		{fakecri.RPCListContainers, ids[0], 2},
		{fakecri.RPCListContainers, "", 0},
		{fakecri.RPCListPodSandbox, sb, 1},
		{fakecri.RPCListPodSandbox, "", 1},
	}
	for _, tt := range tests {
		if got := rt.CallsFor(tt.rpc, tt.id); got != tt.want {
			t.Errorf("CallsFor(%s, %.12q) = %d, want %d", tt.rpc, tt.id, got, tt.want)
		}
	}
	if got := rt.Calls(fakecri.RPCListContainers) + rt.Calls(fakecri.RPCListPodSandbox); got != 4 {
		t.Errorf("Calls of both Lists = %d, want 4", got)
	}
}

func TestRuntime_FaultsReachTheClientAsGRPCCodes(t *testing.T) {
	rt := fakecri.New()
	_, ids := rt.AddPod(fakecri.PodSpec{Containers: make([]fakecri.ContainerSpec, 1)})
	c := dial(t, rt.Start(t), 100*time.Millisecond)
	ctx := context.Background()

	rt.Inject(fakecri.RPCContainerStatus, fakecri.FailFirst(1, codes.Unavailable))
	if _, err := c.ContainerStatus(ctx, ids[0]); criclient.Code(err) != codes.Unavailable {
		t.Errorf("first call = %v, want Unavailable", err)
	}
	if _, err := c.ContainerStatus(ctx, ids[0]); err != nil {
		t.Errorf("second call = %v, want success", err)
	}
	rt.Inject(fakecri.RPCContainerStatus, nil)
	rt.Delay(fakecri.RPCContainerStatus, time.Second)
	if _, err := c.ContainerStatus(ctx, ids[0]); criclient.Code(err) != codes.DeadlineExceeded {
		t.Errorf("delayed call = %v, want DeadlineExceeded", err)
	}
	rt.Delay(fakecri.RPCContainerStatus, 0)
	rt.SetInfo(ids[0], "{not json")
	cs, err := c.ContainerStatus(ctx, ids[0])
	if err != nil || cs.GetInfo()["info"] != "{not json" {
		t.Errorf("SetInfo: info = %q, %v", cs.GetInfo()["info"], err)
	}
	rt.EditContainerStatus(ids[0], func(r *runtimeapi.ContainerStatusResponse) { r.Status = nil })
	if cs, _ := c.ContainerStatus(ctx, ids[0]); cs.GetStatus() != nil {
		t.Errorf("EditContainerStatus did not drop the status")
	}
}

func TestRuntime_EventModes(t *testing.T) {
	tests := []struct {
		name string
		mode fakecri.EventsMode
		want func(err error) bool
	}{
		{"containerd 1.6 answers Unimplemented", fakecri.EventsUnimplemented, func(err error) bool { return status.Code(err) == codes.Unimplemented }},
		{"cri-o without pod events ends at once", fakecri.EventsEOF, func(err error) bool { return errors.Is(err, io.EOF) }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rt := fakecri.New()
			rt.SetEvents(tt.mode)
			c := dial(t, rt.Start(t), time.Second)
			s, err := c.ContainerEvents(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			if _, err := s.Recv(); !tt.want(err) {
				t.Errorf("Recv = %v", err)
			}
		})
	}
}

func TestRuntime_StreamsTheEventsOfItsMutations(t *testing.T) {
	rt := fakecri.New()
	rt.SetEvents(fakecri.EventsStream)
	c := dial(t, rt.Start(t), time.Second)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	s, err := c.ContainerEvents(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for rt.Subscribers() == 0 {
		time.Sleep(time.Millisecond)
	}
	sb, ids := rt.AddPod(fakecri.PodSpec{Containers: make([]fakecri.ContainerSpec, 1)})
	rt.RemoveContainer(ids[0])
	want := []struct {
		id   string
		kind runtimeapi.ContainerEventType
	}{
		{sb, runtimeapi.ContainerEventType_CONTAINER_CREATED_EVENT},
		{sb, runtimeapi.ContainerEventType_CONTAINER_STARTED_EVENT},
		{ids[0], runtimeapi.ContainerEventType_CONTAINER_CREATED_EVENT},
		{ids[0], runtimeapi.ContainerEventType_CONTAINER_STARTED_EVENT},
		{ids[0], runtimeapi.ContainerEventType_CONTAINER_STOPPED_EVENT},
		{ids[0], runtimeapi.ContainerEventType_CONTAINER_DELETED_EVENT},
	}
	for i, w := range want {
		ev, err := s.Recv()
		if err != nil {
			t.Fatalf("event %d: %v", i, err)
		}
		if ev.GetContainerId() != w.id || ev.GetContainerEventType() != w.kind || ev.GetPodSandboxStatus().GetId() != sb {
			t.Errorf("event %d = %s %v (sandbox %s), want %s %v", i, ev.GetContainerId()[:12], ev.GetContainerEventType(), ev.GetPodSandboxStatus().GetId(), w.id[:12], w.kind)
		}
	}
	rt.CloseEventStreams()
	if _, err := s.Recv(); !errors.Is(err, io.EOF) {
		t.Errorf("Recv after CloseEventStreams = %v, want EOF", err)
	}
}

func TestSilent_NeverAnswers(t *testing.T) {
	c := dial(t, fakecri.Silent(t), 200*time.Millisecond)
	start := time.Now()
	_, err := c.Version(context.Background())
	if code := criclient.Code(err); code != codes.DeadlineExceeded && code != codes.Unavailable {
		t.Errorf("Version on a silent socket = %v, want DeadlineExceeded or Unavailable", err)
	}
	if took := time.Since(start); took > 5*time.Second {
		t.Errorf("Version took %v on a silent socket", took)
	}
}
