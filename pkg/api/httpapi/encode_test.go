package httpapi

import (
	"bytes"
	"encoding/json"
	"testing"
	"time"

	"github.com/cri-enricherd/cri-enricherd/internal/benchdata"
	"github.com/cri-enricherd/cri-enricherd/internal/recordfill"
	"github.com/cri-enricherd/cri-enricherd/pkg/enrich"
)

// awkward holds every kind of character the JSON encoders treat
// specially: quotes, backslash, HTML, control characters with and without
// short escapes, DEL, invalid UTF-8, U+2028/U+2029 and plain multi-byte text.
const awkward = "a\"b\\c<d>e&f\x00\x01\x1f\b\f\n\r\t\x7f\xff\xc3(\u2028\u2029é日本"

// inZone moves every time of rec to a zone half an hour off the hour.
func inZone(rec enrich.Record) enrich.Record {
	at := recordfill.At.In(time.FixedZone("IST", 5*3600+1800))
	rec.CreatedAt, rec.StartedAt, rec.FinishedAt, rec.DeletedAt = &at, &at, &at, &at
	pod := *rec.Pod
	pod.CreatedAt = &at
	rec.Pod = &pod
	return rec
}

func TestAppendRecord_MatchesEncodingJSON(t *testing.T) {
	container, sandbox := benchdata.Container(3, 1), benchdata.Sandbox(3)
	everything := recordfill.Record(func(path string) string { return awkward + path })
	empties := enrich.Record{Labels: map[string]string{}, Annotations: map[string]string{}, Env: []string{},
		Mounts: []enrich.Mount{}, Pod: &enrich.Pod{Labels: map[string]string{}, AdditionalIPs: []string{}}}
	utcNano := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	plainTimes := enrich.Record{CreatedAt: &utcNano, StartedAt: &utcNano, FinishedAt: &utcNano, DeletedAt: &utcNano}
	for _, tc := range []struct {
		name string
		rec  enrich.Record
	}{
		{"zero", enrich.Record{}},
		{"kubelet-sized container", container},
		{"kubelet-sized sandbox", sandbox},
		{"every field set", everything},
		{"every field set, times in a zone", inZone(everything)},
		{"empty maps and slices", empties},
		{"times without fraction", plainTimes},
	} {
		t.Run(tc.name, func(t *testing.T) {
			want, err := json.Marshal(&tc.rec)
			if err != nil {
				t.Fatal(err)
			}
			got, ok := appendRecord(nil, &tc.rec)
			if !ok || !bytes.Equal(got, want) {
				t.Errorf("appendRecord = %s (ok %v)\nencoding/json = %s", got, ok, want)
			}
		})
	}
}

func TestAppendRecord_RefusesWhatEncodingJSONRefuses(t *testing.T) {
	for _, tc := range []struct {
		name string
		at   time.Time
	}{
		{"year 10000", time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC)},
		{"year -1", time.Date(-1, 1, 1, 0, 0, 0, 0, time.UTC)},
		{"offset of 24 hours", time.Date(2026, 1, 1, 0, 0, 0, 0, time.FixedZone("x", 24*3600))},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rec := enrich.Record{Pod: &enrich.Pod{CreatedAt: &tc.at}}
			if _, err := json.Marshal(&rec); err == nil {
				t.Fatal("encoding/json accepts it: the case is wrong")
			}
			if _, ok := appendRecord(nil, &rec); ok {
				t.Error("appendRecord accepted a time encoding/json refuses")
			}
		})
	}
}

func TestAppendString_MatchesEncodingJSON(t *testing.T) {
	for _, s := range []string{"", "plain", awkward, "\xed\xa0\x80", "tail\xe2\x80", "\u2027\u202a"} {
		want, _ := json.Marshal(s)
		if got := appendString(nil, s); !bytes.Equal(got, want) {
			t.Errorf("appendString(%q) = %s, encoding/json = %s", s, got, want)
		}
	}
}

func FuzzAppendString(f *testing.F) {
	f.Add(awkward)
	f.Add(`{"Interfaces":{"eth0":{"IPConfigs":[{"IP":"10.0.0.5"}]}}}`)
	f.Fuzz(func(t *testing.T, s string) {
		want, err := json.Marshal(s)
		if err != nil {
			t.Fatal(err)
		}
		if got := appendString(nil, s); !bytes.Equal(got, want) {
			t.Errorf("appendString(%q) = %s, encoding/json = %s", s, got, want)
		}
	})
}
