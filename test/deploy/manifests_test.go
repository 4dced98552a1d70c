package deploy

import (
	"flag"
	"fmt"
	"os"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite deploy/manifests/cri-enricherd.yaml from the chart (make manifests)")

const manifestsFile = "../../deploy/manifests/cri-enricherd.yaml"

// manifestsHeader and namespaceDoc wrap the chart's default rendering into a
// file `kubectl apply -f` can take on its own.
const manifestsHeader = `# cri-enricherd as plain Kubernetes manifests, rendered from the Helm chart
# deploy/helm/cri-enricherd with its default values (release cri-enricherd,
# namespace cri-enricherd). Do not edit: change the chart and run
# ` + "`make manifests`" + `; ` + "`make deploy-check`" + ` fails while this file differs from it.
#
# The image names no registry. Point it at yours before applying, e.g.
#   kubectl -n cri-enricherd set image daemonset/cri-enricherd \
#     cri-enricherd=REGISTRY/cri-enricherd/cri-enricherd:TAG
# See deploy/README.md.
`

const namespaceDoc = `---
apiVersion: v1
kind: Namespace
metadata:
  name: cri-enricherd
  labels:
    # hostPath volumes are outside the baseline and restricted Pod Security
    # Standards, so the namespace must admit privileged-level pods.
    pod-security.kubernetes.io/enforce: privileged
`

func TestManifests_MatchTheChart(t *testing.T) {
	want := manifestsHeader + namespaceDoc + renderText(t)
	if *update {
		if err := os.WriteFile(manifestsFile, []byte(want), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	got, err := os.ReadFile(manifestsFile)
	if err != nil {
		t.Fatalf("%v (run make manifests)", err)
	}
	if string(got) != want {
		t.Fatalf("%s differs from the chart's rendering; run make manifests and commit the result\n%s", manifestsFile, firstDifference(string(got), want))
	}
	rel, err := decodeRelease(string(got))
	if err != nil {
		t.Fatalf("%s: %v", manifestsFile, err)
	}
	if rel.Namespace == nil || rel.DaemonSet == nil || rel.DaemonSet.Namespace != rel.Namespace.Name {
		t.Errorf("%s: want a Namespace and the DaemonSet in it, got %v", manifestsFile, rel.Kinds)
	}
}

// firstDifference shows the first line where got and want part.
func firstDifference(got, want string) string {
	g, w := strings.Split(got, "\n"), strings.Split(want, "\n")
	for i := 0; i < max(len(g), len(w)); i++ {
		var gl, wl string
		if i < len(g) {
			gl = g[i]
		}
		if i < len(w) {
			wl = w[i]
		}
		if gl != wl {
			return fmt.Sprintf("line %d:\n  file:  %s\n  chart: %s", i+1, gl, wl)
		}
	}
	return ""
}
