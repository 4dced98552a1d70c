package main

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/cri-enricherd/cri-enricherd/pkg/config"
)

// keyTests names, for every configuration key the README documents, the
// test that proves setting the key changes what the daemon does - not only
// that it parses and validates; the test must name the key itself. Most run
// the daemon's own wiring (serve)
// in-process against the fake runtime; see daemon_harness_test.go.
var keyTests = map[string]string{
	"runtime.endpoint":          "TestDaemon_RuntimeEndpointNamesTheRuntimeAsked",
	"runtime.timeout":           "TestDaemon_RuntimeTimeoutBoundsEachCRICall",
	"runtime.connect_timeout":   "TestDaemon_RuntimeConnectTimeoutBoundsTheConnectionAttempt",
	"runtime.max_concurrency":   "TestDaemon_RuntimeMaxConcurrencyBoundsCallsInFlight",
	"runtime.rate_limit":        "TestDaemon_RuntimeRateLimitPacesLookups",
	"runtime.max_retries":       "TestDaemon_RuntimeMaxRetriesRetriesAFailingCallThatOften",
	"runtime.retry_base":        "TestDaemon_RuntimeRetryBaseAndRetryMaxSpaceTheRetries",
	"runtime.retry_max":         "TestDaemon_RuntimeRetryBaseAndRetryMaxSpaceTheRetries",
	"runtime.bootstrap_timeout": "TestDaemon_RuntimeBootstrapTimeoutEndsASyncThatHangs",
	"runtime.relist_interval":   "TestDaemon_RuntimeRelistIntervalPacesRelists",
	"runtime.events":            "TestDaemon_RuntimeEventsChoosesTheEventStream",
	"runtime.containerd_events": "TestDaemon_RuntimeContainerdEventsKnowsAContainerBeforeItsCgroup",

	"cgroup.root":            "TestDaemon_CgroupRootIsTheTreeWatched",
	"cgroup.rescan_interval": "TestDaemon_CgroupRescanIntervalFindsWhatInotifyMissed",
	"proc.root":              "TestDaemon_ProcRootIsWhereProcessesAreRead",

	"cache.size":          "TestDaemon_CacheSizeEvictsPastIt",
	"cache.deleted_grace": "TestDaemon_CacheDeletedGraceKeepsDeletedContainersAnswerable",
	"cache.negative_ttl":  "TestDaemon_CacheNegativeTTLHoldsBackUnknownIDs",

	"api.socket":             "TestDaemon_APISocketsFollowTheirKeys",
	"api.grpc_socket":        "TestDaemon_APISocketsFollowTheirKeys",
	"api.socket_mode":        "TestDaemon_APISocketsFollowTheirKeys",
	"api.socket_group":       "TestDaemon_APISocketsFollowTheirKeys",
	"api.address":            "TestDaemon_APIAddressServesTheAPIOverTCPLoopbackUnlessAllowed",
	"api.allow_non_loopback": "TestDaemon_APIAddressServesTheAPIOverTCPLoopbackUnlessAllowed",
	"api.ondemand_timeout":   "TestDaemon_APIOnDemandTimeoutBoundsTheWaitForAnUnknownID",
	"api.ondemand_rate":      "TestDaemon_APIOnDemandRateAndBurstBoundLookupsOfUnknownIDs",
	"api.ondemand_burst":     "TestDaemon_APIOnDemandRateAndBurstBoundLookupsOfUnknownIDs",
	"api.max_watchers":       "TestDaemon_APIMaxWatchersRefusesOneMore",

	"metrics.address":             "TestDaemon_MetricsListenerFollowsAddressPathAndPprof",
	"metrics.path":                "TestDaemon_MetricsListenerFollowsAddressPathAndPprof",
	"metrics.pod_label_allowlist": "TestDaemon_MetricsPodLabelAllowlistPicksThePodInfoLabels",

	"enrich.export_env":         "TestDaemon_EnrichKeysBoundWhatRecordsCarry",
	"enrich.export_annotations": "TestDaemon_EnrichKeysBoundWhatRecordsCarry",
	"enrich.max_labels":         "TestDaemon_EnrichKeysBoundWhatRecordsCarry",
	"enrich.max_value_length":   "TestDaemon_EnrichKeysBoundWhatRecordsCarry",

	"log.level":  "TestDaemon_LogLevelAndFormatShapeTheLog",
	"log.format": "TestDaemon_LogLevelAndFormatShapeTheLog",

	"debug.pprof": "TestDaemon_MetricsListenerFollowsAddressPathAndPprof",

	"node_name": "TestDaemon_NodeNameReachesRecordsAndBuildInfo",
}

// TestEveryConfigKeyChangesBehaviour keeps keyTests complete and true: a
// new key needs a behaviour test, a removed key its entry removed, and a
// named test must exist in the module and set the key (its body names it).
func TestEveryConfigKeyChangesBehaviour(t *testing.T) {
	sources := testFunctions(t, moduleRoot(t))
	known := map[string]bool{}
	for _, d := range config.Reference() {
		known[d.Key] = true
		name, ok := keyTests[d.Key]
		if !ok {
			t.Errorf("%s has no behaviour test: write one and name it in keyTests", d.Key)
			continue
		}
		src, ok := sources[name]
		switch {
		case !ok:
			t.Errorf("keyTests names %s for %s, but no *_test.go file of the module defines it", name, d.Key)
		case !strings.Contains(src, `"`+d.Key+`"`):
			t.Errorf("%s, named for %s, never names the key", name, d.Key)
		}
	}
	for key := range keyTests {
		if !known[key] {
			t.Errorf("keyTests names %s, which is not a configuration key (any more)", key)
		}
	}
}

// moduleRoot walks up from the package directory to the go.mod.
func moduleRoot(t *testing.T) string {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatal("no go.mod above the package directory")
		}
		dir = parent
	}
}

var testFunc = regexp.MustCompile(`(?m)^func (Test\w+)\(\w+ \*testing\.T\)`)

// testFunctions maps every test function of the module's *_test.go files
// to its text, from its func line to the closing brace at column 0.
func testFunctions(t *testing.T, root string) map[string]string {
	t.Helper()
	found := map[string]string{}
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && path != root && (strings.HasPrefix(d.Name(), ".") || d.Name() == "testdata" || d.Name() == "vendor") {
			return filepath.SkipDir
		}
		if d.IsDir() || !strings.HasSuffix(path, "_test.go") {
			return nil
		}
		src, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		for _, m := range testFunc.FindAllSubmatchIndex(src, -1) {
			body := string(src[m[1]:])
			if end := strings.Index(body, "\n}\n"); end >= 0 {
				body = body[:end]
			}
			found[string(src[m[2]:m[3]])] = body
		}
		return nil
	})
	if err != nil && !errors.Is(err, fs.SkipAll) {
		t.Fatal(err)
	}
	if len(found) == 0 {
		t.Fatal("found no test functions in the module")
	}
	return found
}
