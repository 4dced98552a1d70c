// Package recordfill builds an enrich.Record with every field set, by
// reflection, for the tests that prove an encoder or a converter carries
// every field: a field added to the record is filled too, so code that does
// not know it loses it and fails. Each string is str(path) for the field's
// path (Image.Ref, Pod.Labels[k], Mounts[1].HostPath ...), so two fields
// swapped show up as well.
package recordfill

import (
	"fmt"
	"reflect"
	"time"

	"github.com/cri-enricherd/cri-enricherd/pkg/enrich"
)

// At is the time every time field holds: UTC, with all nine digits of
// nanoseconds, so that encoders writing RFC 3339 agree on its text.
var At = time.Date(2026, 11, 28, 2, 44, 42, 123456789, time.UTC)

// Record returns a record with every field set: strings from str, numbers
// each its own (signed ones negative), booleans true, maps with an empty
// key among four (order matters to encoders), slices of two, times At.
func Record(str func(path string) string) enrich.Record {
	f := filler{str: str}
	return f.value(reflect.TypeFor[enrich.Record](), "").Interface().(enrich.Record)
}

type filler struct {
	str func(string) string
	n   int64 // the last number given
}

func (f *filler) value(t reflect.Type, path string) reflect.Value {
	v := reflect.New(t).Elem()
	switch t.Kind() {
	case reflect.String:
		v.SetString(f.str(path))
	case reflect.Bool:
		v.SetBool(true)
	case reflect.Int, reflect.Int32, reflect.Int64:
		f.n++
		v.SetInt(-f.n)
	case reflect.Uint32, reflect.Uint64:
		f.n++
		v.SetUint(uint64(f.n))
	case reflect.Pointer:
		v.Set(f.value(t.Elem(), path).Addr())
	case reflect.Map:
		v.Set(reflect.MakeMap(t))
		v.SetMapIndex(reflect.ValueOf(""), reflect.ValueOf(f.str(path+"[]")))
		for _, k := range []string{"zeta", "alpha", "io.kubernetes.pod.name"} {
			v.SetMapIndex(reflect.ValueOf(f.str(path+"."+k)), reflect.ValueOf(f.str(path+"["+k+"]")))
		}
	case reflect.Slice:
		v.Set(reflect.MakeSlice(t, 2, 2))
		for i := range 2 {
			v.Index(i).Set(f.value(t.Elem(), fmt.Sprintf("%s[%d]", path, i)))
		}
	case reflect.Struct:
		if t == reflect.TypeFor[time.Time]() {
			v.Set(reflect.ValueOf(At))
			break
		}
		for i := range t.NumField() {
			v.Field(i).Set(f.value(t.Field(i).Type, path+"."+t.Field(i).Name))
		}
	default:
		panic("recordfill: add a case for " + t.String())
	}
	return v
}
