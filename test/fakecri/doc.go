// Package fakecri is an in-process CRI RuntimeService served over real gRPC
// on a unix socket, for integration tests that must exercise the real CRI
// client, its timeouts and its metrics rather than an in-memory interface.
//
// It answers the RPCs cri-enricherd sends, in the shapes containerd gives
// them: Version, ListContainers and ListPodSandbox (with their filters),
// ContainerStatus and PodSandboxStatus (verbose info["info"] as a JSON
// string in containerd's layout: sandboxID, pid, config, runtimeSpec with
// the io.kubernetes.cri.* annotations and linux.cgroupsPath, and for
// sandboxes the pause image and a cniResult with lo, eth0, the host-side
// veth and the bridge), and GetContainerEvents in one of three modes:
// Unimplemented (containerd 1.6), a live stream fed by the fake's own
// mutations (containerd 2.x), or a stream that ends at once with EOF
// (CRI-O with pod events disabled).
// Everything else answers Unimplemented.
//
// What it is not: a container runtime. Nothing runs, PIDs are made up, and
// only the fields enrichment reads are filled with realistic values. IDs are
// deterministic (the same sequence of AddPod calls yields the same IDs) so
// failures reproduce.
//
// Tests drive it through the CRI's own lifecycle (AddPod, CreateContainer,
// StartContainer, StopContainer, RemoveContainer, RemovePod), count what it
// was asked (Calls, CallsFor), and break it on purpose: Inject returns a gRPC
// status error, Delay holds an RPC back, SetInfo replaces the verbose JSON,
// EditContainerStatus and EditSandboxStatus remove or change fields.
// Silent serves a socket that accepts connections and never answers.
package fakecri
