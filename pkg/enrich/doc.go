// Package enrich turns CRI answers into the records cri-enricherd serves.
//
// It owns the mapping from ContainerStatus and PodSandboxStatus responses
// (including the runtime-specific JSON in their verbose info) to Record, Pod
// and their parts, the export caps and opt-ins in Options, and the
// ParseError reasons for malformed answers.
//
// Everything here is a pure function: no RPCs, no cache, no metrics, no
// clock and no file access. The lookup engine fetches the answers, decides
// which pod data to attach (AttachPod) and counts what the results report
// (ParseError.Reason, ContainerResult.Trimmed, Record.PodSource). That keeps
// every mapping rule table-testable against captured runtime answers.
//
// The verbose info of both answers is a JSON string inside the protobuf
// message. It is decoded into small structs holding only the fields read
// here, because the runtime spec inside it is large (a CRI-O seccomp profile
// alone is several kilobytes) and the decode runs once per new container.
package enrich
