package enrich

import "errors"

// The ParseError reasons. They are a closed set so the lookup engine can use
// them as a metric label.
const (
	// ReasonMissingStatus means the response (or its status) was nil.
	ReasonMissingStatus = "missing_status"
	// ReasonBadID means the status ID is not a 64-character lowercase hex ID.
	ReasonBadID = "bad_id"
	// ReasonBadInfoJSON means info["info"] is present but is not the JSON
	// object enrichment expects.
	ReasonBadInfoJSON = "bad_info_json"
	// ReasonBadCNIResult means a sandbox's CNI result could not be read.
	// Sandbox still returns the rest of the record with this reason.
	ReasonBadCNIResult = "bad_cni_result"
)

// ParseError is returned for a malformed runtime answer. Reason is one of
// the Reason constants and is safe to use as a metric label; Err holds the
// detail and must not be used as one.
type ParseError struct {
	Reason string
	Err    error
}

// Error implements error.
func (e *ParseError) Error() string {
	if e.Err == nil {
		return "enrich: " + e.Reason
	}
	return "enrich: " + e.Reason + ": " + e.Err.Error()
}

// Unwrap returns the underlying error.
func (e *ParseError) Unwrap() error { return e.Err }

func parseError(reason string, err error) *ParseError {
	return &ParseError{Reason: reason, Err: err}
}

var errNoStatus = errors.New("response has no status")
