// Package policy holds Nimbus's infrastructure invariants as plain Go
// functions over a set of declared resources, and the IAM policy document
// types the program marshals instead of writing JSON by hand.
//
// The checks know nothing about how the resources were declared: the infra
// tests feed them everything a mocked `pulumi up` registers, so a resource
// added later is checked without anyone remembering to write a test for it.
// The package imports only the standard library.
package policy

import (
	"encoding/json"
	"fmt"
)

// Document is an IAM policy document.
type Document struct {
	Version   string      `json:"Version"`
	Statement []Statement `json:"Statement"`
}

// Statement is one IAM policy statement. Action, Resource and Principal are
// always written as lists/maps; Strings also accepts the single-string form
// when reading documents written elsewhere.
type Statement struct {
	Sid       string                        `json:"Sid,omitempty"`
	Effect    string                        `json:"Effect"`
	Principal map[string]Strings            `json:"Principal,omitempty"`
	Action    Strings                       `json:"Action,omitempty"`
	NotAction Strings                       `json:"NotAction,omitempty"`
	Resource  Strings                       `json:"Resource,omitempty"`
	Condition map[string]map[string]Strings `json:"Condition,omitempty"`
}

// Version2012 is the only IAM policy language version worth writing.
const Version2012 = "2012-10-17"

// Strings is a JSON string or list of strings.
type Strings []string

// UnmarshalJSON accepts "x" as well as ["x", "y"].
func (s *Strings) UnmarshalJSON(b []byte) error {
	var one string
	if err := json.Unmarshal(b, &one); err == nil {
		*s = Strings{one}
		return nil
	}
	var many []string
	if err := json.Unmarshal(b, &many); err != nil {
		return fmt.Errorf("want a string or a list of strings: %w", err)
	}
	*s = many
	return nil
}

// JSON renders d.
func (d Document) JSON() (string, error) {
	b, err := json.Marshal(d)
	if err != nil {
		return "", fmt.Errorf("marshalling policy document: %w", err)
	}
	return string(b), nil
}

// ParseDocument reads a policy document.
func ParseDocument(s string) (Document, error) {
	var d Document
	if err := json.Unmarshal([]byte(s), &d); err != nil {
		return Document{}, fmt.Errorf("parsing policy document: %w", err)
	}
	return d, nil
}
